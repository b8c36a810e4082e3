"""What the learned samplers (two-stage VAE, flow) share: codes standardized per dimension,
and Adam on random minibatches of them, on one CPU thread: their networks are so small that
more threads only add synchronisation (measured on 2 cores: 300 steps of the two-stage VAE
take 1.1 s on one thread, 8.4 s on two, load ~3)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


class Standardized:
    """Codes z as u = (z - mean) / std per dimension (the official RAE code's second stage
    normalizes the same way), and back."""

    def __init__(self, codes: torch.Tensor) -> None:
        codes = codes.float().cpu()
        self.mean, self.std = codes.mean(0), codes.std(0).clamp_min(1e-8)
        self.data = (codes - self.mean) / self.std

    def restore(self, u: torch.Tensor) -> torch.Tensor:
        return u * self.std + self.mean


def adam_on_minibatches(
    loss: Callable[[torch.Tensor, float], torch.Tensor],
    parameters: Iterable[torch.nn.Parameter],
    data: torch.Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> float:
    """`steps` Adam steps on `loss(batch, progress)` (progress: the fraction of the steps
    done), each batch drawn uniformly (with replacement across batches) from `data` with a
    generator seeded by `seed`; returns the last loss. Gradients are on whatever the caller
    disabled (the evaluation and the page draw samples under `torch.no_grad`)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(list(parameters), lr=lr)
    value = torch.tensor(float("nan"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            for step in range(steps):
                rows = torch.randint(len(data), (min(batch_size, len(data)),), generator=generator)
                value = loss(data[rows], step / steps)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return value.item()


class KerasPlateau:
    """Keras' ReduceLROnPlateau rule (min_delta 1e-4, absolute): `step(loss)` is True when
    the lr is to be cut, after `patience` epochs in a row without a loss below the best
    minus 1e-4; the count restarts after a cut. (torch's ReduceLROnPlateau cuts one epoch
    later for the same patience: torch's patience = Keras' patience - 1.)"""

    def __init__(self, patience: int, min_delta: float = 1e-4) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best, self.wait = float("inf"), 0

    def step(self, loss: float) -> bool:
        if loss < self.best - self.min_delta:
            self.best, self.wait = loss, 0
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.wait = 0
            return True
        return False


def adam_on_epochs(
    loss: Callable[[torch.Tensor, float], torch.Tensor],
    parameters: Iterable[torch.nn.Parameter],
    data: Callable[[int], torch.Tensor],
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    validation: Callable[[], torch.Tensor] | None = None,
    plateau_patience: int | None = None,
    lr_halving_epochs: int | None = None,
) -> float:
    """`epochs` passes of Adam over `data(epoch)` (the training data of that epoch, which may
    be drawn anew) in a random order of batches of `batch_size` (the last one smaller), as
    Keras' `fit` and Dai & Wipf's loop do; returns the last training loss. The lr halves
    every `lr_halving_epochs` epochs (Dai & Wipf), or when the mean loss on `validation()`
    has not improved for `plateau_patience` epochs (`KerasPlateau`, factor 0.5)."""
    generator = torch.Generator().manual_seed(seed)
    parameters = list(parameters)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    plateau = KerasPlateau(plateau_patience) if plateau_patience else None
    value = torch.tensor(float("nan"))
    with torch.enable_grad():
        for epoch in range(epochs):
            if lr_halving_epochs:
                for group in optimizer.param_groups:
                    group["lr"] = lr * 0.5 ** (epoch // lr_halving_epochs)
            x = data(epoch)
            batches = torch.randperm(len(x), generator=generator).split(batch_size)
            for i, rows in enumerate(batches):
                value = loss(x[rows.to(x.device)], (epoch + i / len(batches)) / epochs)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
            if plateau is None or validation is None:
                continue
            with torch.no_grad():
                held_out = validation()
                current = sum(
                    loss(b, 1.0).item() * len(b) for b in held_out.split(batch_size)
                ) / len(held_out)
            if plateau.step(current):
                for group in optimizer.param_groups:
                    group["lr"] *= 0.5
    return value.item()
