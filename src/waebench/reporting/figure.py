"""One figure per dataset: a metric per model with error bars (std over seeds), and one
sample grid (`samples.png` of the model's first completed run) per model, side by side.
The metric is the FID of samples: the prior's, or for a model without a prior (AE, RAE)
that of the Gaussian fitted to its codes (RAE's N column), hatched."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from waebench.reporting.layout import STAND_IN, ShownColumn, groups  # noqa: E402
from waebench.reporting.table import Cell, Row, Table  # noqa: E402


def plotted_column(table: Table) -> tuple[ShownColumn | None, str]:
    """The N column (samples) of the first FID table when there is one, else the first
    column with values; and the caption of its table's settings."""
    found = groups(table)
    for group in found:
        for shown in group.columns:
            if shown.host.startswith("fid/samples"):
                return shown, ", ".join(f"{k}={v}" for k, v in group.shared.items())
    if found:
        return found[0].columns[0], ""
    return None, ""


def plotted_cells(table: Table, shown: ShownColumn) -> list[tuple[Row, Cell, bool]]:
    """(row, its cell, whether it stands in: a model without a prior's fitted Gaussian) for
    the rows with a value."""
    out = []
    for row in table.rows:
        found = shown.cell(row)
        if found is not None:
            out.append((row, found[1], found[0].metric != shown.host))
    return out


def write_figure(table: Table, path: Path) -> Path:
    ours = table.rows
    column, settings = plotted_column(table)
    grids = [
        (
            r,
            next(
                (
                    x.run_dir / "samples.png"
                    for x in r.completed
                    if (x.run_dir / "samples.png").is_file()
                ),
                None,
            ),
        )
        for r in ours
    ]
    grids = [(r, g) for r, g in grids if g is not None]
    n = max(len(grids), 1)
    fig = plt.figure(figsize=(max(6.0, 2.6 * n), 6.5))
    chart = fig.add_subplot(2, 1, 1)
    if column is not None:
        plotted = plotted_cells(table, column)
        means = [cell.mean for _, cell, _ in plotted]
        stds = [0.0 if math.isnan(cell.std) else cell.std for _, cell, _ in plotted]
        bars = chart.bar(range(len(plotted)), means, yerr=stds, capsize=4, color="tab:blue")
        for bar, (_, _, fitted) in zip(bars, plotted, strict=True):
            bar.set_hatch("//" if fitted else "")
        chart.set_xticks(range(len(plotted)), [r.label for r, _, _ in plotted], fontsize=7)
        definition = column.definition
        chart.set_ylabel(f"{definition.group} {column.heading}")
        title = f"{definition.title} ({settings})" if settings else definition.title
        if any(fitted for _, _, fitted in plotted):
            title += f"; hatched ({STAND_IN}): a model without a prior, samples of the Gaussian fitted to its codes"
        chart.set_xlabel(textwrap.fill(title, 110), fontsize=7)
    else:
        chart.text(0.5, 0.5, "no completed run", ha="center", va="center")
    chart.set_title(f"{table.dataset}: mean ± std over seeds")
    for i, (row, grid) in enumerate(grids):
        ax = fig.add_subplot(2, n, n + i + 1)
        ax.imshow(imread(grid), cmap="gray")
        ax.set_title(row.label, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
