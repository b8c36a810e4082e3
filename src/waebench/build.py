"""Build a run's objects from its composed config: where the configs live, the check that
every `_target_` can be built (run before training), and the model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra._internal.utils import _locate  # hydra.utils.get_object without its error log
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from waebench.config_check import ConfigValueError

# The configs: in the package (a wheel's copy), which in a checkout is the symlink
# src/waebench/conf -> ../../conf, so editable installs read the repository's conf/.
CONFIG_DIR = str((Path(__file__).resolve().parent / "conf").resolve())

IMPORT_FIX = (
    "make its module importable where waebench-train runs: put the folder that holds it on "
    "PYTHONPATH (PYTHONPATH=/path/to/project waebench-train ...) or `pip install -e` your "
    "project (docs/extending.md)"
)


def leaves(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(config key, value) of every leaf of a config container, e.g. ('model.width', 128)."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from leaves(value, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from leaves(value, f"{key}[{i}]")
    else:
        yield key, node


def source_of(key: str, value: str) -> str:
    """Where `key: value` was set: the command line, or the config file (of the group's choice
    or of the experiment) that holds it; '' when that cannot be told (no Hydra runtime)."""
    if not HydraConfig.initialized():
        return ""
    hydra_cfg = HydraConfig.get()
    if any(o.split("=", 1)[0].lstrip("+~") == key for o in hydra_cfg.overrides.task):
        return "set on the command line"
    choices = hydra_cfg.runtime.choices
    group = key.split(".", 1)[0]
    candidates = [(group, choices.get(group), key.split(".", 1)[-1])]
    candidates.append(("experiment", choices.get("experiment"), key))
    folders = [Path(s.path) for s in hydra_cfg.runtime.config_sources if s.schema == "file"]
    for folder_group, choice, relative_key in candidates:
        for folder in folders if choice else []:
            path = folder / folder_group / f"{choice}.yaml"
            if path.is_file() and raw_value(OmegaConf.load(path), relative_key) == value:
                return f"set in {path}"
    return ""


def raw_value(cfg: DictConfig, key: str) -> Any:
    """The value at dotted `key` as written (interpolations and ??? unresolved), or None."""
    node: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def import_problem(target: str) -> tuple[str, str] | None:
    """Why `target` does not import, and the fix; None when it does."""
    try:
        _locate(target)
    except Exception as error:
        cause = error.__cause__ or error
        missing = getattr(cause, "name", None) if isinstance(cause, ModuleNotFoundError) else None
        if missing == target.split(".")[0]:
            return f"no module named {missing!r} on the Python path", IMPORT_FIX
        if missing and f"{target}.".startswith(f"{missing}."):
            parent, _, name = missing.rpartition(".")
            return f"{parent!r} has no {name!r}", "correct the name (package.module.ClassName)"
        if missing:
            return (
                f"importing it needs the module {missing!r}, which is not installed",
                f"install the package that provides {missing!r}",
            )
        return (
            f"importing it raised {type(cause).__name__}: {cause}",
            "fix the error in that module",
        )
    return None


def check_buildable(cfg: DictConfig) -> None:
    """Refuse, before anything is built or written, a config with a required value left out
    (`???`), a `_target_` that does not import, or a regularizer that does not subclass
    `LatentRegularizer`; each problem is listed with its config key, where it was set and
    the fix."""
    from waebench.regularizers import LatentRegularizer

    problems = []
    for key, value in leaves(OmegaConf.to_container(cfg, resolve=False)):
        if value == "???":
            where = source_of(key, value).removeprefix("set in ") or "the config"
            problems.append(f"{key} is required (??? in {where}). Fix: give it, {key}=<value>.")
        if key.rsplit(".", 1)[-1] != "_target_" or not isinstance(value, str):
            continue
        target = OmegaConf.select(cfg, key) if value.startswith("${") else value
        where = source_of(key, target)
        where = f" ({where})" if where else ""
        problem = import_problem(target)
        if problem:
            problems.append(
                f"{key}={target}{where} does not import: {problem[0]}. Fix: {problem[1]}."
            )
            continue
        found = _locate(target)
        if key == "regularizer._target_" and not (
            isinstance(found, type) and issubclass(found, LatentRegularizer)
        ):
            problems.append(
                f"{key}={target}{where} is not a subclass of waebench.LatentRegularizer. Fix: "
                "derive it from waebench.LatentRegularizer and implement forward(codes, prior) "
                "-> penalty (docs/extending.md)."
            )
    if problems:
        listed = "\n".join(f"  {p}" for p in problems)
        raise ConfigValueError(f"the config cannot be built:\n{listed}")


def check_model_builds(cfg: DictConfig) -> None:
    """Build the model once, before anything is written, and refuse a config it cannot be
    built from with the builder's own message: a choice or value a class refuses (an unknown
    kernel or reconstruction cost, an unsupported value range, model.compile with a decoder
    penalty, ...) or an option it does not take. Other errors are bugs: raised as they are."""
    try:
        build_model(cfg)
    except InstantiationException as error:
        cause = error.__cause__
        while isinstance(cause, InstantiationException):  # the regularizer inside the model
            cause = cause.__cause__
        option = isinstance(cause, TypeError) and "keyword argument" in str(cause)
        if not isinstance(cause, ValueError) and not option:
            raise
        raise ConfigValueError(f"the model cannot be built from this config: {cause}") from error


def build_model(cfg: DictConfig):
    """The `AutoEncoder` of `cfg.model`, with `cfg.regularizer` as its regularizer."""
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg["regularizer"] = OmegaConf.to_container(cfg.regularizer, resolve=True)
    return instantiate(model_cfg, _recursive_=False, _convert_="all")
