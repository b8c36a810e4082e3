"""Fit time of each ex-post sampler at the study's scale, and how close its samples come to
the law of the codes it was fitted to.

    python benchmarks/sampler_fit.py [--codes 55000] [--laws separated overlapping]
        [--samplers gaussian gmm two_stage flow] [--set two_stage.steps=4000 ...] [--threads N]

Codes: `--codes` draws (the study: 55,000 training codes, d = 8) of a known 3-component
mixture (`waebench.samplers.validity.LAWS`). Each sampler is built with its settings from
conf/eval/default.yaml (`eval.sampler.<name>`, changed with `--set name.key=value`) and
seed 0. Printed per law and sampler: the fit time, the time of 10,000 samples, and the latent
MMD of 2,000 samples to 2,000 of the law, beside the null (independent samples of the law:
mean, std) and the threshold (mean + 4 std) that tests/test_samplers.py applies.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
import yaml

from waebench import samplers
from waebench.samplers.validity import LAWS, Law

DEFAULTS = Path(__file__).resolve().parents[1] / "conf" / "eval" / "default.yaml"


def settings(overrides: list[str]) -> dict:
    out = yaml.safe_load(DEFAULTS.read_text())["sampler"]
    for item in overrides:
        key, value = item.split("=", 1)
        name, option = key.split(".", 1)
        out.setdefault(name, {})[option] = yaml.safe_load(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=55_000)
    parser.add_argument("--laws", nargs="+", default=list(LAWS), choices=list(LAWS))
    parser.add_argument("--samplers", nargs="+", default=["gaussian", "gmm", "two_stage", "flow"])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME.KEY=VALUE")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = settings(args.set)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{platform.node()}: {torch.get_num_threads()} threads, load average {' '.join(load)}")
    print(f"settings: { {n: config.get(n) for n in args.samplers} }")
    for name in args.laws:
        law = Law(LAWS[name])
        codes = law.draw(args.codes, 0)
        print(f"\nlaw {name}: {args.codes} codes, d = {codes.shape[1]}; MMD null "
              f"{law.null_mean:.5f} ± {law.null_std:.5f}, threshold {law.threshold:.5f}")  # fmt: skip
        print(f"{'sampler':<10} {'fit s':>8} {'10k samples s':>14} {'MMD':>9}  vs threshold")
        for sampler_name in args.samplers:
            start = time.perf_counter()
            sampler = samplers.build(sampler_name, config, None, lambda c=codes: c, seed=0)
            fit = time.perf_counter() - start
            start = time.perf_counter()
            sampler.sample(10_000, seed=1)
            sample = time.perf_counter() - start
            distance = law.distance(sampler)
            ratio = distance / law.threshold
            print(f"{sampler_name:<10} {fit:8.2f} {sample:14.3f} {distance:9.5f}  x{ratio:.1f}")


if __name__ == "__main__":
    main()
