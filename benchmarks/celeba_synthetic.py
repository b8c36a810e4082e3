"""Training speed of the WAE paper's CelebA networks on synthetic data written in CelebA's real
file layout (CelebA itself cannot be downloaded by a script): `img_align_celeba/NNNNNN.jpg` (178x218 RGB
JPEGs) and `list_eval_partition.txt`, read by waebench's own CelebA loader (crop 140, resize 64,
cached as uint8), then trained with `experiment=wae_paper/celeba_wae_mmd` exactly as
`waebench-train` runs it.

    python benchmarks/celeba_synthetic.py --device cuda --json results.jsonl
    python benchmarks/celeba_synthetic.py --device cpu --images 300 --steps 3 --warmup 1 \\
        model.width=8                                                  # tiny, on a CPU

The pixels are smooth random blobs (so JPEG decoding costs what a photo costs); only the
timings mean anything. Prints images/s of the timed steps; --json appends one JSON line
in train_speed.py's result format (nets "celeba", images_per_s.user), which
`paper_budget.py` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image


class StepTimer(L.Callback):
    """Writes <run dir>/step_timer.json: seconds from the start of batch `warmup` to the start
    of batch `warmup + steps` (device synchronised at both ends)."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps, self.start = warmup, steps, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        step = trainer.global_step
        if step in (self.warmup, self.warmup + self.steps):
            if module.device.type == "cuda":
                torch.cuda.synchronize()
            if step == self.warmup:
                self.start = time.perf_counter()
            else:
                seconds = time.perf_counter() - self.start
                path = Path(trainer.default_root_dir) / "step_timer.json"
                path.write_text(json.dumps({"steps": self.steps, "seconds": seconds}))


def write_celeba_layout(folder: Path, counts: tuple[int, int, int], seed: int = 0) -> None:
    """`counts` train/val/test images as CelebA ships them (partition codes 0/1/2)."""
    rng = np.random.default_rng(seed)
    images = folder / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    lines, index = [], 1
    for code, count in enumerate(counts):
        for _ in range(count):
            small = rng.integers(0, 256, (14, 12, 3), dtype=np.uint8)
            blob = Image.fromarray(small).resize((178, 218), Image.BICUBIC)
            name = f"{index:06d}.jpg"
            blob.save(images / name, quality=95)
            lines.append(f"{name} {code}")
            index += 1
    (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--images", type=int, default=30_000, help="training images written")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--data-dir", type=Path, help="keep the synthetic CelebA here")
    parser.add_argument("--json", type=Path, help="append one JSON line to this file")
    parser.add_argument("overrides", nargs="*", help="more waebench-train overrides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_dir or Path(tmp) / "celeba"
        if not (root / "list_eval_partition.txt").is_file():
            started = time.perf_counter()
            write_celeba_layout(root, (args.images, 100, 100))
            print(f"wrote {args.images + 200} JPEGs in {time.perf_counter() - started:.0f} s")
        run_dir = Path(tmp) / "run"
        command = [
            sys.executable, "-m", "waebench.train", "experiment=wae_paper/celeba_wae_mmd",
            f"dataset.root={root}", f"dataset.preprocess_workers={os.cpu_count()}",
            f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
            f"trainer.precision={args.precision}", f"trainer.max_steps={args.warmup + args.steps + 1}",
            "trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
            "trainer.enable_progress_bar=false",
            "eval.enabled=false", f"hydra.run.dir={run_dir}",
            "+callbacks.step_timer._target_=celeba_synthetic.StepTimer",
            f"+callbacks.step_timer.warmup={args.warmup}", f"+callbacks.step_timer.steps={args.steps}",
            *args.overrides,
        ]  # fmt: skip
        env = {**os.environ, "WANDB_MODE": "offline"}
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")
        timer = json.loads((run_dir / "step_timer.json").read_text())
        wall = time.perf_counter() - started
    batch = 100
    ips = batch * timer["steps"] / timer["seconds"]
    device = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {os.cpu_count()} cores"
    )
    print(f"CelebA nets (wae_paper/celeba_wae_mmd {' '.join(args.overrides)}), synthetic CelebA "
          f"layout, {args.precision}, {device}: {ips:.1f} images/s "
          f"({1e3 * timer['seconds'] / timer['steps']:.2f} ms/step over {timer['steps']} steps; "
          f"whole command incl. preprocessing {wall:.0f} s)")  # fmt: skip
    if args.json:
        row = {"benchmark": "celeba_synthetic", "nets": "celeba", "data": "synthetic CelebA layout",
               "precision": args.precision, "device": device, "batch_size": batch,
               "steps": timer["steps"], "overrides": args.overrides,
               "images_per_s": {"user": ips}}  # fmt: skip
        with open(args.json, "a") as out:
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
