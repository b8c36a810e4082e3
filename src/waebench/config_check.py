"""Valid ranges of the numeric config values, keyed on their config paths.

`check_config` runs on the composed config before anything is built or written, and
refuses every bad value at once with its key, the value and the valid range, e.g.

    model.latent_dim=0: must be an integer >= 1

Defaults live in the YAML files only; this module holds the ranges alone (of numbers, and
of the elements of lists such as the MLP's hidden sizes). A key that a config does not have
(another regularizer's option) is skipped. Choices (regularizer kernels, reconstruction
names, ...) are checked by the classes that own the lists; the latent sizes a regularizer
can compute by its class (`LatentRegularizer.latent_dim_problem`). The `eval` settings
(which are used only after training) are checked here too, by building their typed object
(`waebench.evaluation.settings.EvalSettings`), whose fields carry the checks of this module
(`Range`, `Choice`, `Text`); and whether the training writes the best checkpoint that
`eval.checkpoint=best` scores (`waebench.evaluation.estimators.problems`), and whether the
FID's real splits exist (`eval.fid.real_splits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

from omegaconf import DictConfig, OmegaConf

from waebench.errors import UserError

_ABSENT = object()


class ConfigValueError(UserError, ValueError):
    """One or more config values outside their valid range; the message lists them."""


@dataclass(frozen=True)
class Range:
    """An integer or a finite float with optional bounds; `open` bounds exclude themselves."""

    integer: bool
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            brackets = ("(" if self.low_open else "[", ")" if self.high_open else "]")
            text = f"{kind} in {brackets[0]}{self.low:g}, {self.high:g}{brackets[1]}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = kind
        return text + (" (or null)" if self.nullable else "")

    def accepts(self, value: object) -> bool:
        if value is None:
            return self.nullable
        if isinstance(value, bool) or not isinstance(value, Real):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


@dataclass(frozen=True)
class Choice:
    """One of `values` (compared by type too: `true` is not `1`)."""

    values: tuple

    def accepts(self, value: object) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def describe(self) -> str:
        return "one of " + ", ".join(shown(v) for v in self.values)


@dataclass(frozen=True)
class Text:
    """A string (or null when `nullable`)."""

    nullable: bool = False

    def accepts(self, value: object) -> bool:
        return isinstance(value, str) or (self.nullable and value is None)

    def describe(self) -> str:
        return "a string" + (" (or null)" if self.nullable else "")


BOOLEAN = Choice((True, False))


def shown(value: object) -> str:
    """A value as it is written on the command line (true, null, [a,b])."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(shown(v) for v in value) + "]"
    return str(value)


def at_least(low: float, integer: bool = True, nullable: bool = False) -> Range:
    return Range(integer, low, nullable=nullable)


def positive(nullable: bool = False) -> Range:
    return Range(False, 0.0, low_open=True, nullable=nullable)


RANGES: dict[str, Range] = {
    "seed": Range(True, 0, 2**32 - 1),
    "dataset.image_size": at_least(1),
    "dataset.channels": at_least(1),
    "dataset.batch_size": at_least(1),
    "dataset.eval_batch_size": at_least(1),
    "dataset.val_size": at_least(0),
    "dataset.split_seed": Range(True, 0, 2**63 - 1),
    "dataset.preprocess_workers": at_least(0),
    "dataset.val_fraction": Range(False, 0.0, 1.0, low_open=True, high_open=True),
    "dataset.test_fraction": Range(False, 0.0, 1.0, low_open=True, high_open=True),
    "dataset.pad": at_least(0),
    "model.latent_dim": at_least(1),
    "model.width": at_least(1),
    "model.prior_var": positive(),
    "model.reconstruction.scale": positive(),
    "model.optimizer.lr": positive(),
    "model.lr_schedule.plateau.factor": Range(False, 0.0, 1.0, low_open=True, high_open=True),
    "model.lr_schedule.plateau.patience": at_least(0),
    "model.lr_schedule.plateau.threshold": at_least(0.0, integer=False),
    "model.batch_norm.momentum": Range(False, 0.0, 1.0, low_open=True),
    "model.batch_norm.eps": positive(),
    "model.input_noise": at_least(0.0, integer=False),
    "model.batches_per_step": at_least(1),
    "regularizer.weight": at_least(0.0, integer=False),
    "regularizer.adversary_lr": positive(),
    "regularizer.hidden": at_least(1),
    "regularizer.layers": at_least(1),
    "regularizer.block_size": at_least(1),
    "regularizer.n_projections": at_least(1),
    "regularizer.blur": positive(nullable=True),
    "regularizer.relative_blur": positive(),
    "regularizer.scaling": Range(False, 0.0, 1.0, low_open=True, high_open=True),
    "regularizer.decoder_weight": at_least(0.0, integer=False),
    "regularizer.encoder_std": positive(),
    "regularizer.power_iterations": at_least(1),
    "regularizer.bandwidth": positive(nullable=True),
    "trainer.max_epochs": at_least(-1, nullable=True),
    "trainer.max_steps": at_least(-1),
    "trainer.log_every_n_steps": at_least(1),
    "trainer.check_val_every_n_epoch": at_least(1, nullable=True),
}


# Lists: non-empty, each element within the range (null where the config allows it).
LIST_RANGES: dict[str, Range] = {
    "model.encoder.hidden": at_least(1),
    "model.decoder.hidden": at_least(1),
}


def problems(cfg: DictConfig) -> list[str]:
    """`key=value: must be <range>` for every value of `cfg` outside its range."""
    found = []
    for key, valid in RANGES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        if value is not _ABSENT and not valid.accepts(value):
            found.append(f"{key}={value}: must be {valid.describe()}")
    for key, valid in LIST_RANGES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
        if value is _ABSENT or value is None:
            continue
        items = list(value) if OmegaConf.is_list(value) or isinstance(value, list) else None
        if not items or not all(valid.accepts(item) for item in items):
            shown = items if items is not None else value
            found.append(
                f"{key}={shown}: must be a non-empty list, each element {valid.describe()} "
                f"(or null)"
            )
    return found


def real_splits_problems(cfg: DictConfig) -> list[str]:
    """`eval.fid.real_splits` (its values: `EvalSettings`): not both val and test where
    `dataset.val_size=0` makes the val split the test split."""
    value = OmegaConf.select(cfg, "eval.fid.real_splits", default=None, throw_on_missing=False)
    names = set(value) if OmegaConf.is_list(value) or isinstance(value, list) else set()
    if {"val", "test"} <= names and OmegaConf.select(cfg, "dataset.val_size") == 0:
        key = f"eval.fid.real_splits={list(value)}"
        return [f"{key}: with dataset.val_size=0 the val split is the test split; list one"]
    return []


def batches_per_step_problems(cfg: DictConfig) -> list[str]:
    """`model.batches_per_step` > 1 takes the optimizer steps in the model (Lightning's manual
    optimization), where Lightning neither clips gradients nor accumulates them."""
    steps = OmegaConf.select(cfg, "model.batches_per_step", default=1)
    if not isinstance(steps, int) or steps <= 1:
        return []
    found = []
    if OmegaConf.select(cfg, "trainer.gradient_clip_val", default=None):
        found.append("trainer.gradient_clip_val")
    if (OmegaConf.select(cfg, "trainer.accumulate_grad_batches", default=1) or 1) > 1:
        found.append("trainer.accumulate_grad_batches")
    return [
        f"model.batches_per_step={steps} with {key}: the model takes its optimizer steps "
        f"itself, where Lightning does not apply {key}; set model.batches_per_step=1 or "
        f"remove {key}"
        for key in found
    ]


def regularizer_class(cfg: DictConfig):
    """The class of the config's regularizer; None in a `waebench-eval` config (none known)."""
    from hydra.utils import get_class

    target = OmegaConf.select(cfg, "regularizer._target_", default=None)
    return None if target is None else get_class(target)


def latent_dim_problems(cfg: DictConfig) -> list[str]:
    """`model.latent_dim` that the regularizer cannot compute its penalty for."""
    regularizer = regularizer_class(cfg)
    latent_dim = OmegaConf.select(cfg, "model.latent_dim", default=None)
    if regularizer is None or not isinstance(latent_dim, int):
        return []
    problem = regularizer.latent_dim_problem(latent_dim)
    return [problem] if problem else []


def eval_problems(cfg: DictConfig) -> list[str]:
    """What is wrong with the config's `eval` settings, the samplers included for the
    config's regularizer (none known in a `waebench-eval` config: the model's is checked
    when it is loaded)."""
    from waebench.evaluation.settings import EvalSettings, EvalSettingsError

    if "eval" not in cfg:
        return []
    regularizer = regularizer_class(cfg)
    try:
        EvalSettings.from_config(
            cfg.eval,
            uses_prior=None if regularizer is None else regularizer.uses_prior,
            regularizer=""
            if regularizer is None
            else f"`{regularizer.name}` ({regularizer.__name__})",
        )
    except EvalSettingsError as error:
        return error.problems
    return []


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigValueError naming every value of `cfg` outside its valid range, a latent
    size its regularizer cannot compute, and every problem of its `eval` settings."""
    from waebench.evaluation import estimators

    found = problems(cfg) + latent_dim_problems(cfg) + eval_problems(cfg)
    found += real_splits_problems(cfg) + batches_per_step_problems(cfg) + estimators.problems(cfg)
    if found:
        lines = "\n".join(f"  {p}" for p in found)
        raise ConfigValueError(f"invalid config value{'s' * (len(found) > 1)}:\n{lines}")
