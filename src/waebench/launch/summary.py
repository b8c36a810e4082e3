"""A Hydra callback that closes a multirun with one line per job that did not complete; it
exits non-zero when one failed or never ended (a job a search pruned ended normally)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from waebench.run.record import Status, read_metrics

log = logging.getLogger(__name__)


def sweep_status(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """{job folder: its metrics.json, or {"status": "unfinished"} without one} for every job
    folder (one holding a `config.yaml`) directly under the sweep folder."""
    jobs = {}
    for config in sorted(Path(sweep_dir).glob("*/config.yaml")):
        jobs[str(config.parent)] = read_metrics(config.parent) or {"status": Status.UNFINISHED}
    return jobs


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = sweep_status(sweep_dir)
        ended = (Status.COMPLETED, Status.PRUNED)  # pruned: stopped on its search's word
        bad = {d: m for d, m in jobs.items() if m.get("status") not in ended}
        pruned = [d for d, m in jobs.items() if m.get("status") == Status.PRUNED]
        completed = len(jobs) - len(bad) - len(pruned)
        log.info(
            "Sweep %s: %d of %d jobs completed, %d pruned",
            sweep_dir,
            completed,
            len(jobs),
            len(pruned),
        )
        for run_dir in pruned:
            log.info("  %s: pruned %s", run_dir, jobs[run_dir].get("error", ""))
        for run_dir, metrics in bad.items():
            error = str(metrics.get("error", "")).splitlines()
            log.error("  %s: %s %s", run_dir, metrics["status"], error[0] if error else "")
        if bad:
            raise SystemExit(
                f"{len(bad)} of {len(jobs)} jobs did not complete (errors above and in their "
                f"metrics.json); re-launch with hydra.sweep.dir={sweep_dir} to retry them only"
            )
