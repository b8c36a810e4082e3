"""`ShownTable`s (`layout`) as Markdown, LaTeX (booktabs) and CSV, and the Markdown report
of `waebench-report` (the tables of each dataset, the failed runs)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from waebench.evaluation.settings import fill_command
from waebench.reporting.layout import Shown, ShownTable
from waebench.reporting.runs import Run
from waebench.reporting.table import Table
from waebench.run.record import Status


def cell_text(cell: Shown) -> str:
    """A cell in Markdown: the number (bold when best), its marks, published numbers beside."""
    text = f"**{cell.text}**" if cell.best else cell.text
    text += "".join(cell.marks)
    if cell.published:
        text += " (" + "; ".join(f"{value}{mark}" for mark, value in cell.published) + ")"
    return text


def markdown_rows(header: list[str], lines: list[list[str]], numbers: bool = False) -> list[str]:
    """A Markdown table's lines, with `|` inside cells escaped; `numbers`: every column but
    the first right-aligned."""
    rule = "|---|" + ("---:|" if numbers else "---|") * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", rule]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines]
    return out


def markdown_table(table: ShownTable, files: str = "", level: int = 2) -> list[str]:
    """Its title (a heading of `level`), caption, the table, its footnotes and (`files`)
    the links to its LaTeX and CSV."""
    lines = [[label, *(cell_text(c) for c in cells)] for label, cells in table.rows]
    out = [f"{'#' * level} {table.title}", "", table.caption, ""]
    out += markdown_rows(["model", *table.header], lines, numbers=True)
    if table.footnotes:
        for note in table.footnotes:  # a paragraph each (no trailing-space line breaks)
            out += ["", note]
    if files:
        out += ["", files]
    return out


# Characters of the tables as LaTeX (pdflatex with the default input encoding).
LATEX = {
    "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "$": r"\$",
    "~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}",
    "±": r"$\pm$", "°": r"$^\circ$", "†": r"$^\dagger$", "‡": r"$^\ddagger$", "λ": r"$\lambda$", "↓": r"$\downarrow$",
    "↑": r"$\uparrow$", "→": r"$\rightarrow$", "²": r"$^2$", "‖": r"$\|$", "—": "---",
    "–": "--", "…": r"\dots{}", "×": r"$\times$", "⚠": r"\textsuperscript{!}", "★": r"$\star$",
    "σ": r"$\sigma$", "μ": r"$\mu$", "≈": r"$\approx$", "≤": r"$\leq$", "≥": r"$\geq$",
    "ᵃ": r"\textsuperscript{a}", "ᵇ": r"\textsuperscript{b}", "ᶜ": r"\textsuperscript{c}",
    "ᵈ": r"\textsuperscript{d}", "ᵉ": r"\textsuperscript{e}", "ᶠ": r"\textsuperscript{f}",
    "ᵍ": r"\textsuperscript{g}", "ʰ": r"\textsuperscript{h}", "`": "",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """`text` with LaTeX's special characters escaped and the tables' symbols as macros;
    any other non-ASCII character is refused, naming it (pdflatex would fail on it)."""
    out = []
    for ch in text:
        if ch in LATEX:
            out.append(LATEX[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            raise ValueError(f"no LaTeX for {ch!r} in {text!r}: add it to render.LATEX")
    return "".join(out)


def latex_cell(cell: Shown) -> str:
    text = latex_escape(cell.text)
    text = rf"\textbf{{{text}}}" if cell.best else text
    text += "".join(latex_escape(m) for m in cell.marks)
    if cell.published:
        text += " (" + "; ".join(latex_escape(f"{v}{m}") for m, v in cell.published) + ")"
    return text


def latex_table(table: ShownTable) -> str:
    """A `table` float: caption, label and a booktabs tabular, the footnotes under it."""
    spec = "l" + "r" * len(table.header)
    lines = [
        r"\begin{table}[t]",
        r"\centering\small",
        rf"\caption{{{latex_escape(table.title)}. {latex_escape(table.caption)}}}",
        rf"\label{{tab:{table.slug}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in ["model", *table.header]) + r" \\",
        r"\midrule",
    ]
    for label, cells in table.rows:
        lines.append(" & ".join([latex_escape(label), *map(latex_cell, cells)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.footnotes:
        notes = r" \\ ".join(latex_escape(n) for n in table.footnotes)
        lines.append(rf"\par\smallskip\footnotesize {notes}")
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


def write_latex(tables: list[ShownTable], path: Path) -> Path:
    """The tables' LaTeX into `path` (`\\input` it; needs `\\usepackage{booktabs}`)."""
    head = "% waebench-report; needs \\usepackage{booktabs}\n"
    path.write_text(head + "\n".join(latex_table(t) for t in tables))
    return path


def write_csv(table: ShownTable, path: Path) -> Path:
    """One line per row; per metric column its mean, std and n (empty where none), the
    metric key where a column mixes two (N), the published numbers shown beside ours."""
    columns = []
    for j, heading in enumerate(table.header):
        cells = [cells[j] for _, cells in table.rows]
        if not any(c.n for c in cells):
            columns.append((j, heading, ("text",)))
            continue
        parts = ["mean", "std", "n"]
        if len({c.key for c in cells if c.key}) > 1:
            parts.append("key")
        if any(c.published for c in cells):
            parts.append("published")
        columns.append((j, heading, tuple(parts)))
    header = ["model"]
    for _, heading, parts in columns:
        header += [heading if p in ("mean", "text") else f"{heading} {p}" for p in parts]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for label, cells in table.rows:
            line = [label]
            for j, _, parts in columns:
                cell = cells[j]
                for part in parts:
                    line.append(csv_value(cell, part))
            writer.writerow(line)
    return path


def csv_value(cell: Shown, part: str) -> str:
    if part == "text":
        return cell.text
    if part == "mean":
        return "" if cell.mean is None else repr(cell.mean)
    if part == "std":
        return "" if cell.std is None or math.isnan(cell.std) else repr(cell.std)
    if part == "n":
        return str(cell.n)
    if part == "key":
        return cell.key
    return "; ".join(f"{value} ({mark})" for mark, value in cell.published)


def one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def failure_rows(runs: list[Run], not_started: list[dict] = ()) -> list[dict[str, str]]:
    """What a table of these runs lacks, one row each: the runs that did not complete (with
    their overrides), the completed runs whose evaluation did not (with the command that fills
    it, carrying the run's eval settings), and the sweep jobs that never started
    (`waebench.run.record.not_started_jobs`)."""
    rows = []
    for run in runs:
        overrides = " ".join(run.overrides or [])
        if run.status != Status.COMPLETED:
            status, why = run.status, one_line(run.error)
        elif run.evaluation_missing:
            status = f"completed, evaluation {run.evaluation}"
            why = one_line((run.metrics or {}).get("eval_error", ""), 200)
            why += f"{'; ' if why else ''}fill it with: {fill_command(run.run_dir)}"
            overrides = ""  # in the command
        else:
            continue
        row = dict(run=str(run.run_dir), dataset=run.dataset, model=run.model, seed=str(run.seed))
        rows.append(row | dict(status=status, why=why, overrides=overrides))
    for job in not_started:
        row = dict(run=job["run_dir"], dataset="", model="", seed="")
        rows.append(
            row | dict(status="failed, never started", why=one_line(job["error"]),
                       overrides=" ".join(job["overrides"]))
        )  # fmt: skip
    return rows


def attention_lines(runs: list[Run], tables: list[Table]) -> list[str]:
    """The completed runs a reader must know about: those that look collapsed (their
    `collapse` findings), and those not counted because another run has their config and
    seed."""
    lines = [
        f"- Collapsed? {run.run_dir}: {finding}"
        for run in runs
        for finding in (run.metrics or {}).get("collapse") or []
    ]
    for row in (r for table in tables for r in table.rows):
        counted = {repr(r.seed): r for r in row.counted}
        for run in row.completed:
            if run not in row.counted:
                lines.append(
                    f"- Not counted: {run.run_dir} has the config and seed ({run.seed}) of "
                    f"{counted[repr(run.seed)].run_dir}, counted once"
                )
    return lines


def failure_lines(
    runs: list[Run], not_started: list[dict] = (), tables: list[Table] = ()
) -> list[str]:
    """The failed and unfinished runs and the jobs that never started as a Markdown table
    (`failure_rows`), then the runs a reader must know about (`attention_lines`)."""
    rows = failure_rows(runs, not_started)
    columns = ["run", "dataset", "model", "seed", "status", "why", "overrides"]
    lines = (
        markdown_rows(columns, [[row[c] for c in columns] for row in rows])
        if rows
        else ["All runs completed."]
    )
    extra = attention_lines(runs, tables)
    return lines + ([""] + extra if extra else [])
