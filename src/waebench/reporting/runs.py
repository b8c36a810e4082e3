"""The runs under sweep or output folders as a report sees them: the resolved config, the
record once they end (read through `waebench.run.record`), and the model's name in tables."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import OmegaConf

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
    "ConstantVarianceKL": "CV-VAE",
    "CramerWoldPenalty": "CWAE",
    "RAEPenalty": "RAE",
}
# RAEPenalty's decoder regularizer -> its name in the RAE paper's tables.
RAE_NAMES = {"l2": "RAE-L2", "gp": "RAE-GP"}


@cache
def model_name(target: str) -> str:
    """The name of the model whose regularizer is `target`: a built-in's from MODEL_NAMES; a
    class of your own by its `name` attribute when it sets one and imports here, else by the
    class name."""
    class_name = target.rsplit(".", 1)[-1]
    if class_name in MODEL_NAMES:
        return MODEL_NAMES[class_name]
    try:
        return str(vars(get_class(target)).get("name", class_name))
    except Exception:  # not importable where the report runs
        return class_name


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
    def started(self) -> float:
        """When the run (last) started, in seconds since the epoch: its `config.yaml`."""
        return (self.run_dir / "config.yaml").stat().st_mtime

    @property
    def ended(self) -> float | None:
        """When the run last wrote `metrics.json` (at its end), or None."""
        path = self.run_dir / "metrics.json"
        return path.stat().st_mtime if self.metrics is not None and path.is_file() else None

    @property
    def overrides(self) -> list[str] | None:
        """The command-line overrides it was launched with (Hydra's `.hydra/overrides.yaml`)."""
        path = self.run_dir / ".hydra" / "overrides.yaml"
        return [str(o) for o in OmegaConf.load(path)] if path.is_file() else None

    @property
    def model(self) -> str:
        regularizer = self.config["regularizer"]
        target = str(regularizer["_target_"])
        if (
            target.rsplit(".", 1)[-1] == "W2GaussianPenalty"
            and regularizer.get("form") == "per_sample"
        ):
            return "W-VAE"
        if target.rsplit(".", 1)[-1] == "RAEPenalty":
            if regularizer.get("spectral_norm"):
                return "RAE-SN"
            return RAE_NAMES.get(regularizer.get("decoder_regularizer"), "RAE")
        return model_name(target)


def find_runs(paths: list[str | Path]) -> list[Run]:
    """Every run folder (one with a `config.yaml` of a training run) under `paths`; a run whose
    `metrics.json` cannot be read is listed as `unreadable`, with its path."""
    return [Run(d, read_config(d), read_metrics(d)) for d in find_run_dirs(paths)]
