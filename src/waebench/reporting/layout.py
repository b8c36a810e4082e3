"""A comparison's tables in a paper's layout (Ghosh et al. 2020, Table 1): one row per model,
one column per metric (REC, N, GMM, 2-stage, Interp, ...), the settings that the columns
share stated once in the caption; mean ± sample std with the number of seeds stated once
(the bare value for one seed), the best of each column in bold; a published number in the
cell beside ours where it was computed alike (every setting both state agrees:
`definitions.differences`), else in a compact table of its own whose caption says what
differs; what still differs where the settings agree (`PublishedValue.note`) is a footnote
(‡) of the number.

N is the prior's samples for a model with a prior and, marked °, the Gaussian fitted to the
codes of a model without one (`MetricDefinition.stands_in_for`). A column that none of our
models has a value in is not shown. Every table of a page, a report and the results index is
a `ShownTable`; `render` writes it as Markdown, LaTeX and CSV.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from waebench.evaluation.definitions import (
    GROUPS,
    MetricDefinition,
    definition_of,
    differences,
    ordering,
)
from waebench.papers import PublishedValue
from waebench.reporting.notes import Notes
from waebench.reporting.table import Cell, Column, Row, Table

STAND_IN = "°"
COLLAPSED = "⚠"
STILL_DIFFERS = "‡"


@dataclass
class Shown:
    """One cell as shown: its text and what it rests on (for the CSV)."""

    text: str = "—"
    mean: float | None = None
    std: float | None = None
    n: int = 0
    best: bool = False
    marks: tuple[str, ...] = ()  # ° a stand-in, †i a note
    published: tuple[tuple[str, str], ...] = ()  # (source mark [‡i], value) beside ours
    key: str = ""  # the metric key of the number


@dataclass
class ShownTable:
    slug: str  # file stem of its LaTeX and CSV
    title: str
    caption: str
    header: list[str]  # the column headings after "model"
    rows: list[tuple[str, list[Shown]]]
    footnotes: list[str] = field(default_factory=list)


@dataclass
class ShownColumn:
    """A column as shown: its heading, the metric it shows (`host`) and the table columns it
    shows, the first one a row has wins; a column of another metric stands in for the host
    (marked °)."""

    heading: str
    host: str
    columns: tuple[Column, ...]

    @property
    def definition(self) -> MetricDefinition:
        return definition_of(self.host)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.metric for c in self.columns)

    def cell(self, row: Row) -> tuple[Column, Cell] | None:
        for column in self.columns:
            cell = row.cells.get(column)
            if cell is not None and cell.n:
                return column, cell
        return None


@dataclass
class ShownGroup:
    """The columns of one table: a group of `GROUPS` with one value of its `splits_by`."""

    name: str
    split: tuple[Any, ...]
    columns: list[ShownColumn]
    shared: dict[str, Any]  # the settings stated in the caption


def seeds_of(rows: list[Row]) -> int:
    """The number of seeds stated once: the most common number of seeds of a row (its
    counted runs; the larger on a tie); a cell over another number says its n."""
    counts = Counter(len(r.counted) for r in rows if r.counted)
    return max(counts, key=lambda n: (counts[n], n)) if counts else 0


def groups(table: Table) -> list[ShownGroup]:
    """The metric tables of `table`, in `GROUPS` order, each with its shown columns."""
    by_group: dict[tuple[str, tuple], list[Column]] = {}
    for column in table.columns:
        name = column.definition.group
        split = tuple(dict(column.settings).get(k) for k in GROUPS[name].splits_by)
        by_group.setdefault((name, split), []).append(column)
    order = list(GROUPS)
    out = []
    for name, split in sorted(by_group, key=lambda key: (order.index(key[0]), repr(key[1]))):
        shown = merged_columns(by_group[name, split], table.rows)
        if shown:
            shared = shared_settings(shown)
            name_the_rest(shown, shared)
            out.append(ShownGroup(name, split, shown, shared))
    return out


def merged_columns(columns: list[Column], rows: list[Row]) -> list[ShownColumn]:
    """One shown column per metric, a stand-in merged into its host's (N: the prior's
    samples, else the fitted Gaussian's °). A stand-in keeps a column of its own where some
    model has both; it is the host's column where no model has the host. Columns with no
    value of ours are dropped."""
    by_key = {(c.metric, c.settings): c for c in columns}

    def host_of(column: Column) -> Column | None:
        key = column.definition.stands_in_for
        return by_key.get((key, column.settings)) if key else None

    shown = []
    for column in columns:
        host_key = column.definition.stands_in_for
        if host_key:
            host = host_of(column)
            if host is None:
                shown.append(ShownColumn(definition_of(host_key).column, host_key, (column,)))
            elif any(r.cells.get(host, Cell()).n and r.cells.get(column, Cell()).n for r in rows):
                shown.append(ShownColumn(column.definition.column, column.metric, (column,)))
            continue
        guests = tuple(c for c in columns if host_of(c) is column)
        shown.append(ShownColumn(column.definition.column, column.metric, (column, *guests)))
    shown = [s for s in shown if any(s.cell(r) for r in rows)]
    shown.sort(key=lambda s: (ordering(s.host), s.host != s.columns[0].metric))
    return headed(shown)


def headed(shown: list[ShownColumn]) -> list[ShownColumn]:
    """Headings made unique: columns of one heading get the settings that differ."""
    counts = Counter(s.heading for s in shown)
    headings = []
    for s in shown:
        heading = s.heading
        if counts[heading] > 1:
            others = [o for o in shown if o.heading == s.heading and o is not s]
            mine = dict(s.columns[0].settings)
            differing = {
                k: v for k, v in mine.items()
                if any(dict(o.columns[0].settings).get(k) != v for o in others)
            }  # fmt: skip
            heading = f"{heading} ({compact(differing)})"
        headings.append(heading)
    for s, heading in zip(shown, headings, strict=True):
        s.heading = heading
    return shown


def shared_settings(shown: list[ShownColumn]) -> dict[str, Any]:
    """Each scalar setting's most common value over the columns: stated once in the
    caption (`name_the_rest` names the other values in their columns' headings)."""
    values: dict[str, Counter] = {}
    for s in shown:
        for k, v in s.columns[0].settings:
            if not isinstance(v, tuple):
                values.setdefault(k, Counter())[v] += 1
    return {k: c.most_common(1)[0][0] for k, c in values.items()}


def name_the_rest(shown: list[ShownColumn], shared: dict[str, Any]) -> None:
    """A column whose setting differs from the shared value names it in its heading."""
    for s in shown:
        own = {
            k: v for k, v in s.columns[0].settings
            if k in shared and v != shared[k] and f"{k}=" not in s.heading
        }  # fmt: skip
        if own:
            s.heading = f"{s.heading} ({compact(own)})"


def compact(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={number(v)}" for k, v in settings.items())


def number(value: Any) -> str:
    """Integers with thousands separators; tuples as a/b/c; pairs as k=v."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={number(v)}" for k, v in value.items())
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return ", ".join(f"{k}={number(v)}" for k, v in value)
        return "/".join(number(v) for v in value)
    return str(value)


def settings_text(group: ShownGroup) -> str:
    """What the group's columns share: its caption's fragments whose settings they all have,
    then the other shared settings and the options of the samplers."""
    fields = {k: number(v) for k, v in group.shared.items()}
    fragments, used = [], set()
    for fragment in GROUPS[group.name].caption:
        names = set(re.findall(r"{(\w+)}", fragment))
        if names <= set(fields):
            fragments.append(fragment.format(**fields))
            used |= names
    fragments += [f"{k}={number(v)}" for k, v in group.shared.items() if k not in used]
    for s in group.columns:  # the sampler options of the samples, once per sampler
        options = dict(s.columns[0].settings).get("sampler")
        if options:
            fragments.append(f"{s.heading}: {number(options)}")
    return "; ".join(fragments) or GROUPS[group.name].title


def direction_text(columns: list[ShownColumn]) -> str:
    """'Lower is better.' where every column agrees, else '' (the headings carry arrows)."""
    ways = {s.definition.better.describe() for s in columns}
    return f"{ways.pop().capitalize()}." if len(ways) == 1 else ""


def caption_of(group: ShownGroup, seeds: int, seed_list: list[Any]) -> str:
    """The caption: the group's shared settings, the direction, the seeds."""
    parts = [settings_text(group) + ".", direction_text(group.columns)]
    return " ".join(p for p in [*parts, seeds_phrase(seeds, seed_list)] if p)


def seeds_phrase(seeds: int, seed_list: list[Any]) -> str:
    listed = f"seed{'s' * (len(seed_list) != 1)} {', '.join(map(str, seed_list))}"
    if seeds <= 1:
        return (
            f"One seed per model ({listed}): a bare value is one run; a cell over several "
            "seeds gives mean ± sample standard deviation and n."
        )
    return (
        f"Mean ± sample standard deviation over {seeds} seeds per model ({listed}); a "
        "cell over another number of seeds says n."
    )


def metric_tables(table: Table, notes: Notes | None = None) -> list[ShownTable]:
    """The metric tables of a dataset (ours), then one compact table per published source
    whose numbers could not stand beside ours."""
    notes = notes or Notes()
    rows = table.rows
    seeds = seeds_of(rows)
    seed_list = sorted({r.seed for row in rows for r in row.completed}, key=str)
    letters = source_letters(table.published)
    placed: set[int] = set()
    out = []
    incomplete = [r for r in rows if runs_note(r)]
    shown_groups = groups(table)
    for position, group in enumerate(shown_groups):
        arrows = not direction_text(group.columns)  # else the caption says which way
        header = [arrowed(s) if arrows else s.heading for s in group.columns]
        body = []
        still: dict[str, int] = {}  # the notes of the published numbers beside ours, numbered
        for row in rows:
            cells = [
                shown_cell(row, s, table.published, letters, placed, notes, seeds, still)
                for s in group.columns
            ]
            body.append((row_label(row), cells))
        mark_best(group.columns, body)
        extra_header, extra = extra_columns(group, rows, incomplete, first=position == 0)
        body = [(label, [*extra[i], *cells]) for i, (label, cells) in enumerate(body)]
        out.append(
            ShownTable(
                slug=slug(group.name, *group.split),
                title=title_of(group, shown_groups),
                caption=caption_of(group, seeds, seed_list),
                header=[*extra_header, *header],
                rows=body,
                footnotes=footnotes(body, notes, letters, rows) + still_differs(still),
            )
        )
    unplaced = [v for i, v in enumerate(table.published) if i not in placed]
    out += published_tables(unplaced, table)
    return out


def title_of(group: ShownGroup, shown_groups: list[ShownGroup]) -> str:
    """The group's title; tables of one group (e.g. FID in two feature spaces) add the split
    values that tell them apart: "FID (inception-v3-compat)", "FID (classifier-mnist)"."""
    siblings = [g for g in shown_groups if g.name == group.name]
    differing = [
        str(value) for i, value in enumerate(group.split) if len({g.split[i] for g in siblings}) > 1
    ]
    title = GROUPS[group.name].title
    return f"{title} ({', '.join(differing)})" if differing else title


def arrowed(shown: ShownColumn) -> str:
    mark = shown.definition.better.mark
    return f"{shown.heading} {mark}" if mark else shown.heading


def row_label(row: Row) -> str:
    flagged = any(r.collapsed for r in row.completed)
    return f"{row.label} {COLLAPSED}" if flagged else row.label


def runs_note(row: Row) -> str:
    """'' for a row whose runs all completed with their evaluation, else what is missing."""
    odd = [
        f"seed {r.seed} {r.status}"
        if r.status != "completed"
        else f"seed {r.seed} evaluation {r.evaluation}"
        for r in sorted(row.runs, key=lambda r: str(r.seed))
        if r.status != "completed" or r.evaluation_missing
    ]
    if not odd:
        return ""
    return f"{len(row.completed)}/{len(row.runs)}: {'; '.join(odd)}"


def extra_columns(group: ShownGroup, rows: list[Row], incomplete: list[Row], first: bool):
    """Columns before the metrics: `runs` in the first table where a row misses a run or an
    evaluation; λ in the test table where a model has one."""
    header: list[str] = []
    extra: list[list[Shown]] = [[] for _ in rows]
    if first and incomplete:
        header.append("runs")
        for i, row in enumerate(rows):
            extra[i].append(Shown(runs_note(row) or f"{len(row.completed)}/{len(row.runs)}"))
    if group.name == "test" and any(r.weight for r in rows):
        header.append("λ")
        for i, row in enumerate(rows):
            extra[i].append(Shown(f"{row.weight:g}" if row.weight else "—"))
    return header, extra


def shown_cell(
    row: Row,
    shown: ShownColumn,
    published: list[PublishedValue],
    letters: dict[str, str],
    placed: set[int],
    notes: Notes,
    seeds: int,
    still: dict[str, int] | None = None,
) -> Shown:
    """A row's cell of a shown column, with the published numbers computed alike beside it
    (their indices added to `placed`; their notes numbered in `still`)."""
    still = {} if still is None else still
    features = dict(shown.columns[0].settings).get("extractor", "") if shown.columns else ""
    found = shown.cell(row)
    if found is None:
        return Shown(marks=notes.marks(row.model, row.label, shown.keys, features))
    column, cell = found
    definition = shown.definition
    std = cell.std if cell.n > 1 else None
    text = definition.format(cell.mean, std)
    if cell.n != seeds:
        text += f" (n={cell.n})"
    marks = (STAND_IN,) if column.metric != shown.host else ()
    beside = []
    for i, value in enumerate(published):
        if (
            value.model == row.model
            and value.metric == column.metric
            and not differences(dict(column.settings), dict(value.settings))
        ):
            placed.add(i)
            beside.append((letters[value.source] + note_mark(value, still), f"{value.value:g}"))
    return Shown(
        text, cell.mean, None if std is None else std, cell.n, marks=marks
        + notes.marks(row.model, row.label, shown.keys, features), published=tuple(beside),
        key=column.metric,
    )  # fmt: skip


def note_mark(value: PublishedValue, still: dict[str, int]) -> str:
    """‡i for a published number with a note (what still differs from ours), numbered in
    `still` (note -> i) in the order of first use; "" without one."""
    if not value.note:
        return ""
    return f"{STILL_DIFFERS}{still.setdefault(value.note, len(still) + 1)}"


def still_differs(still: dict[str, int]) -> list[str]:
    """The footnotes of the ‡ marks."""
    return [
        f"{STILL_DIFFERS}{i} Published, and still computed otherwise than ours: {note}."
        for note, i in still.items()
    ]


def mark_best(columns: list[ShownColumn], body: list[tuple[str, list[Shown]]]) -> None:
    """Bold the best mean of each column (ties all), by its definition's direction."""
    for j, shown in enumerate(columns):
        scores = []
        for _, cells in body:
            cell = cells[j]
            if cell.mean is None:
                continue
            column = next(c for c in shown.columns if c.metric == cell.key)
            badness = shown.definition.better.badness(cell.mean, dict(column.settings))
            if badness is not None and not math.isnan(badness):
                scores.append((badness, cell))
        if len(scores) > 1:
            lowest = min(b for b, _ in scores)
            for badness, cell in scores:
                cell.best = badness == lowest


def footnotes(body, notes: Notes, letters: dict[str, str], rows: list[Row]) -> list[str]:
    """What the marks of this table's cells and rows mean."""
    out = []
    cells = [c for _, row_cells in body for c in row_cells]
    if any(STAND_IN in c.marks for c in cells):
        stand_ins = {c.key for c in cells if STAND_IN in c.marks}
        what = "; ".join(definition_of(k).title for k in sorted(stand_ins))
        out.append(f"{STAND_IN} A model without that metric: {what}.")
    used = {m for c in cells for m in c.marks if m.startswith("†")}
    for i, note in enumerate(notes.cells, 1):
        if f"†{i}" in used:
            out.append(f"†{i} {note.model}, `{note.key()}`: {note.text}")
    sources = {mark.split(STILL_DIFFERS)[0] for c in cells for mark, _ in c.published}
    for source, mark in letters.items():
        if mark in sources:
            out.append(
                f"{mark} beside ours: {source} (computed alike: the same feature space, images, "
                "real set, weights and estimator)."
            )
    for row in rows:
        reasons = sorted({r.collapsed for r in row.completed if r.collapsed})
        if reasons:
            out.append(f"{COLLAPSED} {row.label}: flagged collapsed ({'; '.join(reasons)}).")
    return out


def source_letters(published: list[PublishedValue]) -> dict[str, str]:
    """A superscript letter per published source, in the order of first appearance."""
    sources = list(dict.fromkeys(v.source for v in published))
    return {s: "ᵃᵇᶜᵈᵉᶠᵍʰ"[i] if i < 8 else f"[{i + 1}]" for i, s in enumerate(sources)}


def published_tables(values: list[PublishedValue], table: Table) -> list[ShownTable]:
    """One compact table per source of the published numbers that could not stand beside
    ours, saying why: the paper's models as rows, its columns in our headings; the caption
    states how the paper computed them (its settings shared by all the table's numbers, then
    those of each column) and what differs from ours, a ‡ footnote what else does."""
    out = []
    for source in dict.fromkeys(v.source for v in values):
        mine = [v for v in values if v.source == source]
        headings: dict[str, list[PublishedValue]] = {}
        for value in sorted(mine, key=lambda v: ordering(v.metric)):
            host = definition_of(value.metric).stands_in_for or value.metric
            headings.setdefault(definition_of(host).column, []).append(value)
        labels = list(dict.fromkeys(v.label for v in mine))
        still: dict[str, int] = {}
        body = []
        for label in labels:
            cells = []
            for in_column in headings.values():
                value = next((v for v in in_column if v.label == label), None)
                if value is None:
                    cells.append(Shown())
                    continue
                definition = definition_of(value.metric)
                marks = (STAND_IN,) if definition.stands_in_for else ()
                marks += (note_mark(value, still),) if value.note else ()
                cells.append(Shown(f"{value.value:g}", value.value, n=1, marks=marks,
                                   key=value.metric))  # fmt: skip
            body.append((label, cells))
        settings = common_settings(mine)
        per_column = [
            f"{heading}: " + ", ".join(f"{k} {number(v)}" for k, v in own.items())
            for heading, in_column in headings.items()
            if (own := {k: v for k, v in common_settings(in_column).items() if k not in settings})
        ]  # fmt: skip
        why = sorted({d for v in mine for d in not_beside(v, table)})
        caption = (
            f"As published: {definition_of(mine[0].metric).group} in the feature space "
            f"`{settings.get('extractor', '?')}`, {number(settings.get('num_fake', '?'))} "
            f"generated against {number(settings.get('num_real', '?'))} real images"
            + "".join(
                f"; {k} {number(v)}"
                for k, v in settings.items()
                if k not in ("extractor", "num_fake", "num_real")
            )  # fmt: skip
            + "".join(f"; {part}" for part in per_column)
            + ". Not computed as ours, so not beside our numbers"
            + (f": {'; '.join(why)}." if why else ".")
        )
        notes = []
        if any(STAND_IN in c.marks for _, cells in body for c in cells):
            notes.append(f"{STAND_IN} {definition_of('fid/samples/gaussian').title} "
                         "(a model without a prior).")  # fmt: skip
        out.append(
            ShownTable(
                slug("published", source),
                f"Published: {source}",
                caption,
                list(headings),
                body,
                notes + still_differs(still),
            )  # fmt: skip
        )
    return out


def common_settings(values: list[PublishedValue]) -> dict[str, Any]:
    """The settings that all `values` state alike, in the order of the first one's."""
    first, *rest = (dict(v.settings) for v in values)
    return {k: v for k, v in first.items() if all(k in o and o[k] == v for o in rest)}


def not_beside(value: PublishedValue, table: Table) -> list[str]:
    """Why `value` is not beside ours: the settings that differ from our closest column of
    its metric (the fewest differences), or that we have no such number."""
    ours = [c for c in table.columns if c.metric == value.metric]
    if not ours:
        return [f"we have no `{value.metric}`"]
    found = (differences(dict(c.settings), dict(value.settings)) for c in ours)
    return min(found, key=len)


def slug(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts if p not in (None, ""))
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
