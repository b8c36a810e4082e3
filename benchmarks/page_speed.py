"""Wall time of `waebench-report --page` on the 24 runs of `sweep=fmnist_study` (8 models x
3 seeds, real Fashion-MNIST, the study's networks), evaluation excluded: the sweep is trained
for a few steps with evaluation off, then the page is timed with its default settings
(8 images, 3 pairs, 2,000 map points, PCA and t-SNE). The page's cost does not depend on how
long the models trained; it re-encodes the training split per model for the GMM samples.

    python benchmarks/page_speed.py [--steps 2] [--sweep DIR] [-- page options]

--sweep reuses a sweep folder (e.g. a finished study) instead of training one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from waebench.report import main as report_main


def train_sweep(root: Path, steps: int) -> Path:
    sweep = root / "sweep"
    command = [
        str(Path(sys.executable).parent / "waebench-train"), "-m", "sweep=fmnist_study",
        f"trainer.limit_train_batches={steps}", "trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
        "eval.enabled=false", f"paths.log_dir={root}", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    started = time.time()
    done = subprocess.run(
        command, env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"the sweep failed:\n{done.stderr[-3000:]}")
    print(f"sweep of 24 jobs x {steps} steps, evaluation off: {time.time() - started:.0f} s")
    return sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--sweep", type=Path, help="an existing sweep folder to page")
    parser.add_argument("page_options", nargs="*", help="after --: waebench-report options")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sweep = args.sweep or train_sweep(Path(tmp), args.steps)
        started = time.time()
        report_main([str(sweep), "--page", "--out", str(Path(tmp) / "page"), *args.page_options])
        print(
            f"waebench-report --page {' '.join(args.page_options)}: {time.time() - started:.1f} s"
        )
        print(f"on {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
