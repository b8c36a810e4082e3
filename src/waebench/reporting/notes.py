"""A person's remarks on a page (`waebench-report --page --notes FILE`): what the figures show
that a number does not, printed next to that number, and the seed spread known from
elsewhere that a one-seed page quotes.

The file is YAML: a list of `{model, column, note}`, or a mapping with that list under
`cells` and the optional text `seed_spread`. `model` is a row's model name (or its label,
e.g. `WAE-MMD (λ=1.0)`: required where two rows share a name); `column` is a metric key of
`metrics.json` (`fid/samples/prior`, `latent_mmd/test`, `test/penalty`), with
`@<feature space>` to put the note under that feature space's table only, where a page has
the metric in several (`fid/samples/prior@inception-v3-compat`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from waebench.errors import UserError
from waebench.reporting.table import Table

# Column names of notes written before the metric keys were used (the page's loss table).
OLD_COLUMNS = {"test.rec": "rec/test", "test.penalty": "test/penalty"}


class NotesError(UserError, ValueError):
    """A notes file that does not fit its page; the message names the entry and the fix."""


@dataclass(frozen=True)
class CellNote:
    model: str
    column: str
    text: str
    features: str = ""  # the extractor whose table alone shows the note; "": every table

    def key(self) -> str:
        """The column as the notes file names it."""
        return f"{self.column}@{self.features}" if self.features else self.column


@dataclass
class Notes:
    cells: list[CellNote] = field(default_factory=list)
    seed_spread: str = ""

    def marks(
        self, model: str, label: str, keys: tuple[str, ...], features: str = ""
    ) -> tuple[str, ...]:
        """†i of each note on the row (`model` or its `label`) and one of the `keys`, in the
        table of the feature space `features`."""
        return tuple(
            f"†{i}"
            for i, n in enumerate(self.cells, 1)
            if n.model in (model, label) and n.column in keys and n.features in ("", features)
        )


def load_notes(path: str | Path, table: Table) -> Notes:
    """Read a notes file, refusing a model or column that is not on `table`'s page."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notes file {path} does not exist; pass an existing YAML file")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise NotesError(f"notes file {path} is not YAML: {error}") from None
    if isinstance(loaded, dict):
        unknown = set(loaded) - {"cells", "seed_spread"}
        if unknown:
            raise NotesError(f"notes file {path}: unknown keys {sorted(unknown)}; "
                             "valid: cells, seed_spread")  # fmt: skip
        entries, spread = loaded.get("cells") or [], str(loaded.get("seed_spread") or "")
    else:
        entries, spread = loaded, ""
    if not isinstance(entries, list):
        raise NotesError(f"notes file {path}: expected a list of {{model, column, note}}")
    models = sorted({r.model for r in table.rows} | {r.label for r in table.rows})
    columns = sorted({c.metric for c in table.columns})
    notes = Notes(seed_spread=spread.strip())
    for number, entry in enumerate(entries, 1):
        where = f"notes file {path}, entry {number}"
        if not isinstance(entry, dict) or set(entry) != {"model", "column", "note"}:
            raise NotesError(f"{where}: expected exactly the keys model, column, note")
        column, _, features = str(entry["column"]).removeprefix("eval.").partition("@")
        column = OLD_COLUMNS.get(column, column)
        if entry["model"] not in models:
            raise NotesError(
                f"{where}: model {entry['model']!r} is not on this page; models: {models}"
            )
        named = [r for r in table.rows if r.label == entry["model"]] or [
            r for r in table.rows if r.model == entry["model"]
        ]
        if len(named) > 1:
            raise NotesError(
                f"{where}: model {entry['model']!r} names {len(named)} rows; give the label of "
                f"one: {[r.label for r in named]}"
            )
        if column not in columns:
            raise NotesError(
                f"{where}: column {entry['column']!r} is not on this page; columns: {columns}"
            )
        spaces = sorted(
            {dict(c.settings).get("extractor") for c in table.columns if c.metric == column}
            - {None}
        )
        if features and features not in spaces:
            raise NotesError(
                f"{where}: column {entry['column']!r}: {column} has no table in the feature "
                f"space {features!r} on this page; its feature spaces: {spaces or 'none'}"
            )
        notes.cells.append(CellNote(entry["model"], column, str(entry["note"]).strip(), features))
    return notes
