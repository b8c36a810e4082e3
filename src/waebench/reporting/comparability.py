"""Whether runs can share one page (or one dataset of the results index): the same images
(dataset, size, channels, value range), the same `eval` settings wherever they change a
number (`EvalSettings.numbers_settings`), and every metric computed the same way
(`MetricDefinition.comparable_settings` of each entry)."""

from __future__ import annotations

from waebench.errors import UserError
from waebench.evaluation.definitions import definition_of
from waebench.reporting.runs import Run
from waebench.run.record import flatten

DATASET_KEYS = ("dataset.name", "dataset.image_size", "dataset.channels", "dataset.value_range")


class MixedRunsError(UserError, ValueError):
    """Runs that cannot share a page (another dataset, image size or evaluation setting)."""


def page_settings(run: Run) -> dict[str, object]:
    """The run's dataset keys and its `eval` settings that change a number."""
    flat = flatten(run.config)
    return {key: flat.get(key) for key in DATASET_KEYS} | run.eval_settings.numbers_settings()


def check_comparable(runs: list[Run]) -> None:
    """Raise MixedRunsError listing every setting in which the runs differ."""
    problems = differing({run.run_dir.name: page_settings(run) for run in runs})
    per_metric: dict[str, dict[str, object]] = {}
    for run in runs:
        for key, entry in run.entries.items():
            if isinstance(entry, dict):
                settings = dict(definition_of(key).comparable_settings(entry))
                per_metric.setdefault(run.run_dir.name, {})[key] = settings
    problems += differing(per_metric)
    if problems:
        raise MixedRunsError(
            "these runs cannot share one page, they differ in:\n  "
            + "\n  ".join(problems)
            + "\npass the runs of one dataset and one evaluation setting (e.g. one sweep "
            "folder), or re-evaluate the odd ones with `waebench-eval ckpt_path=<run> eval....`"
        )


def differing(per_run: dict[str, dict[str, object]]) -> list[str]:
    """`key: value in runs; value in runs` for every key whose value differs between the
    runs that have it."""
    out = []
    for key in dict.fromkeys(k for values in per_run.values() for k in values):
        values: dict[str, list[str]] = {}
        for name, settings in per_run.items():
            if key in settings:
                values.setdefault(repr(settings[key]), []).append(name)
        if len(values) > 1:
            out.append(f"{key}: " + "; ".join(f"{v} in {', '.join(r)}" for v, r in values.items()))
    return out
