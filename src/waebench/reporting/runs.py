"""The runs under sweep or output folders as a report sees them: the resolved config, the
record once they end (read through `waebench.run.record`), and the model's name in tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waebench.run.record import Status, find_run_dirs, read_config, read_metrics

# The regularizer's class -> the model's name in tables.
MODEL_NAMES = {
    "NoRegularizer": "AE",
    "KLDivergence": "VAE",
    "MMDPenalty": "WAE-MMD",
    "GANPenalty": "WAE-GAN",
    "SlicedWassersteinPenalty": "WAE-SW",
    "SinkhornPenalty": "WAE-Sinkhorn",
    "W2GaussianPenalty": "WAE-W2",
}


@dataclass
class Run:
    run_dir: Path
    config: dict[str, Any]
    metrics: dict[str, Any] | None

    @property
    def status(self) -> str:
        return (self.metrics or {}).get("status", Status.UNFINISHED)

    @property
    def error(self) -> str:
        if self.metrics is None:
            return "no metrics.json: still running, or killed"
        return str(self.metrics.get("error", ""))

    @property
    def dataset(self) -> str:
        return str(self.config["dataset"]["name"])

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def model(self) -> str:
        target = str(self.config["regularizer"]["_target_"]).rsplit(".", 1)[-1]
        return MODEL_NAMES.get(target, target)


def find_runs(paths: list[str | Path]) -> list[Run]:
    """Every run folder (one with a `config.yaml` of a training run) under `paths`; a run whose
    `metrics.json` cannot be read is listed as `unreadable`, with its path."""
    return [Run(d, read_config(d), read_metrics(d)) for d in find_run_dirs(paths)]
