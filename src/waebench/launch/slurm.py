"""What waebench adds to submitit for SLURM (used by the `launcher=slurm` plugin).

- `QueueInfoWatcher`: submitit learns job states from `sacct`, which fails on a cluster
  without accounting; a job cancelled there stays UNKNOWN and the launcher waits forever.
  Without accounting, the states come from `squeue --states=all` instead, and a job that has
  left the queue (after MinJobAge) counts as ended.
- `CheckpointBeforeRequeue`: near its time limit a SLURM job gets submitit's signal (USR2,
  `hydra.launcher.signal_delay_s` before the limit), whose handler requeues the job and
  exits at once. This callback holds the signal until the current training step ends,
  writes `last.ckpt` there, then hands it to submitit, so the requeued job resumes at
  exactly that step: no step lost, none repeated.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import signal
import subprocess
import time
from datetime import datetime
from types import FrameType

import lightning as L
from submitit.slurm.slurm import SlurmInfoWatcher

from waebench.callbacks import ResumeCheckpoint

log = logging.getLogger(__name__)

# States after which a job runs no more (sacct's names; squeue prints the same).
ENDED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
ENDED |= {"BOOT_FAIL", "DEADLINE", "LEFT_QUEUE"}


@functools.cache
def accounting_enabled() -> bool:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    return "accounting_storage/none" not in out.stdout


class QueueInfoWatcher(SlurmInfoWatcher):
    """submitit's watcher, asking `squeue` when the cluster keeps no accounting."""

    def _make_command(self) -> list[str] | None:
        command = super()._make_command()
        if command is None or accounting_enabled():
            return command
        return ["squeue", "--me", "-h", "-r", "--states=all", "-o", "%i|%T"]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        if accounting_enabled():
            return super().read_info(string)
        text = string.decode() if isinstance(string, bytes) else string
        listed = dict(line.split("|", 1) for line in text.splitlines() if "|" in line)
        info = {}
        for job_id in self._registered - self._finished:
            state = listed.get(job_id, "LEFT_QUEUE").split()[0]
            # Anything not ended (PENDING, REQUEUED, CONFIGURING, SUSPENDED, ...) is waited on.
            info[job_id] = {"JobID": job_id, "State": state if state in ENDED else "RUNNING"}
        return info


def job_end_time() -> float:
    """This SLURM job's end (start + time limit) as a POSIX time; now when unknown."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return time.time()
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True)
    match = re.search(r"\bEndTime=(\S+)", out.stdout)
    try:
        return datetime.fromisoformat(match.group(1)).timestamp()
    except (AttributeError, ValueError):
        return time.time()


_early_signals: list[tuple[int, FrameType | None]] = []


def hold_early_signal(signum: str = "USR2") -> None:
    """Record the requeue signal if it comes while a job is still starting (importing torch
    can take longer than a short time limit's warning), before submitit has a handler: by
    default the signal would kill the job, unrequeued. CheckpointBeforeRequeue then acts on
    it once training runs. Called where the job's pickle is loaded: the plugin."""
    number = signal.Signals[f"SIG{signum}"]
    if signal.getsignal(number) == signal.SIG_DFL:  # Hydra imports plugins again, later
        signal.signal(number, lambda *s: _early_signals.append(s))


class CheckpointBeforeRequeue(L.Callback):
    """Defer submitit's requeue signal to the end of the first training step that ends
    less than `margin_s` before the job's end time, write `last.ckpt` there (through the
    run's ResumeCheckpoint), and hand the signal to submitit when the next step begins
    (once the step's metrics are logged). After training (test, evaluation) the signal
    goes straight to submitit: the requeued job finds training
    finished in `last.ckpt` and redoes only what followed."""

    def __init__(self, signum: str = "USR2", margin_s: float = 10.0) -> None:
        self.signum = signal.Signals[f"SIG{signum}"]
        self.margin_s = margin_s
        self._deadline = 0.0
        self._submitit_handler = None
        self._pending: tuple[int, FrameType | None] | None = None
        self._saved = False

    def on_train_start(self, trainer: L.Trainer, module) -> None:
        handler = signal.getsignal(self.signum)
        if callable(handler):  # only inside a submitit job
            log.info("Training from step %d", trainer.global_step)
            self._deadline = job_end_time() - self.margin_s
            self._submitit_handler = handler
            signal.signal(self.signum, self._hold)
            if _early_signals:
                self._hold(*_early_signals.pop())

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        log.info("Got %s: requeueing before the time limit", signal.Signals(signum).name)
        self._pending = (signum, frame)

    def on_train_batch_start(self, trainer: L.Trainer, module, batch, batch_idx) -> None:
        if self._saved:
            self._hand_over()

    def on_train_batch_end(self, trainer: L.Trainer, module, outputs, batch, batch_idx) -> None:
        # An epoch's last step is checkpointed at the epoch end (see ResumeCheckpoint).
        if self._due() and batch_idx + 1 < trainer.num_training_batches:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        if self._due():
            self._save(trainer)
            self._hand_over()

    def _due(self) -> bool:
        return self._pending is not None and time.time() >= self._deadline

    def on_train_end(self, trainer: L.Trainer, module) -> None:
        self._hand_over()

    def _save(self, trainer: L.Trainer) -> None:
        for saver in trainer.callbacks:
            if isinstance(saver, ResumeCheckpoint):
                saver.save(trainer)
                log.info("Saved %s at step %d for the requeue", saver.path, trainer.global_step)
        self._saved = True

    def _hand_over(self) -> None:
        """Give the signal back to submitit (and the pending one, which exits the process)."""
        if self._submitit_handler is None:
            return
        handler, pending = self._submitit_handler, self._pending
        signal.signal(self.signum, handler)
        self._submitit_handler = self._pending = None
        if pending is not None:
            handler(*pending)
