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
