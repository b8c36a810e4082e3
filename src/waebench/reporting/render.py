"""The tables as Markdown (with the failed runs), CSV and LaTeX."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from waebench.reporting.runs import Run
from waebench.reporting.table import Cell, Row, Table
from waebench.run.record import Evaluation, Status, evaluation_command


def format_cell(cell: Cell | None, row: Row, pm: str = "±") -> str:
    if cell is None or cell.n == 0:
        return "n/a"
    if row.source:
        return f"{cell.mean:g}"
    if cell.n == 1:
        return f"{cell.mean:.4g} (n=1)"
    return f"{cell.mean:.4g} {pm} {cell.std:.2g} (n={cell.n})"


def runs_done(row: Row) -> str:
    return "" if row.source else f"{len(row.completed)}/{len(row.runs)}"


def markdown_rows(header: list[str], lines: list[list[str]]) -> list[str]:
    """A Markdown table's lines, with `|` inside cells escaped."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines]
    return out


def markdown_table(table: Table) -> str:
    lines = [
        [row.label, runs_done(row), *(format_cell(row.cells.get(c), row) for c in table.columns)]
        for row in table.rows
    ]
    return "\n".join(markdown_rows(["model", "runs", *(c.title for c in table.columns)], lines))


def one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def failure_rows(runs: list[Run], not_started: list[dict]) -> list[dict[str, str]]:
    """What a table of these runs lacks, one row each: the runs that did not complete (with
    their overrides), the completed runs whose evaluation did not (with the command that fills
    it), and the sweep jobs that never started (`waebench.run.record.not_started_jobs`)."""
    rows = []
    for run in runs:
        metrics = run.metrics or {}
        evaluation = metrics.get("evaluation")
        overrides = " ".join(run.overrides or [])
        if run.status != Status.COMPLETED:
            status, error = run.status, one_line(run.error)
        elif evaluation != Evaluation.COMPLETED:
            status = f"completed, evaluation {evaluation}"
            error = one_line(metrics.get("eval_error", ""))
            error += f"{'; ' if error else ''}fill it with: {evaluation_command(run.run_dir)}"
            overrides = ""  # in the command
        else:
            continue
        row = dict(run=str(run.run_dir), dataset=run.dataset, model=run.model, seed=str(run.seed))
        rows.append(row | dict(status=status, error=error, overrides=overrides))
    for job in not_started:
        row = dict(
            run=job["run_dir"], dataset="", model="", seed="", status="failed, never started"
        )
        rows.append(row | dict(error=one_line(job["error"]), overrides=" ".join(job["overrides"])))
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
    rows = failure_rows(runs, not_started)
    columns = ["run", "dataset", "model", "seed", "status", "error", "overrides"]
    lines = (
        markdown_rows(columns, [[row[c] for c in columns] for row in rows])
        if rows
        else ["All runs completed."]
    )
    extra = attention_lines(runs, tables)
    return lines + ([""] + extra if extra else [])


def markdown_report(
    tables: list[Table], runs: list[Run], figures: dict[str, Path], not_started: list[dict] = ()
) -> str:
    completed = sum(r.status == "completed" for r in runs)
    out = [
        "# waebench report",
        "",
        f"{len(runs)} runs, {completed} completed"
        + (f", {len(not_started)} sweep jobs never started" if not_started else "")
        + ". Cells: mean ± sample std over the seeds of "
        "the completed runs (n = number of seeds); `runs` = completed/all runs of the row. "
        "Each FID column names its settings (feature extractor, generated images num_fake, "
        "real images num_real, real split); numbers with other settings get their own column. "
        "Published rows are the paper's numbers, not ours.",
    ]
    for table in tables:
        out += ["", f"## {table.dataset}", "", markdown_table(table)]
        if table.dataset in figures:
            out += ["", f"![{table.dataset}]({figures[table.dataset].name})"]
    out += ["", "## Failed and unfinished runs", ""]
    out += [*failure_lines(runs, not_started, tables), ""]
    return "\n".join(out)


def write_csv(table: Table, path: Path) -> None:
    """One line per row; per column its mean, std and n (empty where there is none)."""
    header = ["model", "settings", "published_source", "runs_completed", "runs_total"]
    for column in table.columns:
        header += [f"{column.title} mean", f"{column.title} std", f"{column.title} n"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in table.rows:
            line = [row.model, ";".join(f"{k}={v}" for k, v in row.settings.items()), row.source]
            line += ["", ""] if row.source else [len(row.completed), len(row.runs)]
            for column in table.columns:
                cell = row.cells.get(column)
                if cell is None or cell.n == 0:
                    line += ["", "", 0]
                else:
                    std = "" if math.isnan(cell.std) else repr(cell.std)
                    line += [repr(cell.mean), std, cell.n]
            writer.writerow(line)


LATEX_SPECIALS = {
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "λ": r"$\lambda$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)


def write_latex(table: Table, path: Path) -> None:
    """A booktabs tabular: one line per row, one column per metric."""
    spec = "ll" + "r" * len(table.columns)
    header = ["model", "runs", *(c.title for c in table.columns)]
    lines = [
        f"% waebench-report: {table.dataset}; mean $\\pm$ sample std over seeds (n seeds)",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        "\\midrule",
    ]
    for row in table.rows:
        cells = [format_cell(row.cells.get(c), row, pm="$\\pm$") for c in table.columns]
        cells = [c if "$" in c else latex_escape(c) for c in cells]
        lines.append(" & ".join([latex_escape(row.label), runs_done(row), *cells]) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    path.write_text("\n".join(lines))
