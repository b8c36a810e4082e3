"""One comparison table per dataset: rows are models (a regularizer with its settings), columns
are metrics, cells are mean ± std over the seeds of the completed runs.

FID columns are keyed by their settings (metric, feature extractor, number of generated and of
real images, real split): numbers computed differently never share a column.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from waebench.papers import PUBLISHED
from waebench.reporting.runs import Run
from waebench.run.record import NOT_MODEL_KEYS, Status, flatten

FID_SETTINGS = ("extractor", "num_fake", "num_real", "real")
# Non-FID columns, in table order: (name in metrics.json's `eval`, title).
OTHER_COLUMNS = (
    ("mse/test", "reconstruction MSE/pixel"),
    ("rec/test", "test reconstruction cost"),
    ("latent_mmd/test", "latent MMD"),
    ("mardia_skewness/test", "Mardia skewness"),
    ("mardia_kurtosis/test", "Mardia kurtosis (distance of b2 to d(d+2))"),
)
# A latent-MMD entry without `codes` predates the sampled-code estimator: for a Gaussian
# encoder it scored the means, so it gets its own column rather than mixing with new ones.
UNRECORDED_CODES = (
    ("codes", "unrecorded: an older evaluation, on the means of a Gaussian encoder"),
)
# FID columns, in table order: one per sampler of `eval.samplers`, then the other image sets.
FID_TITLES = {
    "fid/samples/prior": "FID samples",
    "fid/samples/gaussian": "FID samples (Gaussian fitted to the codes)",
    "fid/samples/gmm": "FID samples (GMM)",
    "fid/samples/two_stage": "FID samples (two-stage VAE)",
    "fid/samples/flow": "FID samples (flow)",
    "fid/reconstructions": "FID reconstructions",
    "fid/interpolations": "FID interpolations",
}


@dataclass(frozen=True)
class Column:
    metric: str
    settings: tuple[tuple[str, Any], ...] = ()
    published: bool = False

    @property
    def title(self) -> str:
        base = FID_TITLES.get(self.metric) or dict(OTHER_COLUMNS).get(self.metric, self.metric)
        if self.published:
            base = f"published {base}"
        if not self.settings:
            return base
        details = ", ".join(f"{k}={v}" for k, v in self.settings if v is not None)
        return f"{base} [{details}]"


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


@dataclass
class Row:
    model: str
    settings: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    cells: dict[Column, Cell] = field(default_factory=dict)
    source: str = ""  # set for published rows

    @property
    def completed(self) -> list[Run]:
        return [r for r in self.runs if r.status == Status.COMPLETED]

    @property
    def label(self) -> str:
        if self.source:
            return f"{self.model} (published: {self.source})"
        shown = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"{self.model} ({shown})" if shown else self.model


@dataclass
class Table:
    dataset: str
    rows: list[Row]
    columns: list[Column]


def run_entries(run: Run) -> dict[Column, float]:
    """The numbers one completed run contributes: its `eval` entries (FID names may carry an
    `@<extractor>` suffix; the extractor is in the settings anyway), and its test cost when
    the evaluation did not record `rec/test`."""
    entries: dict[Column, float] = {}
    for name, entry in (run.metrics or {}).get("eval", {}).items():
        metric = name.split("@")[0]
        if not isinstance(entry, dict) or "value" not in entry:
            continue
        if metric.startswith(("fid/", "kid/")):
            settings = tuple((k, entry.get(k)) for k in FID_SETTINGS)
            entries[Column(metric, settings)] = float(entry["value"])
        elif metric == "latent_mmd/test" and "codes" not in entry:
            entries[Column(metric, UNRECORDED_CODES)] = float(entry["value"])
        elif metric in dict(OTHER_COLUMNS):
            entries[Column(metric)] = float(entry["value"])
    test = (run.metrics or {}).get("test", {})
    if Column("rec/test") not in entries and "rec" in test:
        entries[Column("rec/test")] = float(test["rec"])
    return entries


def model_identity(run: Run) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """(model name, the config values that make it this model) for grouping seeds together."""
    flat = flatten(run.config)
    kept = {
        k: v
        for k, v in flat.items()
        if not any(k == p or k.startswith(p + ".") for p in NOT_MODEL_KEYS)
    }
    return run.model, tuple(sorted((k, repr(v)) for k, v in kept.items()))


def key_settings(run: Run, varying: set[str]) -> dict[str, Any]:
    """λ and d_z always (λ not for the AE), plus every setting that varies between the rows
    of the same model."""
    flat = flatten(run.config)
    shown: dict[str, Any] = {}
    if run.model != "AE":
        shown["λ"] = flat.get("regularizer.weight")
    shown["d_z"] = flat.get("model.latent_dim")
    for key in sorted(varying - {"regularizer.weight", "model.latent_dim"}):
        shown[key] = flat.get(key)
    return shown


def varying_keys(identity: tuple, others: list[tuple]) -> set[str]:
    """Config keys whose value differs between this model and another of the same name."""
    mine = dict(identity)
    return {k for other in others for k, v in dict(other).items() if mine.get(k) != v} | {
        k for other in others for k in mine if k not in dict(other)
    }


def build_tables(runs: list[Run]) -> list[Table]:
    tables = []
    for dataset in sorted({r.dataset for r in runs}):
        groups: dict[tuple, list[Run]] = {}
        for run in (r for r in runs if r.dataset == dataset):
            groups.setdefault(model_identity(run), []).append(run)
        rows = []
        for (model, identity), members in sorted(groups.items(), key=lambda g: g[0]):
            varying = varying_keys(identity, [ident for (m, ident) in groups if m == model])
            row = Row(model, key_settings(members[0], varying), runs=members)
            for run in row.completed:
                for column, value in run_entries(run).items():
                    row.cells.setdefault(column, Cell()).values.append(value)
            rows.append(row)
        rows += published_rows(dataset, {row.model for row in rows})
        tables.append(Table(dataset, rows, ordered_columns(rows)))
    return tables


def published_rows(dataset: str, models: set[str]) -> list[Row]:
    """One row per published model of `dataset` that stands beside one of ours (`models`),
    with all its numbers from that source."""
    rows: dict[tuple[str, str], Row] = {}
    for value in PUBLISHED:
        if value.dataset == dataset and value.model in models:
            row = rows.setdefault(
                (value.source, value.label), Row(value.label, {}, source=value.source)
            )
            column = Column(value.metric, value.settings, published=True)
            row.cells[column] = Cell([value.value])
    return list(rows.values())


def ordered_columns(rows: list[Row]) -> list[Column]:
    """FID columns first (by metric, ours before published), then the other metrics; a metric
    no run reported is still shown, empty, so a missing evaluation is visible."""
    present = {c for row in rows for c in row.cells}
    for metric in ("fid/samples/prior", "fid/reconstructions"):
        if not any(c.metric == metric and not c.published for c in present):
            present.add(Column(metric))
    fids = sorted(
        (c for c in present if c.metric.startswith(("fid/", "kid/"))),
        key=lambda c: (
            list(FID_TITLES).index(c.metric) if c.metric in FID_TITLES else 99,
            c.metric,
            c.published,
            repr(c.settings),
        ),
    )
    others = []
    for metric, _ in OTHER_COLUMNS:
        others.append(Column(metric))
        others += sorted((c for c in present if c.metric == metric and c.settings), key=repr)
    return fids + others
