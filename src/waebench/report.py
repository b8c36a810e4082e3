"""`waebench-report PATH... [--out DIR]`: one table per dataset comparing the models of the
runs under PATH (sweep or output folders), with the WAE paper's published numbers beside
ours, the failed and unfinished runs (and the sweep jobs that never started, the evaluations
that did not complete, the collapsed models), and a figure; for a search folder also its study
(best trials or Pareto front, Optuna's plots). Writes DIR/report.md, and per dataset
DIR/<dataset>.csv, .tex and .png (DIR defaults to PATH/report).

`waebench-report --page PATH... [--out DIR]`: instead, one page comparing the models of one
dataset side by side (docs/study.md): DIR/README.md, DIR/index.html and their figures
(DIR defaults to PATH/page)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from waebench.errors import UserError
from waebench.reporting.comparison import FigureSettings
from waebench.reporting.figure import write_figure
from waebench.reporting.page import write_page
from waebench.reporting.render import markdown_report, write_csv, write_latex
from waebench.reporting.runs import find_runs
from waebench.reporting.search import search_report
from waebench.reporting.table import build_tables
from waebench.run.record import not_started_jobs


def runs_under(paths: list[str | Path], not_started: list[dict] = ()):
    runs = find_runs(paths)
    if not runs and not not_started:
        raise FileNotFoundError(
            f"no runs under {', '.join(map(str, paths))}: a run folder holds the config.yaml "
            "that waebench-train writes; pass sweep folders (outputs/train/multiruns/<time>) "
            "or run folders"
        )
    return runs


def report(paths: list[str | Path], out_dir: str | Path) -> Path:
    """Write the report of the runs under `paths` into `out_dir`; returns report.md's path."""
    not_started = not_started_jobs(paths)
    runs = runs_under(paths, not_started)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = build_tables(runs)
    figures = {}
    for table in tables:
        write_csv(table, out_dir / f"{table.dataset}.csv")
        write_latex(table, out_dir / f"{table.dataset}.tex")
        figures[table.dataset] = write_figure(table, out_dir / f"{table.dataset}.png")
    path = out_dir / "report.md"
    markdown = markdown_report(tables, runs, figures, not_started)
    path.write_text(markdown + search_report(paths, out_dir))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="waebench-report", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="sweep or output folders holding runs")
    parser.add_argument("--out", help="where to write (default: first PATH/report or PATH/page)")
    parser.add_argument("--page", action="store_true", help="the side-by-side comparison page")
    default = FigureSettings()
    parser.add_argument("--images", type=int, default=default.n_images, help="page: test images")
    parser.add_argument("--pairs", type=int, default=default.pairs, help="page: interpolations")
    parser.add_argument("--points", type=int, default=default.points, help="page: map points")
    parser.add_argument("--no-tsne", action="store_true", help="page: PCA maps only")
    parser.add_argument("--seed", type=int, default=default.seed, help="page: image choice")
    parser.add_argument("--command", help="page: the command to record (default: this one)")
    parser.add_argument(
        "--notes", help="page: YAML list of {model, column, note}, printed next to the numbers"
    )
    args = parser.parse_args(argv)
    try:
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
