"""Wall time of a 4-job sweep run one job after another (launcher=local) against two at a time
(launcher=gpus with two simulated devices, and Hydra's joblib launcher with n_jobs=2), and the
per-job overhead of each launcher: from the job's start to its first training step.

Job start: for launcher=local the moment the job's run starts (its .hydra/config.yaml, written
once the config checks passed), the first job also from the launch of the command; for launcher=gpus the spawn of the job's
process (launcher.json). The jobs are CPU jobs on the bundled digits; evaluation is off.

    python benchmarks/sweep_speed.py [--epochs 2] [--width 8] [--jobs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L


class FirstStepTime(L.Callback):
    """Writes <run dir>/first_step.json: the wall-clock time the first training batch starts."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        path = Path(trainer.default_root_dir) / "first_step.json"
        if not path.exists():
            path.write_text(json.dumps({"time": time.time()}))


LAUNCHERS = {
    "local (sequential)": ["launcher=local"],
    "gpus, 2 simulated devices": ["launcher=gpus", "hydra.launcher.devices=[0,1]"],
    "joblib n_jobs=2": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
}


def run_sweep(name: str, overrides: list[str], args, root: Path) -> dict:
    sweep = root / name.split(" ")[0].replace(",", "")
    command = [
        str(Path(sys.executable).parent / "waebench-train"), "-m", *overrides,
        f"seed={','.join(map(str, range(args.jobs)))}", f"model.width={args.width}",
        f"trainer.max_epochs={args.epochs}", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "eval.enabled=false",
        "+callbacks.first_step._target_=sweep_speed.FirstStepTime",
        f"paths.log_dir={root}", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(Path(__file__).parent)}
    launched = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.time() - launched
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    overheads, first = [], None
    for run_dir in sorted(p for p in sweep.iterdir() if (p / "first_step.json").is_file()):
        step = json.loads((run_dir / "first_step.json").read_text())["time"]
        if (run_dir / "launcher.json").is_file():
            start = json.loads((run_dir / "launcher.json").read_text())["started"]
        else:
            start = (run_dir / ".hydra" / "config.yaml").stat().st_mtime
        overheads.append(step - start)
        first = min(first or step, step)
    return {"wall": wall, "overheads": overheads, "command_to_first_step": first - launched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--width", type=int, default=8)
    args = parser.parse_args()
    print(f"{args.jobs} jobs: digits, model.width={args.width}, {args.epochs} epochs, CPU, "
          f"{os.cpu_count()} cores")  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in LAUNCHERS.items():
            results[name] = run_sweep(name, overrides, args, Path(tmp))
    sequential = results["local (sequential)"]["wall"]
    print(f"{'launcher':28s} {'sweep wall s':>12s} {'speed-up':>9s} "
          f"{'job start -> 1st step s (mean, max)':>36s} {'command -> 1st step s':>22s}")  # fmt: skip
    for name, r in results.items():
        mean, worst = statistics.fmean(r["overheads"]), max(r["overheads"])
        print(f"{name:28s} {r['wall']:12.1f} {sequential / r['wall']:8.2f}x "
              f"{mean:25.1f}, {worst:8.1f} {r['command_to_first_step']:22.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
