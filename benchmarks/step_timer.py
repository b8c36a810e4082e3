"""A Lightning callback that records when a training run did what, for `gpu_study.py`'s
epoch budget: wall-clock times (`time.time()`, comparable between the processes of a sweep)
of the fit's start, each epoch's start, every `every`-th training batch and the end of
training, each taken after a CUDA synchronisation so that queued GPU work is counted.
Written as JSON at each epoch's start and at the end of training (so a run stopped by a
deadline keeps its finished epochs) to `path` (default: the run folder's step_times.json):

    {"fit_start": t, "epoch_starts": [t0, t1, ...], "train_end": t, "steps_per_epoch": n,
     "batches": [[t, epoch, batches done in that epoch], ...],
     "cpu_epoch_starts": [c0, c1, ...], "cpu_train_end": c}

(`cpu_*`: the process's CPU time, `time.process_time()`, at the same moments: what the work
cost, whatever else the machine ran.)

Added to a run from the command line (benchmarks/ on PYTHONPATH):
    +callbacks.step_timer._target_=step_timer.StepTimer
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch


class StepTimer(L.Callback):
    def __init__(self, path: str | None = None, every: int = 50) -> None:
        self.path, self.every = path, every
        self.record: dict = {"epoch_starts": [], "batches": [], "cpu_epoch_starts": []}

    @staticmethod
    def now(module: L.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.time()

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.record["fit_start"] = time.time()

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.record["epoch_starts"].append(self.now(module))
        self.record["cpu_epoch_starts"].append(time.process_time())
        self.record["steps_per_epoch"] = trainer.num_training_batches
        self.write(trainer)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if (batch_idx + 1) % self.every == 0:
            self.record["batches"].append([self.now(module), trainer.current_epoch, batch_idx + 1])

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.record["train_end"] = self.now(module)
        self.record["cpu_train_end"] = time.process_time()
        self.write(trainer)

    def write(self, trainer: L.Trainer) -> None:
        path = Path(self.path or Path(trainer.default_root_dir) / "step_times.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record))
