"""Lightning callbacks of waebench, and its checkpoint writer."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torchvision.utils import make_grid, save_image

from waebench.errors import UserError
from waebench.run.record import atomic_path


class CheckpointWriteError(UserError, OSError):
    """A checkpoint could not be written (a full disk, a file size limit, ...)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer for every checkpoint of a training (`best.ckpt`,
    `last.ckpt`), writing each to a temporary file in its own folder and renaming it over the
    old one (`record.atomic_path`): a full disk, a kill or a file size limit mid-write leaves
    the previous checkpoint whole. (Lightning's own writer goes through a temporary file in
    the system's temporary folder, then copies it across file systems, which is not atomic.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buffer = io.BytesIO()  # whole in memory first, as Lightning's: write errors are OSErrors
        torch.save(checkpoint, buffer)
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(buffer.getbuffer())
        except OSError as error:
            raise CheckpointWriteError(
                error.errno,
                f"{error.strerror or error} writing the checkpoint {path}: the previous one (if "
                "any) is kept whole. Free space on that file system (or raise its limit), then "
                "launch the same command again into the same folder (ckpt_path=auto) to resume "
                "from its last.ckpt",
            ) from error


class ImageGrids(L.Callback):
    """Writes `samples.png` (decoded prior samples) and `reconstructions.png`
    (validation images, each row of originals above its reconstructions) into the
    run directory every `every_n_epochs` epochs and at the end of training;
    logs them to wandb when that logger is on."""

    def __init__(self, n_images: int = 64, every_n_epochs: int = 10, seed: int = 0) -> None:
        self.n_images, self.every_n_epochs, self.seed = n_images, every_n_epochs, seed

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.write(trainer, module)

    def on_train_end(self, trainer: L.Trainer, module) -> None:
        self.write(trainer, module)

    @torch.no_grad()
    def write(self, trainer: L.Trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        was_training = module.training
        module.eval()
        datamodule = trainer.datamodule
        low, high = datamodule.value_range
        images = datamodule.splits["val"][0][: self.n_images]
        x = datamodule.to_float(images).to(module.device)
        samples = module.sample(self.n_images, torch.Generator().manual_seed(self.seed))
        reconstructions = module.reconstruct(x)
        module.train(was_training)
        nrow = 8
        width = min(nrow, len(x))  # a validation set smaller than a row gives one pair row
        rows = range(0, len(x) - width + 1, width)
        pairs = torch.cat(
            [torch.cat([x[i : i + width], reconstructions[i : i + width]]) for i in rows]
        )
        grids = {
            "samples": make_grid(samples.cpu(), nrow=nrow, value_range=(low, high), normalize=True),
            "reconstructions": make_grid(
                pairs.cpu(), nrow=width, value_range=(low, high), normalize=True
            ),
        }
        out_dir = Path(trainer.default_root_dir)
        for name, grid in grids.items():
            save_image(grid, out_dir / f"{name}.png")
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="images", images=list(grids.values()), caption=list(grids))


class ResumeCheckpoint(L.Callback):
    """Keeps `<dirpath>/last.ckpt` current for resuming a killed run: written at
    every epoch end and when training ends, and inside an epoch every
    `every_n_train_steps` optimizer steps (at the first training step that reaches a
    multiple: with `model.batches_per_step` > 1 a training step takes several) and after `every_n_minutes` minutes of training since
    the last one (each may be null), each time through the trainer's
    `AtomicCheckpointIO` (a kill mid-write leaves the previous checkpoint intact).

    No step checkpoint is written on an epoch's last batch: the epoch-end one
    follows, and Lightning cannot resume exactly from a checkpoint taken
    between an epoch's last batch and its end.

    Every checkpoint also holds the random number generators' states (torch,
    CUDA, NumPy, Python; Lightning saves none) of every rank, each restored on its
    own rank when training resumes, so that the prior samples of the regularizers
    continue as in an uninterrupted run. Under DDP, ranks > 0 start their own
    streams, seeded from (`seed`, rank): each rank draws different prior samples,
    as one larger batch would.
    """

    def __init__(
        self,
        dirpath: str,
        every_n_train_steps: int | None = 500,
        every_n_minutes: float | None = 10,
        seed: int = 0,
    ) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self.seed = seed
        self.every_n_train_steps = every_n_train_steps
        self.every_n_minutes = every_n_minutes
        self._epoch_finished = False
        self._saved_at = time.monotonic()
        self._saved_step = -1
        self._step_seen = 0  # global_step at the end of the previous training step
        self._rng_states: list[dict[str, Any]] | dict[str, Any] | None = None

    def on_train_start(self, trainer: L.Trainer, module) -> None:
        # After Lightning's sanity check, which isolates the generators.
        self._saved_at, self._step_seen = time.monotonic(), trainer.global_step
        if self._rng_states is not None:
            states = self._rng_states
            # A checkpoint older than per-rank states holds one dict, rank 0's.
            set_rng_states(states if isinstance(states, dict) else states[trainer.global_rank])
            self._rng_states = None
        elif trainer.global_rank > 0:
            seed = np.random.SeedSequence([self.seed, trainer.global_rank]).generate_state(1)[0]
            L.seed_everything(int(seed), workers=True, verbose=False)

    def on_save_checkpoint(self, trainer: L.Trainer, module, checkpoint: dict[str, Any]) -> None:
        """Every rank takes part (Lightning dumps the checkpoint on all ranks, rank 0 writes it)."""
        states = [rng_states()]
        if trainer.world_size > 1:
            states = [None] * trainer.world_size
            torch.distributed.all_gather_object(states, rng_states())
        checkpoint["rng_states"] = states

    def on_load_checkpoint(self, trainer: L.Trainer, module, checkpoint: dict[str, Any]) -> None:
        self._rng_states = checkpoint.get("rng_states")

    def _minutes_passed(self, trainer: L.Trainer) -> bool:
        """Whether `every_n_minutes` passed, decided by rank 0 for all ranks."""
        if not self.every_n_minutes or not logs_this_step(trainer):  # steps that sync anyway
            return False
        passed = time.monotonic() - self._saved_at >= 60 * self.every_n_minutes
        return bool(trainer.strategy.broadcast(passed))

    def on_train_batch_end(
        self, trainer: L.Trainer, module, outputs, batch, batch_idx: int
    ) -> None:
        self._epoch_finished = batch_idx + 1 >= trainer.num_training_batches
        step, before, self._step_seen = trainer.global_step, self._step_seen, trainer.global_step
        stopping = trainer.max_steps != -1 and step >= trainer.max_steps
        every = self.every_n_train_steps
        due = stopping or (every and step // every > before // every)
        if not self._epoch_finished and (due or self._minutes_passed(trainer)):
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        if self._epoch_finished:  # not when max_steps stopped the epoch early
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, module) -> None:
        """The final weights (training stopped inside an epoch: `max_time`, a callback), so
        that the evaluation of a relaunch, which loads `last.ckpt`, sees what training ended
        with."""
        if trainer.global_step != self._saved_step:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        """Every rank calls it (Lightning gathers the checkpoint); the trainer's checkpoint
        writer (`AtomicCheckpointIO`, rank 0) replaces the file atomically."""
        trainer.save_checkpoint(self.path, weights_only=False)  # optimizer and loop states too
        self._saved_at, self._saved_step = time.monotonic(), trainer.global_step


def rng_states() -> dict[str, Any]:
    """The generators' states in types that `torch.load(weights_only=True)` reads back."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss]
    states = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def logs_this_step(trainer: L.Trainer) -> bool:
    """Whether Lightning writes step metrics at the current training batch: every
    `trainer.log_every_n_steps` batches, counted over the whole run. waebench reads
    values from the device (a host-device sync) only on these steps."""
    return trainer._logger_connector.should_update_logs


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, refreshed only on the steps where Lightning logs (see
    `logs_this_step`) and at the epoch's end: showing the loss reads it from the device,
    so refreshing on every step would stall the GPU queue every step."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if logs_this_step(trainer) or batch_idx + 1 == trainer.num_training_batches:
            super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
