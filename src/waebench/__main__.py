"""`waebench --version` (or `python -m waebench --version`), and the list of commands."""

from __future__ import annotations

import argparse

from waebench import __version__

COMMANDS = {
    "waebench-train": "train (and evaluate) a model; -m for sweeps",
    "waebench-eval": "evaluate a trained model, or score images made elsewhere",
    "waebench-report": "tables, figures and the comparison page of runs and sweeps",
    "waebench-study": "the papers' tables at their scale on a GPU machine, with their pages",
    "waebench-bundle": "one folder with datasets, FID weights and wheels for offline nodes",
}


def main(argv: list[str] | None = None) -> None:
    listed = "\n".join(f"  {name:17s} {what}" for name, what in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="waebench",
        description=f"waebench {__version__}: Wasserstein auto-encoders, benchmarked.",
        epilog=f"commands (each has --help):\n{listed}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"waebench {__version__}")
    parser.parse_args(argv)
    parser.print_help()


if __name__ == "__main__":
    main()
