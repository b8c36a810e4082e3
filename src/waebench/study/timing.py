"""What `waebench-study --minutes N` (and `--estimate`) plans from: step times measured on this
machine, with as many jobs sharing each GPU as the study will run.

The calibration of a table trains its first wave of jobs (as many as the GPUs have slots)
all at once for a few seconds each (`StepTimes(stop_after=...)`), then lets them validate, test and
evaluate as usual. `StepTimes`, a callback added to those jobs, records wall-clock times
(comparable between the jobs' processes) after a CUDA synchronisation. `table_timing` turns
the records into one job's cost:

    job_s(E) = startup_s + E * (steps_per_epoch * step_s + epoch_end_s) + after_s

with step_s the slowest job's time per training step while all of them trained (the
window they share), and a table of J jobs on `slots` slots costs

    table_s(E) = launch_s + ceil(J / slots) * job_s(E).

`plan_epochs` gives each table the same fraction f of its protocol's epochs (at least 1),
the largest f whose tables fit the budget together. Every number it prints is a projection.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from waebench.run.record import write_json

RECORD = "step_times.json"
WARMUP_MARKS = 2  # the first marks hold cuDNN's algorithm search and the first allocations
MIN_MARKS = WARMUP_MARKS + 3  # a calibration job trains at least this many marks


class StepTimes(L.Callback):
    """Records into <run>/step_times.json (time.time(), after a CUDA sync): `marks`, [time,
    training batches done] every `every` batches; `epoch_ends`, [end of an epoch's last
    batch, start of the next epoch's first] (validation, checkpoint, logging between them);
    `steps_per_epoch`; `train_end`. `stop_after`: end the training that many seconds after
    its first batch, once MIN_MARKS marks are taken."""

    def __init__(self, every: int = 10, stop_after: float | None = None) -> None:
        self.every, self.stop_after = every, stop_after
        self.record: dict = {"marks": [], "epoch_ends": []}
        self.batches = 0
        self.first_batch: float | None = None
        self.epoch_end: float | None = None

    @staticmethod
    def now(module: L.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.time()

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        self.record["steps_per_epoch"] = trainer.num_training_batches
        if batch_idx == 0 and self.epoch_end is not None:
            self.record["epoch_ends"].append([self.epoch_end, self.now(module)])
            self.write(trainer)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        self.batches += 1
        self.first_batch = self.first_batch or time.time()
        if batch_idx + 1 == trainer.num_training_batches:
            self.epoch_end = self.now(module)
        if self.batches % self.every == 0:
            self.record["marks"].append([self.now(module), self.batches])
            enough = len(self.record["marks"]) >= MIN_MARKS
            if (
                self.stop_after is not None
                and enough
                and time.time() - self.first_batch > self.stop_after
            ):
                trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.record["train_end"] = self.now(module)
        self.write(trainer)

    def write(self, trainer: L.Trainer) -> None:
        write_json(Path(trainer.default_root_dir) / RECORD, self.record)


@dataclass
class Timing:
    """One table's measured costs, in seconds (see the module's formula)."""

    launch_s: float  # the multirun's own start, before its first job starts
    startup_s: float  # a job's start to its first timed step (data, model, pre-training)
    step_s: float  # a training step with `sharing` jobs on each GPU
    steps_per_epoch: int
    epoch_end_s: float  # between two epochs: validation, checkpoint (0: none was timed)
    after_s: float  # validation, test and evaluation after training
    sharing: int  # jobs per GPU while timed
    shared_window_s: float  # how long all jobs trained together (0: each timed alone)

    def job_s(self, epochs: int) -> float:
        epoch_s = self.steps_per_epoch * self.step_s + self.epoch_end_s
        return self.startup_s + epochs * epoch_s + self.after_s

    def table_s(self, epochs: int, jobs: int, slots: int) -> float:
        return self.launch_s + math.ceil(jobs / slots) * self.job_s(epochs)


def overlap(a: float, b: float, spans: list[list[float]]) -> float:
    return sum(max(0.0, min(b, s1) - max(a, s0)) for s0, s1 in spans)


def step_seconds(marks: list[list[float]], epoch_ends: list[list[float]], a: float, b: float):
    """Seconds per training step from the marks inside [a, b] (the time between epochs taken
    out), None with fewer than two marks there."""
    inside = [m for m in marks if a <= m[0] <= b]
    if len(inside) < 2 or inside[-1][1] == inside[0][1]:
        return None
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return (t1 - t0 - overlap(t0, t1, epoch_ends)) / (n1 - n0)


def table_timing(launched: float, jobs: list[dict], sharing: int) -> Timing:
    """The Timing of a calibration launched at `launched` whose jobs left these records:
    {"started", "ended" (the launcher's), "times" (StepTimes' record)}."""
    timed = [j for j in jobs if len(j["times"].get("marks", [])) > WARMUP_MARKS + 1]
    if not timed:
        raise ValueError(f"no job recorded {WARMUP_MARKS + 2} marks of its steps")
    starts = [j["times"]["marks"][WARMUP_MARKS][0] for j in timed]
    ends = [j["times"].get("train_end", j["times"]["marks"][-1][0]) for j in timed]
    a, b = max(starts), min(ends)
    steps = [step_seconds(j["times"]["marks"], j["times"]["epoch_ends"], a, b) for j in timed]
    window = b - a if all(s is not None for s in steps) else 0.0
    if not window:  # the jobs did not all train at once for long enough: each on its own
        steps = [
            step_seconds(j["times"]["marks"], j["times"]["epoch_ends"], s, e)
            for j, s, e in zip(timed, starts, ends, strict=True)
        ]
    epoch_ends = [v1 - v0 for j in timed for v0, v1 in j["times"]["epoch_ends"]]
    return Timing(
        launch_s=min(j["started"] for j in jobs) - launched,
        startup_s=max(j["times"]["marks"][0][0] - j["started"] for j in timed),
        step_s=max(s for s in steps if s is not None),
        steps_per_epoch=int(timed[0]["times"]["steps_per_epoch"]),
        epoch_end_s=statistics.median(epoch_ends) if epoch_ends else 0.0,
        after_s=max(j["ended"] - j["times"]["train_end"] for j in timed if "train_end" in j["times"]),
        sharing=sharing,
        shared_window_s=window,
    )  # fmt: skip


@dataclass
class PlannedTable:
    name: str
    jobs: int
    protocol_epochs: int
    timing: Timing


def epochs_at(fraction: float, protocol: int) -> int:
    return max(1, min(protocol, math.floor(fraction * protocol + 1e-9)))


def total_s(tables: list[PlannedTable], fraction: float, slots: int) -> float:
    return sum(
        t.timing.table_s(epochs_at(fraction, t.protocol_epochs), t.jobs, slots) for t in tables
    )


def plan_epochs(tables: list[PlannedTable], budget_s: float, slots: int) -> dict[str, int]:
    """Each table's epochs: the same fraction of every protocol, the largest whose tables'
    projected time fits `budget_s` (at least one epoch each, whatever the budget)."""
    fractions = sorted(
        {e / t.protocol_epochs for t in tables for e in range(1, t.protocol_epochs + 1)}
    )
    fitting = [f for f in fractions if total_s(tables, f, slots) <= budget_s]
    best = fitting[-1] if fitting else fractions[0]
    return {t.name: epochs_at(best, t.protocol_epochs) for t in tables}
