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
from omegaconf import OmegaConf

from waebench.reporting.runs import Run

PACKAGES = (
    "waebench", "torch", "torchvision", "lightning", "hydra-core",
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
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return out.stdout.strip()


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0], "waebench source": source_commit()}
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
    """(first run's start, last run's end) in seconds since the epoch: the `config.yaml`
    each run writes when it starts and the `metrics.json` it (re)writes when it ends."""
    starts = [(r.run_dir / "config.yaml").stat().st_mtime for r in runs]
    ends = [(r.run_dir / "metrics.json").stat().st_mtime for r in runs if r.metrics is not None]
    if not starts or not ends:
        return None
    return min(starts), max(ends)


def run_command(run: Run) -> str:
    """`waebench-train <overrides>` that ran this run (Hydra's `.hydra/overrides.yaml`)."""
    path = run.run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return f"(no {path}: not started by waebench-train)"
    overrides = [str(o) for o in OmegaConf.load(path)]
    return "waebench-train " + " ".join(overrides)
