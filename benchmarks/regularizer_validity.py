"""Validity table of every regularizer (the one in docs/regularizers.md), from its config.

For batches of the paper's size (100) at d = 8 (sigma_z^2 = 1, MNIST) and d = 64
(sigma_z^2 = 2, CelebA), prints: the expected penalty at the prior and at three wrong
laws (waebench.validity.WRONG_LAWS), the minimiser over s of the expected penalty of
N(0, s sigma_z^2 I) (vertex of a parabola fitted on s in 0.7..1.3; not for gan), and the
signs of the gradient pull from a shifted and a scaled start (+ towards the prior).

    python benchmarks/regularizer_validity.py
    python benchmarks/regularizer_validity.py --regularizers sinkhorn w2_gaussian --reps 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from waebench.prior import GaussianPrior
from waebench.validity import (
    PRIOR,
    WRONG_LAWS,
    Law,
    adversary_divergence,
    expected_penalty,
    parabola_minimiser,
    pull,
    scale_curve,
    train_adversary,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
REGULARIZERS = (
    "mmd", "sinkhorn", "sliced", "w2_gaussian", "w2_gaussian_per_sample", "kl", "cwae", "gan",
)  # fmt: skip
PAPER_LATENTS = {8: 1.0, 64: 2.0}  # d -> sigma_z^2
SCALES = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)


def build(name: str, latent_dim: int):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"regularizer={name}", f"model.latent_dim={latent_dim}"])
    return instantiate(cfg.regularizer)


def gan_row(d: int, prior: GaussianPrior, reps: int) -> list[str]:
    values = []
    for law in (PRIOR, *WRONG_LAWS):
        gan = build("gan", d)
        train_adversary(gan, prior, law)
        values.append(f"{adversary_divergence(gan, prior, law, reps=reps):.3g}")
    pulls = []
    for law in (WRONG_LAWS[0], WRONG_LAWS[1]):
        gan = build("gan", d)
        train_adversary(gan, prior, law)
        p = pull(gan, prior, law, reps=reps)
        pulls.append(p.towards_origin if law.shift else -p.grow)
    return [*values, "-", *("+" if v > 0 else "-" for v in pulls)]


def row(name: str, d: int, prior: GaussianPrior, reps: int) -> list[str]:
    if name == "gan":
        return gan_row(d, prior, reps)
    regularizer = build(name, d)
    values = [expected_penalty(regularizer, prior, law, reps=reps) for law in (PRIOR, *WRONG_LAWS)]
    minimiser = parabola_minimiser(SCALES, scale_curve(regularizer, prior, SCALES, reps=reps))
    shifted, scaled = (
        pull(regularizer, prior, WRONG_LAWS[0]),
        pull(regularizer, prior, WRONG_LAWS[1]),
    )
    signs = ["+" if shifted.towards_origin > 0 else "-", "+" if -scaled.grow > 0 else "-"]
    return [*(f"{v:.3g}" for v in values), f"{minimiser:.2f}", *signs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regularizers", nargs="+", default=list(REGULARIZERS))
    parser.add_argument("--reps", type=int, default=50, help="batches per expectation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    laws = [PRIOR, *WRONG_LAWS]
    header = [
        "regularizer",
        "d",
        *(law_title(law) for law in laws),
        "argmin s",
        "pull shifted",
        "pull scaled",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.regularizers:
        for d, variance in PAPER_LATENTS.items():
            cells = row(name, d, GaussianPrior(d, variance), args.reps)
            print(f"| `{name}` | {d} | " + " | ".join(cells) + " |", flush=True)


def law_title(law: Law) -> str:
    if law.shift:
        return f"E at N({law.shift:g} sigma_z, sigma_z^2)"
    return f"E at N(0, {law.scale:g} sigma_z^2)"


if __name__ == "__main__":
    main()
