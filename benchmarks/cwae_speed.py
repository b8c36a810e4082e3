"""Training throughput of the CWAE paper's MNIST protocol (`experiment=cwae_paper/mnist_cwae`:
the 784-200-200-200-8 MLPs, batch 128, Adam, the per-image sum of squares plus lambda
log CW^2) with waebench and with a plain PyTorch loop of the same networks, loss, batch and
optimizer, side by side in one run, interleaved `--repeats` times.

- waebench: `waebench-train experiment=cwae_paper/<experiment>` as a user runs it (a fresh
  process: callbacks, checkpoint at every epoch's end, CSV log, progress bar; the protocol's
  8 batches a training step, or `--batches-per-step`), evaluation off, for `--epochs` epochs; the epochs are timed by `step_timer.StepTimer`, each from its
  start to the next one's (its end-of-epoch work, the checkpoint, included).
- plain: a loop over the same uint8 training images in memory (a permutation per epoch,
  batches sliced and made floats, the last partial batch dropped, as waebench does) through
  the model's own encoder, decoder and regularizer modules, with the config's optimizer.

The first epoch of every run is warm-up and not counted; each mode's seconds per epoch is
the median of the others. Prints seconds per epoch, images per second, the ratio
waebench / plain of the throughputs, torch's threads and the machine's load average before
and after. `--modes waebench` times waebench alone (e.g. each of the four MNIST protocols);
`--threads 1` runs with one torch thread (start two such commands at once to time two
parallel jobs). Data: MNIST ($WAEBENCH_MNIST_DIR or data/mnist), else the installed
Fashion-MNIST (`dataset=fashion_mnist`).

    python benchmarks/cwae_speed.py                          # mnist_cwae: waebench and plain
    python benchmarks/cwae_speed.py --batches-per-step 1     # one batch a Lightning step
    python benchmarks/cwae_speed.py --modes waebench --experiments mnist_ae mnist_wae_mmd \
        mnist_swae mnist_cwae --epochs 3 --repeats 1
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
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from waebench.build import build_model
from waebench.data import DatasetNotFoundError, idx
from waebench.regularizers import Codes

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def dataset_overrides() -> list[str]:
    """MNIST where it is found, else Fashion-MNIST (the same shapes and counts)."""
    try:
        idx.locate("mnist", idx.search_roots("mnist", None))
        return []
    except DatasetNotFoundError:
        return ["dataset=fashion_mnist"]


def compose_config(experiment: str, extra: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=[f"experiment=cwae_paper/{experiment}", *extra])


def run_waebench(experiment: str, extra: list[str], args, out_dir: Path) -> Epochs:
    """Wall and CPU seconds of each epoch of `waebench-train` (a fresh process), the first
    included."""
    command = [
        str(BIN / "waebench-train"), f"experiment=cwae_paper/{experiment}", *extra,
        f"trainer.max_epochs={args.epochs}", "eval.enabled=false",
        "+callbacks.step_timer._target_=step_timer.StepTimer",
        f"hydra.run.dir={out_dir}", f"paths.data_dir={args.data_dir}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "benchmarks"), *sys.path])}
    env["OMP_NUM_THREADS"] = str(args.threads)
    with open(out_dir.parent / f"{out_dir.name}.log", "w") as output:
        subprocess.run(command, check=True, env=env, stdout=output, stderr=subprocess.STDOUT)
    record = json.loads((out_dir / "step_times.json").read_text())
    wall = [*record["epoch_starts"], record["train_end"]]
    cpu = [*record["cpu_epoch_starts"], record["cpu_train_end"]]
    return Epochs(differences(wall), differences(cpu))


def run_plain(experiment: str, extra: list[str], args, seed: int = 0) -> Epochs:
    """Wall and CPU seconds of each epoch of a plain PyTorch loop on the config's networks,
    loss, data, batch and optimizer."""
    cfg = compose_config(experiment, [*extra, f"paths.data_dir={args.data_dir}"])
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    images = datamodule.splits["train"][0]
    torch.manual_seed(seed)
    model = build_model(cfg).train()
    encoder, decoder, regularizer, prior = (
        model.encoder, model.decoder, model.regularizer, model.prior,
    )  # fmt: skip
    parameters = [*encoder.parameters(), *decoder.parameters()]
    optimizer = instantiate(OmegaConf.to_container(cfg.model.optimizer), params=parameters)
    batch, weight = cfg.dataset.batch_size, regularizer.weight
    epochs = Epochs([], [])
    for epoch in range(args.epochs):
        start, cpu_start = time.perf_counter(), time.process_time()
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(epoch))
        for i in range(len(images) // batch):
            x = images[order[i * batch : (i + 1) * batch]].float() / 255.0
            z = encoder(x)
            rec = (x - torch.sigmoid(decoder(z))).pow(2).flatten(1).sum(1).mean()
            loss = rec + weight * regularizer(Codes(z=z, mean=z), prior)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        epochs.wall.append(time.perf_counter() - start)
        epochs.cpu.append(time.process_time() - cpu_start)
    return epochs


@dataclass
class Epochs:
    """Seconds of each epoch: wall-clock, and the process's CPU time (what the work cost,
    whatever else the machine ran)."""

    wall: list[float]
    cpu: list[float]


def differences(marks: list[float]) -> list[float]:
    return [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]


def summary(epochs: Epochs, images: int) -> dict[str, float]:
    wall, cpu = statistics.median(epochs.wall), statistics.median(epochs.cpu)
    return {
        "s_per_epoch": wall,
        "cpu_s_per_epoch": cpu,
        "images_per_s": images / wall,
        "images_per_cpu_s": images / cpu,
        "epochs_timed": len(epochs.wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", nargs="+", default=["mnist_cwae"])
    parser.add_argument(
        "--modes", nargs="+", choices=["plain", "waebench"], default=["plain", "waebench"]
    )
    parser.add_argument("--epochs", type=int, default=3, help="per run, the first one warm-up")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-dir", default=str(REPO / "data"))
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--batches-per-step", type=int, help="model.batches_per_step (default: the protocol's)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    extra = dataset_overrides()
    if args.batches_per_step is not None:
        extra.append(f"model.batches_per_step={args.batches_per_step}")
    load_before = os.getloadavg()
    results = []
    for experiment in args.experiments:
        cfg = compose_config(experiment, [*extra, f"paths.data_dir={args.data_dir}"])
        images = 60_000 // cfg.dataset.batch_size * cfg.dataset.batch_size
        times = {mode: Epochs([], []) for mode in args.modes}
        for _ in range(args.repeats):
            for mode in args.modes:
                if mode == "plain":
                    epochs = run_plain(experiment, extra, args)
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        epochs = run_waebench(experiment, extra, args, Path(tmp) / "run")
                times[mode].wall.extend(epochs.wall[1:])
                times[mode].cpu.extend(epochs.cpu[1:])
        result = {
            "experiment": experiment,
            "batches_per_step": cfg.model.batches_per_step,
            "data": cfg.dataset.name,
            "threads": args.threads,
            **{mode: summary(t, images) for mode, t in times.items()},
            "epochs": {mode: {"wall": t.wall, "cpu": t.cpu} for mode, t in times.items()},
        }
        print(f"\n{experiment} ({cfg.dataset.name}, batch {cfg.dataset.batch_size}, "
              f"{cfg.model.batches_per_step} batches a training step, "
              f"{args.threads} torch threads, {args.repeats} x {args.epochs - 1} timed epochs)")  # fmt: skip
        for mode, t in times.items():
            s = result[mode]
            print(f"  {mode:9s} {s['s_per_epoch']:7.2f} s/epoch  {s['images_per_s']:8.0f} images/s"
                  f"  CPU {s['cpu_s_per_epoch']:7.2f} s/epoch  "
                  f"(wall: {', '.join(f'{x:.2f}' for x in t.wall)})")  # fmt: skip
        if {"plain", "waebench"} <= set(times):
            plain, ours = result["plain"], result["waebench"]
            result["ratio"] = plain["s_per_epoch"] / ours["s_per_epoch"]
            result["cpu_ratio"] = plain["cpu_s_per_epoch"] / ours["cpu_s_per_epoch"]
            print(f"  waebench / plain throughput: {result['ratio']:.3f} (wall), "
                  f"{result['cpu_ratio']:.3f} (CPU time)")  # fmt: skip
        results.append(result)
    load_after = os.getloadavg()
    print(f"\nload average (1, 5, 15 min): before {load_before}, after {load_after}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "load": [load_before, load_after]}))


if __name__ == "__main__":
    main()
