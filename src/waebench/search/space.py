"""The search space: Hydra sweep overrides -> Optuna distributions, checked against the config.

interval(1e-4, 1e-2)             FloatDistribution (uniform)
tag(log, interval(1e-4, 1e-2))   FloatDistribution, log scale
tag(int, interval(2, 64))        IntDistribution (add `log` for a log scale)
range(8, 65, 8)                  IntDistribution with step (floats: FloatDistribution)
choice(mmd, gan) or mmd,gan      CategoricalDistribution
anything else                    a fixed override of every trial
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from waebench.errors import UserError

SCALARS = (bool, int, float, str, type(None))


class SearchSpaceError(UserError, ValueError):
    pass


def parse_space(
    params: dict[str, str], arguments: list[str]
) -> tuple[dict[str, BaseDistribution], list[str]]:
    """`hydra.sweeper.params` and the command line's overrides -> ({name: distribution}, fixed
    overrides). A name is the override's key (`model.optimizer.lr`, `regularizer`)."""
    parser = OverridesParser.create()
    space: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    for line in lines:
        try:
            override = parser.parse_override(line)
        except Exception as error:
            raise SearchSpaceError(f"search space: cannot parse {line!r}: {error}") from error
        name = override.get_key_element()
        if override.is_sweep_override():
            space[name] = distribution(name, override)
        else:
            fixed.append(f"{name}={override.get_value_element_as_str()}")
    return space, fixed


def distribution(name: str, override: Override) -> BaseDistribution:
    sweep = override.value()
    try:
        if isinstance(sweep, IntervalSweep):
            log = "log" in sweep.tags
            if "int" in sweep.tags:
                return IntDistribution(int(sweep.start), int(sweep.end), log=log)
            return FloatDistribution(sweep.start, sweep.end, log=log)
        if isinstance(sweep, RangeSweep):
            values = list(override.sweep_iterator())
            if all(isinstance(v, int) for v in values):
                return IntDistribution(values[0], values[-1], step=sweep.step)
            return FloatDistribution(values[0], values[-1], step=sweep.step)
        if isinstance(sweep, ChoiceSweep):
            choices = list(override.sweep_iterator())
            if not all(isinstance(c, SCALARS) for c in choices):
                raise SearchSpaceError("choices must be numbers, strings, booleans or null")
            return CategoricalDistribution(choices)
    except (ValueError, TypeError) as error:
        raise SearchSpaceError(f"search space: {name}: {error}") from error
    raise SearchSpaceError(
        f"search space: {name}: {override.input_line!r} is not interval(...), range(...) or "
        "choice(...)"
    )


def values_of(dist: BaseDistribution) -> list[Any]:
    """The values that stand for a distribution in type checks: its bounds, or its choices."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]  # type: ignore[attr-defined]


def check_space(space: dict[str, BaseDistribution], config: DictConfig) -> None:
    """Every searched key exists in the composed config (`+key` adds one), and its values have
    the type of the config's value, so that a typo or a float for an int fails before any trial."""
    for name, dist in space.items():
        key = name.lstrip("+~")
        current = OmegaConf.select(config, key, default="???missing")
        if current == "???missing":
            if not name.startswith("+"):
                raise SearchSpaceError(
                    f"search space: {name} is not a key of the config; fix its name, or write "
                    f"+{name} to add a new key"
                )
            continue
        if isinstance(current, DictConfig):  # a config group: choices name its options
            if not all(isinstance(v, str) for v in values_of(dist)):
                raise SearchSpaceError(
                    f"search space: {name} is a config group; search it with choice(<option>, ...)"
                )
            continue
        wanted = expected_type(current)
        if wanted is None:
            continue
        wrong = [v for v in values_of(dist) if not isinstance(v, wanted) or isinstance(v, bool)]
        if wanted is bool:
            wrong = [v for v in values_of(dist) if not isinstance(v, bool)]
        if isinstance(dist, FloatDistribution) and wanted is int:
            wrong = wrong or [dist.low]
        if wrong:
            hint = " (ints: tag(int, interval(a, b)) or range(a, b, step))" if wanted is int else ""
            raise SearchSpaceError(
                f"search space: {name} is {type(current).__name__} in the config ({current!r}) "
                f"but its search space gives {type(wrong[0]).__name__} values like {wrong[0]!r}"
                f"{hint}"
            )


def expected_type(current: Any) -> type | tuple[type, ...] | None:
    if isinstance(current, bool):
        return bool
    if isinstance(current, int):
        return int
    if isinstance(current, float):
        return (int, float)
    if isinstance(current, str):
        return str
    return None  # null or a list: anything goes


def trial_overrides(params: dict[str, Any]) -> list[str]:
    """A trial's parameters -> its overrides (`model.optimizer.lr=0.00123`)."""
    return [f"{name}={'null' if value is None else value}" for name, value in params.items()]
