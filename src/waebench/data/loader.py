"""Batches sliced from uint8 tensors in memory: no per-item work, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class InMemoryBatches:
    """Iterable of (images uint8 [B, C, H, W], labels [B]) slices, or, with
    `batches_per_step` K > 1, of K consecutive batches stacked, (images [K, B, C, H, W],
    labels [K, B]) (fewer than K at the epoch's end), for a model that takes K optimizer
    steps a training step (`model.batches_per_step`). The batches, and their order, are the
    same for every K.

    A training epoch's order is a permutation drawn from (seed, epoch), with the
    epoch read from `epoch_fn` (the trainer's). A checkpoint stores how many
    batches of the epoch were trained on, so a resumed run continues with
    exactly the batch it would have seen next. Under DDP each rank takes every
    `world_size`-th index of the same permutation.

    The permutation is always drawn on the CPU, so the order is the same
    wherever `images` live: on the GPU (indices are moved there, the batch is
    gathered on the device) or in host memory (`pin`: each batch is copied to
    page-locked memory, so the copy to the GPU can be non-blocking).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        epoch_fn: Callable[[], int] | None = None,
        pin: bool = False,
        batches_per_step: int = 1,
    ) -> None:
        if batches_per_step > 1 and not drop_last:
            raise ValueError("batches_per_step > 1 stacks whole batches: it needs drop_last=True")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed, self.drop_last = (
            batch_size,
            shuffle,
            seed,
            drop_last,
        )
        self.rank, self.world_size, self.pin = rank, world_size, pin
        self.batches_per_step = batches_per_step
        self.epoch_fn = epoch_fn or (lambda: 0)
        self._position = (0, 0)  # (epoch, batches handed out in it)
        self._resume_at: tuple[int, int] | None = None

    def _indices(self) -> torch.Tensor:
        n = len(self.images)
        if not self.shuffle:
            return torch.arange(n)[self.rank :: self.world_size]
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch_fn())
        return torch.randperm(n, generator=generator)[self.rank :: self.world_size]

    def _batches(self) -> int:
        """Batches in an epoch."""
        n = -(-(len(self.images) - self.rank) // self.world_size)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        """Items (a batch, or `batches_per_step` of them) in an epoch."""
        return -(-self._batches() // self.batches_per_step)

    def __iter__(self):
        epoch = self.epoch_fn()
        start = 0
        if self._resume_at is not None and self._resume_at[0] == epoch:
            start = self._resume_at[1]
        self._resume_at = None
        indices = self._indices().to(self.images.device)
        size, batches, per_step = self.batch_size, self._batches(), self.batches_per_step
        for first in range(start, batches, per_step):
            end = min(first + per_step, batches)
            self._position = (epoch, end)
            idx = indices[first * size : end * size]
            images, labels = self.images[idx], self.labels[idx]
            if per_step > 1:
                images, labels = images.unflatten(0, (end - first, size)), labels.view(-1, size)
            yield (images.pin_memory(), labels.pin_memory()) if self.pin else (images, labels)

    def state_dict(self) -> dict[str, Any]:
        """Lightning does not fetch ahead from a loader with a length, so every
        batch handed out when a checkpoint is written has been trained on."""
        epoch, batches = self._position
        return {"epoch": epoch, "batches_done": batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume_at = (state["epoch"], state["batches_done"])
