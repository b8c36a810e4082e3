"""Speed-up of K jobs in flight per GPU (`launcher=gpus hydra.launcher.jobs_per_gpu=K`):
the wall time of one sweep of N small jobs on one GPU for each K, against K = 1.

    python benchmarks/jobs_per_gpu.py                                  # 24 MNIST-size jobs, GPU 0
    python benchmarks/jobs_per_gpu.py --device cpu --jobs 4 --ks 1,2 --width 4 --steps 5 \\
        --dataset digits                                               # a tiny run on a CPU

Each job is a fresh process (the launcher's), training the paper's networks (--width 128)
for --steps steps at batch 100, evaluation off. On a CPU the "GPU" is simulated
(hydra.launcher.devices=[0]) and the jobs share the CPU's cores. --json appends one JSON
line per K to a results file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def run_sweep(k: int, args, root: Path) -> float:
    sweep = root / f"k{k}"
    command = [
        sys.executable, "-m", "waebench.train", "-m", "launcher=gpus",
        "hydra.launcher.devices=[0]", f"hydra.launcher.jobs_per_gpu={k}",
        f"seed={','.join(map(str, range(args.jobs)))}", f"dataset={args.dataset}",
        f"model.width={args.width}", f"trainer.max_steps={args.steps}",
        "trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
        "trainer.enable_progress_bar=false",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        "eval.enabled=false", f"paths.log_dir={root}", f"hydra.sweep.dir={sweep}",
        *args.overrides,
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline"}
    if args.data_dir:
        command.append(f"paths.data_dir={args.data_dir}")
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"K={k} failed:\n{done.stderr[-3000:]}")
    completed = [
        json.loads(p.read_text()).get("status") for p in sweep.glob("*/metrics.json")
    ].count("completed")
    if completed != args.jobs:
        raise SystemExit(f"K={k}: {completed} of {args.jobs} jobs completed (see {sweep})")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--ks", default="1,2,4,8", help="comma-separated K values")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--data-dir", default=None, help="paths.data_dir of the jobs")
    parser.add_argument("--width", type=int, default=128, help="128: the paper's networks")
    parser.add_argument("--steps", type=int, default=550, help="training steps per job")
    parser.add_argument("--json", type=Path, help="append one JSON line per K to this file")
    parser.add_argument("overrides", nargs="*", help="more waebench-train overrides")
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    name = device_name(args.device)
    print(f"{args.jobs} jobs ({args.dataset}, width {args.width}, {args.steps} steps, batch 100) "
          f"on one device: {name}")  # fmt: skip
    print(f"{'K':>3s} {'sweep wall s':>13s} {'jobs/min':>9s} {f'vs K={ks[0]}':>9s} {'/ K':>6s}")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for k in ks:
            wall = run_sweep(k, args, Path(tmp))
            base = base or wall
            speedup = base / wall
            print(f"{k:3d} {wall:13.1f} {60 * args.jobs / wall:9.1f} {speedup:8.2f}x "
                  f"{speedup / k:6.2f}", flush=True)  # fmt: skip
            if args.json:
                with open(args.json, "a") as out:
                    row = {"benchmark": "jobs_per_gpu", "device": name, "k": k,
                           "jobs": args.jobs, "steps": args.steps, "width": args.width,
                           "dataset": args.dataset, "wall_s": round(wall, 2),
                           "speedup": round(speedup, 3)}  # fmt: skip
                    out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
