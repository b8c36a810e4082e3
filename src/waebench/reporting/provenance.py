"""Where a page's numbers came from: the machine, the software, when the runs ran and how
long they took, and the command of each run."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from waebench import __version__
from waebench.reporting.runs import Run

PACKAGES = (
    "torch", "torchvision", "lightning", "hydra-core",
    "torch-fidelity", "scikit-learn", "numpy", "matplotlib",
)  # fmt: skip


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """CPU name, cores this process may use / all, and the GPUs torch sees."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    gpu = ", ".join(gpus) if gpus else "no GPU"
    return f"{cpu_name()}, {usable} of {os.cpu_count()} cores usable; {gpu}; {platform.platform()}"


def source_commit() -> str:
    """The git commit (and whether the tree had changes) of the waebench source, if it is a
    git checkout."""
    here = Path(__file__).resolve().parent
    if here.parents[1].name != "src":  # installed (a wheel): not waebench's checkout, even
        return "not a git checkout"  # inside another git repository
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return out.stdout.strip()


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0], "waebench": __version__}
    found["waebench source"] = source_commit()
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def stamp(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def span(runs: list[Run]) -> tuple[float, float] | None:
    """(first run's start, last run's end) in seconds since the epoch."""
    ends = [r.ended for r in runs if r.ended is not None]
    if not runs or not ends:
        return None
    return min(r.started for r in runs), max(ends)


def run_command(run: Run) -> str:
    """`waebench-train <overrides>` that ran this run."""
    if run.overrides is None:
        return f"(no overrides recorded in {run.run_dir}: not started by waebench-train)"
    return "waebench-train " + " ".join(run.overrides)


def run_times(run: Run) -> str:
    """ " (training 38.2 min, evaluation 35.0 min)": the wall times its record holds
    (`metrics.json` `train_seconds`, `eval_seconds`), or ""."""
    metrics = run.metrics or {}
    times = [
        f"{what} {metrics[key] / 60:.1f} min"
        for what, key in (("training", "train_seconds"), ("evaluation", "eval_seconds"))
        if isinstance(metrics.get(key), int | float)
    ]
    return f" ({', '.join(times)})" if times else ""
