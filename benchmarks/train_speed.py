"""Training throughput of waebench (Lightning) against a plain PyTorch loop, and the
framework's cost per step as a user of `waebench-train` gets it.

For each network set and precision, three trainings of the same model config, data,
loss (reconstruction + weight * penalty) and optimizer (the model's own
`configure_optimizers`), in the same process, interleaved `--repeats` times (best of each):

- plain:    a PyTorch loop (autocast for bf16-mixed), no Lightning;
- stripped: a Lightning trainer without progress bar, checkpoints or callbacks, CSV log;
- user:     the trainer exactly as `waebench-train` builds it from the composed config
            (default callbacks, loggers, progress bar).

It prints images/s of each, the ratios to the plain loop and the framework cost
(user - plain) in ms per step. Network sets: `tiny` (the DCGAN nets at `--width`,
default 2, so that compute is small and the framework's cost shows) and `paper` (the
WAE paper's MNIST and CelebA networks, `experiment=wae_paper/*_wae_mmd`). Data:
Fashion-MNIST when installed, else random uint8 images of the dataset's shape
(random images for CelebA, which cannot be downloaded by a script); the timed steps lie
inside the first epoch.

    python benchmarks/train_speed.py                          # CPU: tiny nets, float32
    python benchmarks/train_speed.py --device cuda --json speed.json  # tiny + paper, 32 and bf16
    python benchmarks/train_speed.py --device cuda --nets paper --precision bf16-mixed \
        model.channels_last=true model.compile=true      # with the speed options
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import pstats
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from waebench.csv_log import ResumableCSVLogger
from waebench.data import DatasetNotFoundError, idx
from waebench.train import build_model, build_trainer

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
NETS = {  # network set -> {name: config overrides}
    "tiny": {"tiny": ["dataset=fashion_mnist"]},
    "paper": {
        "mnist": ["experiment=wae_paper/mnist_wae_mmd", "dataset=fashion_mnist"],
        "celeba": ["experiment=wae_paper/celeba_wae_mmd"],
    },
}
ORIGINS = (  # where a profiled function lives: (name, part of its file's path)
    ("C functions and torch ops", "~"),
    ("waebench", "/waebench/"),
    ("lightning", "/lightning/"),
    ("torch (Python)", "/torch/"),
    ("tqdm (progress bar)", "/tqdm/"),
)


class Window:
    """Wall time of steps `warmup` to `warmup + steps` (the device is synchronised at both
    ends only) and the host time of each of those steps (on a CPU, each step's wall time);
    with `profile`, a cProfile of the same steps."""

    def __init__(self, args, profile: bool = False) -> None:
        self.warmup, self.steps, self.device = args.warmup, args.steps, torch.device(args.device)
        self.profiler = cProfile.Profile() if profile else None
        self.start = self.seconds = None
        self.stamps: list[float] = []

    def at_step(self, step: int) -> None:
        if self.warmup <= step <= self.warmup + self.steps:
            self.stamps.append(time.perf_counter())
        if step == self.warmup:
            _sync(self.device)
            self.start = time.perf_counter()
            if self.profiler:
                self.profiler.enable()
        elif step == self.warmup + self.steps:
            if self.profiler:
                self.profiler.disable()
            _sync(self.device)
            self.seconds = time.perf_counter() - self.start

    def seconds_per_step(self) -> float:
        return self.seconds / self.steps

    def step_seconds(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.stamps)]

    def ms_per_step_by_origin(self) -> dict[str, float]:
        """The profiled steps' own time (cProfile `tottime`) by where the code lives."""
        totals: dict[str, float] = defaultdict(float)
        for (filename, _, _), (_, _, own, _, _) in pstats.Stats(self.profiler).stats.items():
            origin = next((name for name, part in ORIGINS if part in filename), "other Python")
            totals[origin] += 1e3 * own / self.steps
        return totals


class StepTimer(L.Callback):
    """A `Window` over a Lightning trainer's batches."""

    def __init__(self, window: Window) -> None:
        self.window = window

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.window.at_step(batch_idx)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compose_config(overrides: list[str], args, out_dir: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                *overrides,
                f"dataset.batch_size={args.batch_size}",
                f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
                f"trainer.max_steps={args.warmup + args.steps + 1}",
                "trainer.max_epochs=-1",
                f"paths.output_dir={out_dir}",
                f"paths.log_dir={out_dir}",
                "paths.data_dir=data",
            ],
        )


def make_datamodule(cfg, args):
    """The config's datamodule; random uint8 images of its shape where the data is absent."""
    datamodule = instantiate(cfg.dataset)
    try:
        idx.locate("fashion_mnist", idx.search_roots("fashion_mnist", datamodule.root))
        found = datamodule.name == "fashion_mnist"
    except DatasetNotFoundError:
        found = False
    if found:
        datamodule.setup()
        return datamodule, "fashion_mnist"
    n = (args.warmup + args.steps + 2) * args.batch_size
    shape = (datamodule.channels, datamodule.image_size, datamodule.image_size)
    generator = torch.Generator().manual_seed(0)
    datamodule.splits = {
        split: (
            torch.randint(0, 256, (size, *shape), dtype=torch.uint8, generator=generator),
            torch.zeros(size, dtype=torch.int64),
        )
        for split, size in (("train", n), ("val", 1000), ("test", 1000))
    }
    return datamodule, f"synthetic {'x'.join(map(str, shape))}"


def new_model(cfg):
    torch.manual_seed(0)
    return build_model(cfg)


def run_plain(cfg, datamodule, args, window: Window) -> Window:
    """A PyTorch loop with the model's networks, loss and optimizer."""
    device = torch.device(args.device)
    model = new_model(cfg).to(device).train()
    optimizers = model.configure_optimizers()
    optimizer = (optimizers[0] if isinstance(optimizers, tuple) else optimizers)[0]
    bf16 = cfg.trainer.precision == "bf16-mixed"
    step = 0
    while True:
        for images, _ in datamodule.train_dataloader():
            window.at_step(step)
            x = datamodule.to_float(images.to(device, non_blocking=True))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                terms, _ = model.loss_terms(x)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            step += 1
            if step == args.warmup + args.steps:
                window.at_step(step)
                return window


def run_stripped(cfg, datamodule, args, window: Window, out_dir: str) -> Window:
    """A Lightning trainer with CSV logging only."""
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        max_steps=args.warmup + args.steps + 1,
        logger=ResumableCSVLogger(out_dir, name="stripped"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        callbacks=[StepTimer(window)],
    )
    trainer.fit(new_model(cfg), datamodule=datamodule)
    return window


def run_user(cfg, datamodule, args, window: Window) -> Window:
    """The trainer as `waebench-train` builds it."""
    trainer = build_trainer(cfg, extra_callbacks=[StepTimer(window)])
    trainer.fit(new_model(cfg), datamodule=datamodule)
    return window


def print_profile(plain: dict[str, float], user: dict[str, float]) -> None:
    """Own time per step of the plain loop and the user's trainer, by origin."""
    print("  cProfile, own time in ms/step (profiling inflates Python-heavy code):")
    print(f"    {'origin':28s} {'plain':>8s} {'user':>8s} {'user - plain':>13s}")
    for origin in sorted(set(plain) | set(user), key=lambda o: -user.get(o, 0.0)):
        p, u = plain.get(origin, 0.0), user.get(origin, 0.0)
        print(f"    {origin:28s} {p:8.2f} {u:8.2f} {u - p:13.2f}")
    print(f"    {'all':28s} {sum(plain.values()):8.2f} {sum(user.values()):8.2f}")


def measure(name: str, overrides: list[str], precision: str, args) -> dict:
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = compose_config([*overrides, f"trainer.precision={precision}"], args, out_dir)
        datamodule, data = make_datamodule(cfg, args)
        times: dict[str, list[float]] = {"plain": [], "stripped": [], "user": []}
        steps: dict[str, list[float]] = {mode: [] for mode in times}
        for _ in range(args.repeats):  # interleaved, best of each, to damp machine noise
            windows = {
                "plain": run_plain(cfg, datamodule, args, Window(args)),
                "stripped": run_stripped(cfg, datamodule, args, Window(args), out_dir),
                "user": run_user(cfg, datamodule, args, Window(args)),
            }
            for mode, window in windows.items():
                times[mode].append(window.seconds_per_step())
                steps[mode].extend(window.step_seconds())
        if args.profile:
            profiles = {
                "plain": run_plain(cfg, datamodule, args, Window(args, profile=True)),
                "user": run_user(cfg, datamodule, args, Window(args, profile=True)),
            }
    best = {mode: min(values) for mode, values in times.items()}
    batch = args.batch_size
    result = {
        "nets": name,
        "overrides": args.overrides,
        "data": data,
        "width": cfg.model.width,
        "precision": precision,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "steps": args.steps,
        "ms_per_step": {mode: 1e3 * t for mode, t in best.items()},
        "runs_ms_per_step": {mode: [1e3 * t for t in ts] for mode, ts in times.items()},
        "images_per_s": {mode: batch / t for mode, t in best.items()},
        "ratio_stripped": best["plain"] / best["stripped"],
        "ratio_user": best["plain"] / best["user"],
        "framework_ms_per_step": 1e3 * (best["user"] - best["plain"]),
    }
    if args.device == "cpu":  # a CPU step's host time is its wall time; not so on a GPU
        median = {mode: 1e3 * statistics.median(ts) for mode, ts in steps.items()}
        result["median_step_ms"] = median
        result["framework_ms_per_step_median"] = median["user"] - median["plain"]
    ips, ms = result["images_per_s"], result["ms_per_step"]
    print(
        f"\n{name} nets (width {result['width']}), {data}, {precision}, {result['device']}, "
        f"batch {batch}, {args.steps} steps, threads {result['threads']}"
    )
    for mode in times:
        runs = ", ".join(f"{t:.2f}" for t in result["runs_ms_per_step"][mode])
        print(f"  {mode:9s}: {ips[mode]:9.1f} images/s  {ms[mode]:8.2f} ms/step  (runs: {runs})")
    print(
        f"  ratio stripped/plain {result['ratio_stripped']:.3f}, user/plain "
        f"{result['ratio_user']:.3f}; framework cost as the user runs it "
        f"{result['framework_ms_per_step']:.2f} ms/step"
    )
    if "median_step_ms" in result:
        median = result["median_step_ms"]
        print(
            f"  median of all {len(steps['plain'])} timed steps: plain {median['plain']:.2f}, "
            f"stripped {median['stripped']:.2f}, user {median['user']:.2f} ms; framework cost "
            f"{result['framework_ms_per_step_median']:.2f} ms/step, user/plain "
            f"{median['plain'] / median['user']:.3f} (robust to the machine's bursts)"
        )
    if args.profile:
        by_origin = {mode: w.ms_per_step_by_origin() for mode, w in profiles.items()}
        result["profile_ms_per_step"] = by_origin
        print_profile(by_origin["plain"], by_origin["user"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cuda = torch.cuda.is_available()
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if cuda else "cpu")
    parser.add_argument("--nets", nargs="+", choices=list(NETS), default=None)
    parser.add_argument("--precision", nargs="+", default=None)
    parser.add_argument("--width", type=int, default=2, help="of the tiny nets")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then cProfile the plain loop and the user's trainer: own time by origin",
    )
    parser.add_argument(
        "overrides", nargs="*", help="more waebench-train overrides, e.g. model.channels_last=true"
    )
    args = parser.parse_args()
    on_gpu = args.device == "cuda"
    args.nets = args.nets or (["tiny", "paper"] if on_gpu else ["tiny"])
    args.precision = args.precision or (["32-true", "bf16-mixed"] if on_gpu else ["32-true"])

    results = []
    for nets in args.nets:
        for name, overrides in NETS[nets].items():
            if nets == "tiny":
                overrides = [*overrides, f"model.width={args.width}"]
            overrides = [*overrides, *args.overrides]
            for precision in args.precision:
                results.append(measure(name, overrides, precision, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nresults: {args.json}")


if __name__ == "__main__":
    main()
