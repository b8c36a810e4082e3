"""What a trial's job folder says about the trial: the one place where the search reads a job's
record (through `waebench.run.record`) and turns its status into a trial state.

Objective names are the metric names of `metrics.json`: an `eval` entry
(`fid/samples/prior@classifier-fashion_mnist`, `rec/test`, `latent_mmd/test`: its `value`) or a
training epoch mean `<stage>/<term>` (`val/rec`, `test/loss`, `train/reg`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waebench.run.record import Status, job_record, read_metrics, write_metrics

STAGES = ("train", "val", "test")
COMPLETED, PRUNED = Status.COMPLETED, Status.PRUNED
# How a trial's job ended, beside those two: a result of its hyper-parameters, or cut short.
FAILED, INTERRUPTED = "failed", "interrupted"
# Statuses train() and the sweep jobs write when the run itself ended with an error: a result
# of the trial's hyper-parameters. Any other end (no metrics.json, `running`, a failure without
# a traceback: the job process died) means the trial was interrupted, and is re-run.
FAILED_IN_RUN = (Status.FAILED, Status.DIVERGED)


@dataclass
class Outcome:
    state: str  # COMPLETED | PRUNED | FAILED | INTERRUPTED
    values: list[float] | None = None
    reason: str = ""


def metric_value(metrics: dict[str, Any], name: str) -> float | None:
    entry = (metrics.get("eval") or {}).get(name)
    if isinstance(entry, dict) and "value" in entry:
        return float(entry["value"])
    stage, _, term = name.partition("/")
    stage_metrics = metrics.get(stage) if stage in STAGES else None
    if isinstance(stage_metrics, dict) and term in stage_metrics:
        return float(stage_metrics[term])
    return None


def metric_names(metrics: dict[str, Any]) -> list[str]:
    names = list(metrics.get("eval") or {})
    for stage in STAGES:
        names += [f"{stage}/{term}" for term in metrics.get(stage) or {}]
    return sorted(names)


def read_outcome(run_dir: Path, objectives: list[str]) -> Outcome:
    metrics = job_record(run_dir)  # or the sweep's record that it never started
    if metrics is None:
        return Outcome(INTERRUPTED, reason="the job left no metrics.json (killed?)")
    status, error = metrics.get("status"), str(metrics.get("error", "")).splitlines()
    first_line = error[0] if error else ""
    if status == COMPLETED:
        values = [metric_value(metrics, name) for name in objectives]
        missing = [name for name, value in zip(objectives, values, strict=True) if value is None]
        if missing:
            failed = metrics.get("eval_error")
            because = f" (its evaluation failed: {failed})" if failed else ""
            return Outcome(
                FAILED,
                reason=f"objective {', '.join(missing)} not in {run_dir}/metrics.json{because}; "
                f"its metrics are: {', '.join(metric_names(metrics))}",
            )
        return Outcome(COMPLETED, values)
    if status in FAILED_IN_RUN and "traceback" in metrics:
        return Outcome(FAILED, reason=f"{status}: {first_line}")
    return Outcome(INTERRUPTED, reason=f"{status}: {first_line}".rstrip(": "))


def mark_pruned(run_dir: Path, reason: str) -> None:
    """The job stopped on the pruner's word: its metrics.json says so (not `failed`)."""
    metrics = read_metrics(run_dir) or {"run_dir": str(run_dir)}
    metrics.update(status=PRUNED, error=reason)
    metrics.pop("traceback", None)
    write_metrics(run_dir, metrics)
