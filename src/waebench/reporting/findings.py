"""What a reader of a comparison needs beyond each column's best: the comparisons that the
regularizers and the ex-post samplers exist to win, computed from the table, ranked by the
relative size of the gap, at most `LIMIT`, each naming the numbers it rests on.

Models are told apart by a property of their regularizer, `uses_prior` (whether its penalty
pulls the codes toward P_Z), never by name. With several seeds a gap counts only where it
is larger than the two standard deviations together; with one seed the page says once that
a gap smaller than the seed spread is no finding."""

from __future__ import annotations

import math
from dataclasses import dataclass

from waebench.evaluation.definitions import definition_of
from waebench.reporting.layout import ShownGroup, groups
from waebench.reporting.table import Cell, Column, Row, Table

LIMIT = 5
PRIOR = "fid/samples/prior"
LATENT = "latent_mmd/test"
MSE = "mse/test"


@dataclass
class Finding:
    size: float  # the relative gap, for the ranking
    text: str


def findings(table: Table) -> list[str]:
    """The findings, largest gap first, at most LIMIT."""
    found = []
    for group in (g for g in groups(table) if g.name == "FID"):
        found += fitted_beats_every_prior(group, table.rows)
        found += sampler_behind_another(group, table.rows)
    found += prior_missed(table.rows)
    found += reconstruction_cost(table.rows)
    found.sort(key=lambda f: -f.size)
    return [f.text for f in found[:LIMIT]]


def seed_line(seeds: int, spread: str = "") -> str:
    """The one-seed caveat (empty with several seeds)."""
    if seeds > 1:
        return ""
    known = f" (known from elsewhere: {spread})" if spread else ""
    return (
        f"One seed per model: a difference smaller than the spread between seeds{known} is "
        "not a finding."
    )


def apart(a: Cell, b: Cell, metric: str) -> bool:
    """Whether two means differ by more than their standard deviations together (with one
    seed: the caveat says so), and print differently."""
    spread = sum(0.0 if math.isnan(c.std) else c.std for c in (a, b))
    printed = definition_of(metric).format(a.mean) != definition_of(metric).format(b.mean)
    return printed and abs(a.mean - b.mean) > spread


def gap(worse: float, better: float) -> float:
    return abs(worse - better) / max(abs(worse), abs(better), 1e-12)


def fitted_beats_every_prior(group: ShownGroup, rows: list[Row]) -> list[Finding]:
    """Samples of a law fitted to the codes (any sampler but the prior) beat the best
    prior samples of the models with a prior."""
    n_column = next((s for s in group.columns if s.host == PRIOR), None)
    priors = [
        (row, found[1]) for row in rows if row.uses_prior and n_column
        and (found := n_column.cell(row)) and found[0].metric == PRIOR
    ]  # fmt: skip
    fitted = [
        (row, shown, found)
        for shown in group.columns
        if shown.host.startswith("fid/samples/")
        for row in rows
        if (found := shown.cell(row)) and found[0].metric != PRIOR
    ]
    if not priors or not fitted:
        return []
    prior_row, prior = min(priors, key=lambda p: p[1].mean)
    row, shown, (column, cell) = min(fitted, key=lambda f: f[2][1].mean)
    if cell.mean >= prior.mean or not apart(cell, prior, PRIOR):
        return []
    how = "the Gaussian fitted to its codes" if column.metric != shown.host else shown.heading
    space = dict(column.settings).get("extractor", "")
    return [
        Finding(
            gap(prior.mean, cell.mean),
            f"A law fitted to the codes after training beats every prior: {row.label} with "
            f"{how}, FID {fmt(column, cell)}, against the best prior samples, "
            f"{prior_row.label}'s {fmt(Column(PRIOR), prior)}"
            + (f" (`{space}` features)." if space else "."),
        )
    ]


def sampler_behind_another(group: ShownGroup, rows: list[Row]) -> list[Finding]:
    """A fitted sampler whose samples are worse than another's for every model that ran
    both (three models or more)."""
    out = []
    samplers = [s for s in group.columns if s.host.startswith("fid/samples/") and s.host != PRIOR]
    for a in samplers:
        for b in samplers:
            if a is b:
                continue
            pairs = [(a.cell(r), b.cell(r)) for r in rows]
            pairs = [(x[1], y[1]) for x, y in pairs if x and y]
            if len(pairs) >= 3 and all(x.mean > y.mean and apart(x, y, a.host) for x, y in pairs):
                gaps = sorted(x.mean - y.mean for x, y in pairs)
                out.append(
                    Finding(
                        min(gap(x.mean, y.mean) for x, y in pairs),
                        f"{a.heading} samples are behind {b.heading} samples for every one of "
                        f"the {len(pairs)} models that ran both, by "
                        f"{fmt(a.columns[0], Cell([gaps[0]]))} to "
                        f"{fmt(a.columns[0], Cell([gaps[-1]]))} FID.",
                    )
                )
    return out


def best_cell(rows: list[Row], metric: str) -> tuple[Row, Column, Cell] | None:
    found = [(r, c, cell) for r in rows for c, cell in r.cells.items()
             if c.metric == metric and cell.n]  # fmt: skip
    return min(found, key=lambda f: f[2].mean) if found else None


def prior_missed(rows: list[Row]) -> list[Finding]:
    """Models trained toward the prior whose codes are no closer to it (latent MMD) than
    those of the closest model without a prior."""
    baseline = best_cell([r for r in rows if r.uses_prior is False], LATENT)
    if baseline is None:
        return []
    base_row, base_column, base = baseline
    missed = [
        (r, c, cell) for r in rows if r.uses_prior for c, cell in r.cells.items()
        if c.metric == LATENT and c.settings == base_column.settings and cell.n
        and cell.mean >= base.mean and apart(cell, base, LATENT)
    ]  # fmt: skip
    if not missed:
        return []
    missed.sort(key=lambda m: -m[2].mean)
    listed = ", ".join(f"{r.label} {fmt(c, cell)}" for r, c, cell in missed)
    return [
        Finding(
            gap(missed[0][2].mean, base.mean),
            f"Trained toward the prior, yet no closer to it than {base_row.label}, a model "
            f"without a prior (latent MMD {fmt(base_column, base)}): {listed}.",
        )
    ]


def reconstruction_cost(rows: list[Row]) -> list[Finding]:
    """What pulling the codes toward the prior costs in reconstruction: the worst test MSE
    of a model with a prior against the best of the models without one."""
    without = best_cell([r for r in rows if r.uses_prior is False], MSE)
    with_prior = [
        (r, c, cell) for r in rows if r.uses_prior for c, cell in r.cells.items()
        if c.metric == MSE and cell.n
    ]  # fmt: skip
    if without is None or not with_prior:
        return []
    base_row, base_column, base = without
    row, column, cell = max(with_prior, key=lambda m: m[2].mean)
    if cell.mean <= base.mean or not apart(cell, base, MSE):
        return []
    return [
        Finding(
            gap(cell.mean, base.mean),
            f"Pulling the codes toward the prior costs reconstruction: {row.label}'s test MSE "
            f"{fmt(column, cell)} against {fmt(base_column, base)} for {base_row.label}, "
            f"without a prior (+{100 * (cell.mean / base.mean - 1):.0f} %).",
        )
    ]


def fmt(column: Column, cell: Cell) -> str:
    definition = definition_of(column.metric)
    return definition.format(cell.mean, cell.std if cell.n > 1 else None)
