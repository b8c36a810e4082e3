"""`waebench-report PATH... [--out DIR]`: per dataset, the tables comparing the models of the
runs under PATH (sweep or output folders) in a paper's layout, the published numbers of the
WAE and RAE papers beside ours where they were computed alike (else in their own table), the
failed runs, missing evaluations, sweep jobs that never started and collapsed models, and a
figure; for a search folder also its study (best
trials or Pareto front, Optuna's plots). Writes DIR/report.md, and per dataset
DIR/<dataset>.tex (every table, booktabs), DIR/<dataset>-<table>.csv (each table),
DIR/<dataset>.csv (every number with its settings, a line per model) and DIR/<dataset>.png
(DIR defaults to PATH/report).

`waebench-report --page PATH... [--out DIR] [--notes FILE]`: instead, one page comparing
the models of one dataset side by side (docs/study.md): DIR/README.md, DIR/index.html, their
figures and each table's LaTeX and CSV (DIR defaults to PATH/page).

`waebench-report --index PATH... --out DIR [--notes FILE.md]`: the results index of several
studies, one dataset each (docs/results/README.md): DIR/README.md, its tables generated from
the runs, its prose from FILE.md."""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from pathlib import Path

from waebench.errors import UserError
from waebench.evaluation.definitions import thawed
from waebench.reporting.comparison import FigureSettings
from waebench.reporting.figure import write_figure
from waebench.reporting.index import write_index
from waebench.reporting.layout import metric_tables
from waebench.reporting.page import dataset_title, write_page
from waebench.reporting.render import failure_lines, markdown_table, write_csv, write_latex
from waebench.reporting.runs import Run, find_runs
from waebench.reporting.search import search_report
from waebench.reporting.table import Table, build_tables
from waebench.run.record import not_started_jobs


def runs_under(paths: list[str | Path], not_started: list[dict] = ()) -> list[Run]:
    runs = find_runs(paths)
    if not runs and not not_started:
        raise FileNotFoundError(
            f"no runs under {', '.join(map(str, paths))}: a run folder holds the config.yaml "
            "that waebench-train writes; pass sweep folders (outputs/train/multiruns/<time>) "
            "or run folders"
        )
    return runs


def write_numbers(table: Table, path: Path) -> Path:
    """Every number of `table`, one line per model: its completed and total runs, then per
    column (a metric key and its settings as JSON) the mean, std and n over its seeds."""
    header = ["model", "runs_completed", "runs_total"]
    names = [f"{c.metric} {json.dumps(thawed(c.settings) if c.settings else {})}"
             for c in table.columns]  # fmt: skip
    for name in names:
        header += [f"{name} mean", f"{name} std", f"{name} n"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in table.rows:
            line = [row.label, len(row.completed), len(row.runs)]
            for column in table.columns:
                cell = row.cells.get(column)
                if cell is None or not cell.n:
                    line += ["", "", 0]
                else:
                    line += [repr(cell.mean), "" if cell.n < 2 else repr(cell.std), cell.n]
            writer.writerow(line)
    return path


def report(paths: list[str | Path], out_dir: str | Path) -> Path:
    """Write the report of the runs under `paths` into `out_dir`; returns report.md's path."""
    not_started = not_started_jobs(paths)
    runs = runs_under(paths, not_started)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    completed = sum(r.status == "completed" for r in runs)
    text = [
        "# waebench report",
        "",
        f"{len(runs)} runs, {completed} completed"
        + (f", {len(not_started)} sweep jobs never started" if not_started else "")
        + ". Numbers computed with other settings "
        "(feature space, image counts, real set, checkpoint, sampler options, ...) are in "
        "other columns or tables; published numbers stand beside ours only where they were "
        "computed alike.",
    ]
    tables = build_tables(runs)
    for table in tables:
        shown = metric_tables(table)
        name = table.dataset
        write_latex(shown, out_dir / f"{name}.tex")
        write_numbers(table, out_dir / f"{name}.csv")
        text += ["", f"## {dataset_title(name)}", "", f"LaTeX of these tables: [{name}.tex]"
                 f"({name}.tex); every number with its settings: [{name}.csv]({name}.csv)."]  # fmt: skip
        for one in shown:
            write_csv(one, out_dir / f"{name}-{one.slug}.csv")
            text += ["", *markdown_table(one, f"[CSV]({name}-{one.slug}.csv)", level=3)]
        figure = write_figure(table, out_dir / f"{name}.png")
        text += ["", f"![{name}]({figure.name})"]
    text += ["", "## Failed and unfinished runs", "", *failure_lines(runs, not_started, tables), ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(text) + search_report(paths, out_dir))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="waebench-report", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="sweep or output folders holding runs")
    parser.add_argument("--out", help="where to write (default: first PATH/report or PATH/page)")
    parser.add_argument("--page", action="store_true", help="the side-by-side comparison page")
    parser.add_argument(
        "--index", action="store_true", help="the results index of several studies (--out)"
    )
    default = FigureSettings()
    parser.add_argument("--images", type=int, default=default.n_images, help="page: test images")
    parser.add_argument("--pairs", type=int, default=default.pairs, help="page: interpolations")
    parser.add_argument("--points", type=int, default=default.points, help="page: map points")
    parser.add_argument("--no-tsne", action="store_true", help="page: PCA maps only")
    parser.add_argument("--seed", type=int, default=default.seed, help="page: image choice")
    parser.add_argument("--command", help="page: the command to record (default: this one)")
    parser.add_argument(
        "--notes",
        help="page: YAML list of {model, column, note}, printed next to the numbers; "
        "index: the Markdown prose around the generated tables",
    )
    args = parser.parse_args(argv)
    if args.page and args.index:
        parser.error("give --page or --index, not both")
    if args.index and not args.out:
        parser.error("--index needs --out DIR (e.g. --out docs/results)")
    try:
        if args.index:
            path = write_index(runs_under(args.paths), args.out, args.notes)
            print(f"Index written to {path}")
            return
        if args.page:
            settings = FigureSettings(
                n_images=args.images, pairs=args.pairs, points=args.points,
                tsne=not args.no_tsne, seed=args.seed,
            )  # fmt: skip
            given = sys.argv[1:] if argv is None else argv
            command = args.command or shlex.join(["waebench-report", *given])
            out = args.out or Path(args.paths[0]) / "page"
            not_started = not_started_jobs(args.paths)
            runs = runs_under(args.paths, not_started)
            path = write_page(runs, out, settings, command, args.notes, not_started)
            print(f"Page written to {path} (Markdown: {path.parent / 'README.md'})")
            return
        path = report(args.paths, args.out or Path(args.paths[0]) / "report")
    except (FileNotFoundError, UserError) as error:  # the message names the cause and fix
        sys.exit(f"waebench-report: {error}")
    print(path.read_text())
    print(f"Report written to {path.parent}")


if __name__ == "__main__":
    main()
