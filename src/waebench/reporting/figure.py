"""One figure per dataset: a metric per model with error bars (std over seeds), and one
sample grid (`samples.png` of the model's first completed run) per model, side by side."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from waebench.reporting.table import Column, Table  # noqa: E402


def plotted_column(table: Table) -> Column | None:
    """Our FID of samples when any run has it, else the first metric with values."""
    filled = [c for c in table.columns if any(c in r.cells for r in table.rows if not r.source)]
    for column in filled:
        if column.metric.startswith("fid/samples"):
            return column
    return filled[0] if filled else None


def write_figure(table: Table, path: Path) -> Path:
    ours = [r for r in table.rows if not r.source]
    column = plotted_column(table)
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
        rows = [r for r in ours if column in r.cells]
        means = [r.cells[column].mean for r in rows]
        stds = [0.0 if math.isnan(r.cells[column].std) else r.cells[column].std for r in rows]
        chart.bar(range(len(rows)), means, yerr=stds, capsize=4, color="tab:blue")
        chart.set_xticks(range(len(rows)), [r.label for r in rows], fontsize=7)
        chart.set_ylabel(column.title.split(" [")[0])
        chart.set_xlabel(textwrap.fill(column.title, 110), fontsize=7)
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
