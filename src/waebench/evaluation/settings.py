"""The `eval` settings as one typed, validated object: `EvalSettings.from_config(cfg.eval)`,
built once by the entry point (`waebench-train`, `waebench-eval`) and passed down to the
evaluation; the reports build one per run from its `config.yaml`.

Frozen dataclasses rather than OmegaConf structured configs: OmegaConf 2.3 cannot type
"true, false or auto" or "an integer >= 2", and its errors name the Python type, not the
fix. So each field carries its check (`setting(check)`), `from_config` refuses every bad
value at once with its key (`eval.inception.num_samples=1: must be an integer >= 2`), and
the defaults stay in one place, conf/eval/default.yaml (the dataclasses hold none). A config
written before a setting existed is read through `legacy.settings` first.

A new setting is one field here (with its check) and its default in conf/eval/default.yaml.
A setting that changes a number without the entry saying so gets `recorded="<key pattern>"`:
the evaluation then writes it into every entry whose key matches (fnmatch), and the reports
keep values of other settings in other columns (`definitions`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from waebench.config_check import BOOLEAN, Choice, Range, Text, at_least, shown
from waebench.errors import UserError
from waebench.evaluation.estimators import CHECKPOINTS, INTERPOLATIONS, RECONSTRUCTIONS
from waebench.run import record

SWITCH = (True, False, "auto")


def setting(check, *, numbers: bool = True, recorded: str | None = None):
    """A field checked by `check` (`accepts`, `describe`). `numbers=False`: it changes no
    number (where to cache, which device), so runs that differ in it can share a page.
    `recorded`: the entries that record its value (an fnmatch pattern of their key without
    its `@<extractor>`, e.g. "fid/reconstructions" or "*")."""
    return field(metadata={"check": check, "numbers": numbers, "recorded": recorded})


def section(cls, *, numbers: bool = True):
    """A nested group of settings (a dataclass of this module)."""
    return field(metadata={"section": cls, "numbers": numbers})


@dataclass(frozen=True)
class FeatureSpaceSettings:
    """One feature space of the FID: Inception (`eval.inception`) or the classifier
    (`eval.classifier`)."""

    enabled: bool | str = setting(Choice(SWITCH))
    num_samples: int = setting(at_least(2))  # generated / reconstructed images
    num_real: int | None = setting(at_least(2, nullable=True))  # real images; null: the split


@dataclass(frozen=True)
class InceptionSettings(FeatureSpaceSettings):
    weights: str | None = setting(Text(nullable=True), numbers=False)


@dataclass(frozen=True)
class ClassifierSettings(FeatureSpaceSettings):
    train_steps: int = setting(at_least(1))


class RealSplits:
    """`eval.fid.real_splits`: null (the evaluation's split, `eval.split`) or distinct splits
    whose images are joined into the FID's real set (e.g. [train, test]: the CWAE paper's)."""

    splits = ("train", "val", "test")

    def accepts(self, value: object) -> bool:
        if value is None:
            return True
        return (
            isinstance(value, list | tuple)
            and len(value) > 0
            and len(set(value)) == len(value)
            and set(value) <= set(self.splits)
        )

    def describe(self) -> str:
        return f"null or a list of distinct splits from {', '.join(self.splits)}"


@dataclass(frozen=True)
class FidSettings:
    """Which image sets other than samples get an FID, and the real set they are scored
    against (its name, e.g. `mnist:train+test`, is each entry's `real`)."""

    reconstructions: bool = setting(BOOLEAN)
    interpolations: bool = setting(BOOLEAN)
    real_splits: tuple[str, ...] | None = setting(RealSplits())


@dataclass(frozen=True)
class FigureSettings:
    """The PNG figures of the run folder (no number depends on them)."""

    enabled: bool = setting(BOOLEAN)
    n_images: int = setting(at_least(1))
    interpolation_pairs: int = setting(at_least(1))
    interpolation_steps: int = setting(at_least(2))
    scatter_points: int = setting(at_least(2))
    tsne: bool = setting(BOOLEAN)


class SamplerList:
    """`eval.samplers`: checked by `waebench.samplers.problems` (names, availability, and the
    prior of the model when it is known); at least one."""

    def accepts(self, value: object) -> bool:
        return isinstance(value, list | tuple) and len(value) > 0

    def describe(self) -> str:
        from waebench import samplers

        return f"a list of {', '.join(samplers.CHOICES)} (at least one)"


@dataclass(frozen=True)
class EvalSettings:
    """Every `eval.*` setting (conf/eval/default.yaml says what each one does)."""

    enabled: bool = setting(BOOLEAN, numbers=False)
    split: str = setting(Text())
    seed: int = setting(Range(True, 0, 2**32 - 1), recorded="*")
    batch_size: int = setting(at_least(1), numbers=False)
    device: str = setting(Choice(("auto", "cpu", "cuda")), numbers=False)
    # How the scored images are made (`waebench.evaluation.estimators`); the weights scored
    # apply to every entry (None: images scored from files, `waebench-eval images=...`).
    checkpoint: str | None = setting(Choice(CHECKPOINTS), recorded="*")
    reconstruction: str = setting(Choice(RECONSTRUCTIONS), recorded="*/reconstructions*")
    interpolation: str = setting(Choice(INTERPOLATIONS), recorded="*/interpolations*")
    cache_dir: str = setting(Text(), numbers=False)
    inception: InceptionSettings = section(InceptionSettings)
    classifier: ClassifierSettings = section(ClassifierSettings)
    samplers: tuple[str, ...] = setting(SamplerList())
    sampler: Mapping[str, Mapping[str, Any]] = setting(None)  # checked by sampler_problems
    fid: FidSettings = section(FidSettings)
    kid: bool = setting(BOOLEAN)
    prc: bool = setting(BOOLEAN)
    latent_mmd_codes: int = setting(at_least(2))
    figures: FigureSettings = section(FigureSettings, numbers=False)

    @classmethod
    def from_config(
        cls,
        config: Any,
        *,
        uses_prior: bool | None = None,
        regularizer: str = "",
        strict: bool = True,
    ) -> EvalSettings:
        """The settings of an `eval` config node (or a plain mapping). `strict`: refuse
        unknown keys and bad values (`EvalSettingsError`, every problem at once), and samplers
        the model cannot run when `uses_prior` is known; otherwise (reading a run's record)
        take what is there, absent keys as None."""
        from waebench.evaluation import legacy

        mapping = legacy.settings(plain(config))
        found: list[str] = []
        settings = build(cls, mapping, "eval.", found, strict)
        if strict:
            found += sampler_problems(settings, uses_prior, regularizer)
            if found:
                raise EvalSettingsError(found)
        return settings

    def recorded(self, key: str) -> dict[str, Any]:
        """The settings recorded in the entry `key` of `metrics.json`'s `eval` (a setting
        that does not apply, None, is not)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.metadata.get("recorded")
            and fnmatch(key, f.metadata["recorded"])
            and getattr(self, f.name) is not None
        }

    def numbers_settings(self) -> dict[str, Any]:
        """`eval.<key>` -> value of every setting that changes a number (a page's runs must
        agree on them), the options of the samplers that ran only."""
        from waebench import samplers

        flat = {k: v for k, v in flat_settings(self, "eval.", numbers_only=True)}
        options = flat.pop("eval.sampler") or {}
        for name in self.samplers or ():
            if name in options:
                flat[f"eval.sampler.{name}"] = samplers.recorded_options(name, options)
        return flat

    def overrides(self, defaults: EvalSettings | None = None) -> list[str]:
        """Command-line overrides that give these settings where they differ from `defaults`
        (conf/eval/default.yaml), for the settings that change a number; e.g. the
        `waebench-eval` command that re-runs an evaluation."""
        from waebench import samplers

        mine = self.numbers_settings()
        defaults = defaults or default_settings()
        theirs = defaults.numbers_settings()
        for name in defaults.sampler or {}:  # every sampler's defaults
            theirs[f"eval.sampler.{name}"] = samplers.recorded_options(name, defaults.sampler)
        out = []
        for key, value in mine.items():
            default = theirs.get(key)
            if isinstance(value, Mapping):
                default = default if isinstance(default, Mapping) else {}
                out += [f"{key}.{k}={shown(v)}" for k, v in value.items() if default.get(k) != v]
                out += [f"{key}.{k}=null" for k in default if k not in value]  # the default's
            elif value != default:
                out.append(f"{key}={shown(value)}")
        return out

    def command(self, run_dir: str | Path) -> str:
        """The `waebench-eval` command that evaluates the run folder with these settings
        (the path quoted for Hydra: sweep folders have `=` and `,` in their names)."""
        return shlex.join(["waebench-eval", f'ckpt_path="{run_dir}"', *self.overrides()])


def fill_command(run_dir: str | Path) -> str:
    """The command that finishes a run's evaluation with the run's own settings: the
    `waebench-train` overrides it was launched with, `eval.enabled=true`, into its folder (a
    completed training is not run again, only evaluated); for a run without recorded
    overrides, `waebench-eval` with the eval settings of its `config.yaml`. Paths are quoted
    for Hydra: a sweep job's folder name holds `=` and `,`."""
    run_dir = Path(run_dir).resolve()
    overrides = record.launch_overrides(run_dir)
    if overrides is None:
        config = record.read_config(run_dir) or {}
        return EvalSettings.from_config(config.get("eval") or {}, strict=False).command(run_dir)
    kept = [
        o
        for o in overrides
        if o.split("=", 1)[0].lstrip("+~") not in ("eval.enabled", "ckpt_path", "hydra.run.dir")
    ]
    return shlex.join(["waebench-train", *kept, "eval.enabled=true", f'hydra.run.dir="{run_dir}"'])


class EvalSettingsError(UserError, ValueError):
    """Bad `eval` settings; `problems` lists each one with its key and what is allowed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid eval setting{'s' * (len(problems) > 1)}:\n{lines}")


def plain(config: Any) -> dict[str, Any]:
    """A config node as plain dicts and lists, interpolations resolved."""
    if OmegaConf.is_config(config):
        return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    return dict(config or {})


def build(cls, mapping: Mapping[str, Any], prefix: str, found: list[str], strict: bool):
    """An instance of the settings dataclass `cls` from `mapping`, its problems in `found`."""
    known = {f.name for f in fields(cls)}
    if strict:
        for key in mapping:
            if key not in known:
                found.append(f"{prefix}{key}: unknown setting; valid: {', '.join(sorted(known))}")
    values = {}
    for f in fields(cls):
        key = f"{prefix}{f.name}"
        if "section" in f.metadata:
            values[f.name] = build(f.metadata["section"], mapping.get(f.name) or {}, key + ".",
                                   found, strict)  # fmt: skip
            continue
        value = mapping.get(f.name)
        if strict and f.name not in mapping:
            found.append(f"{key}: missing (its default is in conf/eval/default.yaml)")
        elif strict and f.metadata["check"] and not f.metadata["check"].accepts(value):
            found.append(f"{key}={shown(value)}: must be {f.metadata['check'].describe()}")
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def sampler_problems(settings: EvalSettings, uses_prior: bool | None, regularizer: str) -> list:
    """What is wrong with `eval.samplers` for this model (`waebench.samplers.problems`) and
    with `eval.sampler.<name>`: an unknown sampler or option, a value out of the range its
    class declares (`options`), then options that do not go together (the class's
    `option_problems`, e.g. a two-stage `gamma: fixed` without `beta`)."""
    from waebench import samplers

    found = []
    if SamplerList().accepts(settings.samplers):
        found += samplers.problems(list(settings.samplers), uses_prior, regularizer)
    options = settings.sampler or {}
    if not isinstance(options, Mapping):
        return [*found, f"eval.sampler={options!r}: must be a mapping of sampler name to options"]
    for name, section_ in options.items():
        cls = samplers.SAMPLERS.get(name)
        if cls is None:
            found.append(
                f"eval.sampler.{name}: unknown sampler; valid: {', '.join(samplers.SAMPLERS)}"
            )
            continue
        accepted = getattr(cls, "options", {})
        before = len(found)
        for option, value in dict(section_ or {}).items():
            key = f"eval.sampler.{name}.{option}"
            if option not in accepted:
                valid = ", ".join(sorted(accepted)) or "none (it has no options)"
                found.append(f"{key}: unknown option; valid: {valid}")
            elif not accepted[option].accepts(value):
                found.append(f"{key}={shown(value)}: must be {accepted[option].describe()}")
        together = getattr(cls, "option_problems", None)
        if together and len(found) == before:
            found += together(dict(section_ or {}))
    return found


def flat_settings(obj, prefix: str, numbers_only: bool = False):
    """(`eval.<key>`, value) of every setting, nested sections flattened."""
    for f in fields(obj):
        if numbers_only and not f.metadata.get("numbers", True):
            continue
        value = getattr(obj, f.name)
        if is_dataclass(value):
            yield from flat_settings(value, f"{prefix}{f.name}.", numbers_only)
        else:
            yield f"{prefix}{f.name}", value


def default_settings() -> EvalSettings:
    """The settings of conf/eval/default.yaml (with a placeholder data folder)."""
    from waebench.build import CONFIG_DIR

    root = OmegaConf.create(
        {"eval": OmegaConf.load(Path(CONFIG_DIR) / "eval" / "default.yaml"),
         "paths": {"data_dir": "data"}}
    )  # fmt: skip
    return EvalSettings.from_config(root.eval, strict=False)
