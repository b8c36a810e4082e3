"""The runs under sweep or output folders as a report sees them: the resolved config, the
record once they end (read through `waebench.run.record`), its metric entries and `eval`
settings in today's form (`waebench.evaluation.legacy`), and the model's name in tables."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import OmegaConf

from waebench.evaluation import legacy
from waebench.evaluation.definitions import METRICS
from waebench.evaluation.settings import EvalSettings
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
def regularizer_class(target: str) -> type | None:
    """The regularizer class of `target`, or None where it does not import."""
    try:
        return get_class(target)
    except Exception:  # not importable where the report runs
        return None


@cache
def model_name(target: str) -> str:
    """The name of the model whose regularizer is `target`: a built-in's from MODEL_NAMES; a
    class of your own by its `name` attribute when it sets one and imports here, else by the
    class name."""
    class_name = target.rsplit(".", 1)[-1]
    if class_name in MODEL_NAMES:
        return MODEL_NAMES[class_name]
    cls = regularizer_class(target)
    return class_name if cls is None else str(vars(cls).get("name", class_name))


@dataclass(eq=False)
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

    @cached_property
    def eval_settings(self) -> EvalSettings:
        """The run's `eval` settings (its `config.yaml`), in today's layout."""
        return EvalSettings.from_config(self.config.get("eval") or {}, strict=False)

    @cached_property
    def entries(self) -> dict[str, dict[str, Any]]:
        """Its metric entries, `metrics.json` `eval` in today's form, with the metrics read
        from the training's test epoch (`record="test"` definitions, key `test/<term>`)."""
        metrics = self.metrics or {}
        out = legacy.entries(metrics.get("eval") or {}, self.eval_settings.sampler or {})
        test = metrics.get("test") or {}
        for key, definition in METRICS.items():
            term = key.removeprefix("test/")
            if definition.record == "test" and isinstance(test.get(term), int | float):
                out[key] = {"value": float(test[term])}
        return out

    @property
    def evaluation(self) -> str:
        """The state of its evaluation: `completed`, `failed`, `pending` (training completed,
        no evaluation recorded), `off` (`eval.enabled=false`), or `none` (training did not
        complete). A record that states it (`evaluation`) is taken at its word."""
        metrics = self.metrics or {}
        if metrics.get("evaluation"):
            return str(metrics["evaluation"])
        if self.status != Status.COMPLETED:
            return "none"
        if metrics.get("eval_error"):
            return "failed"
        if metrics.get("eval"):
            return "completed"
        return "pending" if self.eval_settings.enabled is not False else "off"

    @property
    def evaluation_missing(self) -> bool:
        """Training completed and its evaluation did not: a gap
        `waebench.evaluation.settings.fill_command` fills."""
        return self.evaluation in ("pending", "failed")

    @property
    def collapsed(self) -> str:
        """Why the evaluation flags the model as collapsed (its `collapse` findings:
        `waebench.evaluation.collapse`), or ''."""
        return "; ".join(map(str, (self.metrics or {}).get("collapse") or []))

    @property
    def uses_prior(self) -> bool | None:
        """Whether its regularizer pulls the codes toward the prior (None: unknown here)."""
        cls = regularizer_class(str(self.config["regularizer"]["_target_"]))
        return None if cls is None else bool(getattr(cls, "uses_prior", True))

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
    """Every run folder (one with a `config.yaml` of a training run) under `paths`, its config
    in today's layout (`legacy.config`); a run whose `metrics.json` cannot be read is listed
    as `unreadable`, with its path."""
    return [Run(d, legacy.config(read_config(d)), read_metrics(d)) for d in find_run_dirs(paths)]
