"""The numbers of a comparison, per dataset: rows are models (a regularizer with its
settings), columns are metrics with the settings that computed them, cells hold the values
of the completed runs' seeds; and the published numbers of the same dataset and models.

A column is a metric of `waebench.evaluation.definitions` and its comparable settings
(feature extractor, image counts, real set, the checkpoint scored, sampler options, the
reconstructions' codes, the interpolation pairs, ...): numbers computed differently never
share a column. How a table is shown is `layout`'s job.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from waebench.evaluation.definitions import MetricDefinition, definition_of, ordering
from waebench.papers import PUBLISHED, PublishedValue
from waebench.reporting.runs import Run
from waebench.run.record import NOT_MODEL_KEYS, Evaluation, Status, flatten


@dataclass(frozen=True)
class Column:
    """A metric (its definition's key) computed with `settings`."""

    metric: str
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def definition(self) -> MetricDefinition:
        return definition_of(self.metric)


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (n - 1 in the denominator); nan for one seed."""
        return statistics.stdev(self.values) if self.n > 1 else math.nan


@dataclass(eq=False)
class Row:
    """One model: its runs (one per seed) and their values per column."""

    model: str
    settings: dict[str, Any]  # the config values shown to tell it apart (`key_settings`)
    runs: list[Run] = field(default_factory=list)
    cells: dict[Column, Cell] = field(default_factory=dict)

    @property
    def completed(self) -> list[Run]:
        return [r for r in self.runs if r.status == Status.COMPLETED]

    @property
    def counted(self) -> list[Run]:
        """The completed runs the cells hold, one per seed: runs of one config and seed are
        one seed, not n=2 (the newest whose evaluation completed, else the newest)."""
        per_seed = {}
        for run in sorted(self.completed, key=lambda r: (evaluated(r), r.ended or 0)):
            per_seed[repr(run.seed)] = run
        return list(per_seed.values())

    @property
    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"{self.model} ({shown})" if shown else self.model

    @property
    def uses_prior(self) -> bool | None:
        return self.runs[0].uses_prior if self.runs else None

    @property
    def weight(self) -> float | None:
        """λ, the regularizer's weight (None where the config has none)."""
        return flatten(self.runs[0].config).get("regularizer.weight") if self.runs else None


@dataclass
class Table:
    dataset: str
    rows: list[Row]
    columns: list[Column]  # every column some row has a value in, in table order
    published: list[PublishedValue] = field(default_factory=list)


def evaluated(run: Run) -> bool:
    return (run.metrics or {}).get("evaluation") == Evaluation.COMPLETED


def run_entries(run: Run) -> dict[Column, float]:
    """The numbers one run contributes, each in its column."""
    out = {}
    for key, entry in run.entries.items():
        if isinstance(entry, dict) and isinstance(entry.get("value"), int | float):
            definition = definition_of(key)
            out[Column(definition.key, definition.comparable_settings(entry))] = float(
                entry["value"]
            )
    return out


def model_identity(run: Run) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """(model name, the config values that make it this model) for grouping seeds together."""
    flat = flatten(run.config)
    kept = {
        k: v
        for k, v in flat.items()
        if not any(k == p or k.startswith(p + ".") for p in NOT_MODEL_KEYS)
    }
    return run.model, tuple(sorted((k, repr(v)) for k, v in kept.items()))


def key_settings(varying: set[str], run: Run) -> dict[str, Any]:
    """The settings that tell this row apart from another row of the same model name."""
    flat = flatten(run.config)
    names = {"regularizer.weight": "λ", "model.latent_dim": "d_z"}
    return {names.get(k, k): flat.get(k) for k in sorted(varying)}


def varying_keys(identity: tuple, others: list[tuple]) -> set[str]:
    """Config keys whose value differs between this model and another of the same name."""
    mine = dict(identity)
    return {k for other in others for k, v in dict(other).items() if mine.get(k) != v} | {
        k for other in others for k in mine if k not in dict(other)
    }


def build_tables(runs: list[Run]) -> list[Table]:
    """One table per dataset of `runs`."""
    tables = []
    for dataset in sorted({r.dataset for r in runs}):
        groups: dict[tuple, list[Run]] = {}
        for run in (r for r in runs if r.dataset == dataset):
            groups.setdefault(model_identity(run), []).append(run)
        rows = []
        for (model, identity), members in sorted(groups.items(), key=lambda g: g[0]):
            varying = varying_keys(identity, [ident for (m, ident) in groups if m == model])
            row = Row(model, key_settings(varying, members[0]), runs=members)
            for run in row.counted:
                for column, value in run_entries(run).items():
                    row.cells.setdefault(column, Cell()).values.append(value)
            rows.append(row)
        present = {c for row in rows for c in row.cells}
        columns = sorted(present, key=lambda c: (ordering(c.metric), c.metric, repr(c.settings)))
        models = {row.model for row in rows}
        published = [v for v in PUBLISHED if v.dataset == dataset and v.model in models]
        tables.append(Table(dataset, rows, columns, published))
    return tables
