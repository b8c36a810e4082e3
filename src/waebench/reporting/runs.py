"""Find the runs under sweep or output folders and read what they wrote: the resolved
`config.yaml` and, once they end, `metrics.json`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

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
        return (self.metrics or {}).get("status", "unfinished")

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
        target = str(regularizer["_target_"]).rsplit(".", 1)[-1]
        if target == "W2GaussianPenalty" and regularizer.get("form") == "per_sample":
            return "W-VAE"
        return MODEL_NAMES.get(target, target)


def find_runs(paths: list[str | Path]) -> list[Run]:
    """Every run folder (one with a `config.yaml` of a training run) under `paths`."""
    runs: dict[Path, Run] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; pass sweep or output folders")
        configs = [path / "config.yaml"] if (path / "config.yaml").is_file() else []
        configs += sorted(path.rglob("*/config.yaml"))
        for config_path in configs:
            if {".hydra", "wandb", ".submitit"} & set(config_path.relative_to(path).parts):
                continue
            config = OmegaConf.to_container(OmegaConf.load(config_path))
            if not isinstance(config, dict) or not {"dataset", "regularizer"} <= config.keys():
                continue
            metrics_path = config_path.parent / "metrics.json"
            metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
            runs[config_path.parent.resolve()] = Run(config_path.parent, config, metrics)
    return list(runs.values())
