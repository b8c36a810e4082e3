"""A Hydra callback that closes a multirun with one line per job that did not complete, with
its overrides and its error, the jobs that never started included; it exits non-zero when one
failed, never started, never ended, or completed its training but not its evaluation (a job a
search pruned ended normally)."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from waebench.evaluation.settings import fill_command
from waebench.run.record import (
    Evaluation,
    Status,
    launch_overrides,
    not_started_jobs,
    read_config,
    read_metrics,
)

log = logging.getLogger(__name__)


def sweep_status(sweep_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(job folder, what became of it) for every job of the sweep: the record of each run
    folder (one holding a `config.yaml`) directly under the sweep folder, or
    `{"status": "unfinished"}` without one; then the record of each job that never started
    (`started: false`, with its overrides)."""
    jobs = [
        (config.parent, read_metrics(config.parent) or {"status": Status.UNFINISHED})
        for config in sorted(Path(sweep_dir).glob("*/config.yaml"))
    ]
    return jobs + [(Path(r["run_dir"]), r) for r in not_started_jobs([sweep_dir])]


def evaluation_gap(run_dir: Path, metrics: dict[str, Any]) -> str | None:
    """`pending` or `failed` for a job whose training completed and whose evaluation did not,
    else None."""
    evaluation = metrics.get("evaluation")
    if metrics.get("status") != Status.COMPLETED or evaluation == Evaluation.COMPLETED:
        return None
    return str(evaluation)


def job_overrides(run_dir: Path, metrics: dict[str, Any]) -> str:
    overrides = metrics.get("overrides") or launch_overrides(run_dir) or []
    return shlex.join(overrides) or "(none)"


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = sweep_status(sweep_dir)
        ended = (Status.COMPLETED, Status.PRUNED)  # pruned: stopped on its search's word
        bad, unevaluated = [], []
        for run_dir, metrics in jobs:
            gap = evaluation_gap(run_dir, metrics)
            eval_on = ((read_config(run_dir) or {}).get("eval") or {}).get("enabled", False)
            if metrics.get("status") not in ended or gap == Evaluation.FAILED or (gap and eval_on):
                bad.append((run_dir, metrics))
            elif gap:  # eval.enabled=false
                unevaluated.append(run_dir)
        pruned = [d for d, m in jobs if m.get("status") == Status.PRUNED]
        never = sum(m.get("started") is False for _, m in jobs)
        completed = sum(m.get("status") == Status.COMPLETED for _, m in jobs)
        log.info(
            "Sweep %s: %d of %d jobs completed, %d pruned, %d never started",
            sweep_dir, completed, len(jobs), len(pruned), never,
        )  # fmt: skip
        for run_dir in pruned:
            metrics = dict(jobs)[run_dir]
            log.info("  %s: pruned %s", run_dir, metrics.get("error", ""))
        for run_dir in unevaluated:
            log.info("  %s: evaluation not run (eval.enabled=false)", run_dir)
        for run_dir, metrics in bad:
            gap = evaluation_gap(run_dir, metrics)
            if metrics.get("started") is False:
                what = "failed, never started:"
            elif gap:
                what = f"training completed, evaluation {gap}:"
            else:
                what = f"{metrics['status']}:"
            error = " ".join(str(metrics.get("eval_error" if gap else "error", "")).split())
            log.error("  %s: %s %s", run_dir, what, error[:300])
            log.error("    overrides: %s", job_overrides(run_dir, metrics))
            if gap:
                log.error("    fill it with: %s", fill_command(run_dir))
        if bad:
            raise SystemExit(
                f"{len(bad)} of {len(jobs)} jobs did not complete (errors above, in their "
                f"metrics.json and in {sweep_dir}/not_started/); re-launch with "
                f"hydra.sweep.dir={sweep_dir} to retry them only"
            )
