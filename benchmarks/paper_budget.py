"""Projected wall time of the WAE paper's experiments (`wae_paper/*`) and of the whole
`sweep=wae_paper_table` (8 experiments x 3 seeds), from measured training images/s.

    time of one run = epochs x floor(train images / batch) x batch / (images/s) + eval

Epochs and batch size come from the composed experiment configs; the training split sizes
are the official ones (MNIST/Fashion-MNIST 60,000 minus dataset.val_size; CelebA 162,770).
images/s come from the JSON that `train_speed.py --json` writes (a list) and/or JSON lines of
`celeba_synthetic.py --json` (nets "mnist" or "celeba"; --precision and --mode pick the row),
or from --mnist-ips / --celeba-ips. The per-run evaluation time (FID etc.) is --eval-s, or the
`end_to_end_s` of a `fid_speed.py --json` row times the FIDs a run computes (--fids-per-run).
WAE-GAN's adversary step and the VAE's sampling are counted at WAE-MMD's speed (the adversary
is a small MLP on 8/64-d codes); every number printed is a projection, not a measurement.

    python benchmarks/paper_budget.py --speed results.jsonl
    python benchmarks/paper_budget.py --mnist-ips 20000 --celeba-ips 3000 --eval-s 30
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

CONF = Path(__file__).resolve().parents[1] / "conf"
OFFICIAL_TRAIN_IMAGES = {"mnist": 60_000, "fashion_mnist": 60_000, "celeba": 162_770}
SWEEP_SEEDS = 3


def experiments() -> list[tuple[str, str, int, int]]:
    """(experiment, nets, epochs, steps per epoch) for each wae_paper/* experiment."""
    names = sorted(
        p.stem
        for p in (CONF / "experiment" / "wae_paper").glob("*.yaml")
        if not p.stem.endswith("_protocol")
    )
    rows = []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for name in names:
            cfg = compose("train", overrides=[f"experiment=wae_paper/{name}"])
            data = cfg.dataset
            train = OFFICIAL_TRAIN_IMAGES[data.name] - (
                0 if data.name == "celeba" else data.val_size
            )
            nets = "celeba" if data.name == "celeba" else "mnist"
            rows.append((name, nets, cfg.trainer.max_epochs, train // data.batch_size))
    GlobalHydra.instance().clear()
    return rows


def read_rows(path: Path) -> list[dict]:
    text = path.read_text().strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def speeds_from(rows: list[dict], precision: str, mode: str) -> dict[str, tuple[float, str]]:
    """nets -> (images/s, where from): the last matching row of each net wins."""
    out = {}
    for row in rows:
        ips = row.get("images_per_s")
        if isinstance(ips, dict) and row.get("precision") == precision and mode in ips:
            out[row["nets"]] = (float(ips[mode]), f"{row.get('benchmark', 'train_speed')}, "
                                f"{row.get('device', '?')}")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speed", type=Path, nargs="*", default=[], help="JSON / JSON lines")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--mode", default="user", help="train_speed mode: user | stripped | plain")
    parser.add_argument("--mnist-ips", type=float)
    parser.add_argument("--celeba-ips", type=float)
    parser.add_argument("--eval-s", type=float, help="evaluation seconds per run")
    parser.add_argument("--fids-per-run", type=int, default=2, help="prior samples + recons")
    parser.add_argument("--json", type=Path, help="append the projection as one JSON line")
    args = parser.parse_args()
    rows = [row for path in args.speed for row in read_rows(path)]
    speeds = speeds_from(rows, args.precision, args.mode)
    for nets, value in (("mnist", args.mnist_ips), ("celeba", args.celeba_ips)):
        if value:
            speeds[nets] = (value, "given")
    fid_rows = [
        r for r in rows if r.get("benchmark") == "fid_speed" and r.get("num_images") == 10_000
    ]
    eval_s, eval_from = args.eval_s, "given"
    if eval_s is None:
        eval_s = args.fids_per_run * fid_rows[-1]["end_to_end_s"] if fid_rows else 0.0
        eval_from = f"{args.fids_per_run} x fid_speed" if fid_rows else "not counted"
    for nets, (ips, source) in sorted(speeds.items()):
        print(f"{nets} nets: {ips:.0f} images/s ({args.precision}, {source})")
    print(f"evaluation per run: {eval_s:.0f} s ({eval_from})")
    print(f"{'experiment':16s} {'epochs':>6s} {'steps':>8s} {'train min':>10s} {'run min':>8s}")
    total, projection = 0.0, {}
    for name, nets, epochs, per_epoch in experiments():
        if nets not in speeds:
            print(f"{name:16s} {epochs:6d} {epochs * per_epoch:8d}   (no images/s for {nets} nets)")
            continue
        train_s = epochs * per_epoch * 100 / speeds[nets][0]
        run_s = train_s + eval_s
        total += SWEEP_SEEDS * run_s
        projection[name] = round(run_s / 60, 2)
        print(
            f"{name:16s} {epochs:6d} {epochs * per_epoch:8d} {train_s / 60:10.1f} {run_s / 60:8.1f}"
        )
    complete = len(projection) == 8
    print(f"sweep=wae_paper_table ({SWEEP_SEEDS} seeds, one job at a time): "
          f"{total / 3600:.2f} h{'' if complete else ' (experiments without images/s left out)'}; "
          f"one seed: {total / SWEEP_SEEDS / 3600:.2f} h")  # fmt: skip
    if args.json:
        row = {"benchmark": "paper_budget", "precision": args.precision, "mode": args.mode,
               "images_per_s": {k: v[0] for k, v in speeds.items()}, "eval_s_per_run": eval_s,
               "run_minutes": projection, "table_hours_3_seeds": round(total / 3600, 3),
               "table_hours_1_seed": round(total / SWEEP_SEEDS / 3600, 3), "projected": True}  # fmt: skip
        with open(args.json, "a") as out:
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
