"""Checks that a sampler fitted to codes of known law samples that law: the latent MMD
(the evaluation's estimator) between its samples and a sample of the law, against the null
spread, the MMD between independent samples of the law itself.

A sampler that matches the law gives MMDs distributed as the null; `Law.threshold` is the
null mean plus 4 null standard deviations (estimated from `pairs` independent pairs). Used
by tests/test_samplers.py and benchmarks/sampler_fit.py (the table in docs/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from waebench.regularizers.mmd import PAPER_SCALES, mmd

D = 8  # the study's latent dimension


def mixture(centres: torch.Tensor, scales: torch.Tensor) -> Callable[[int, int], torch.Tensor]:
    """draw(n, seed): n samples of the equal-weight mixture of N(centres[k], scales[k]^2 I)."""

    def draw(n: int, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        k = torch.randint(len(centres), (n,), generator=generator)
        noise = torch.randn(n, centres.shape[1], generator=generator)
        return centres[k] + scales[k, None] * noise

    return draw


def separated_centres() -> torch.Tensor:
    """Three modes, the first two 6 units apart (>= 6 of their standard deviations)."""
    centres = torch.zeros(3, D)
    centres[0, :4], centres[1, :4], centres[2, 4:] = 1.5, -1.5, 1.5
    return centres


def overlapping_centres() -> torch.Tensor:
    """Three modes 1.5 to 3 units apart: overlapping, one bump of uneven shape."""
    centres = torch.zeros(3, D)
    centres[0, 0], centres[1, 0], centres[2, 1] = 1.5, -1.5, 1.5
    return centres


LAWS = {
    "separated": mixture(separated_centres(), torch.tensor([0.6, 1.0, 0.8])),
    "overlapping": mixture(overlapping_centres(), torch.tensor([0.5, 0.8, 0.6])),
}


def latent_mmd(x: torch.Tensor, y: torch.Tensor) -> float:
    """The evaluation's estimator (`waebench.evaluation.metrics.latent_mmd`): unbiased MMD^2,
    IMQ kernel summed over the paper's scales, C = 2 d sigma_z^2 with sigma_z = 1."""
    base = 2.0 * x.shape[1]
    return mmd(x.double(), y.double(), kernel="imq", base=base, scales=PAPER_SCALES).item()


class Law:
    """A law `draw(n, seed)` with its reference sample of `n` and the MMD null spread."""

    def __init__(self, draw: Callable[[int, int], torch.Tensor], n: int = 2000, pairs: int = 8):
        self.draw, self.n = draw, n
        self.reference = draw(n, 1000)
        nulls = torch.tensor([latent_mmd(self.reference, draw(n, 2000 + i)) for i in range(pairs)])
        self.null_mean, self.null_std = nulls.mean().item(), nulls.std().item()

    @property
    def threshold(self) -> float:
        """Null mean + 4 null standard deviations: a sample of the law itself exceeds it
        with probability well under 1 %."""
        return self.null_mean + 4 * self.null_std

    def distance(self, sampler, seed: int = 7) -> float:
        """MMD^2 between `n` samples of `sampler` and the reference sample."""
        return latent_mmd(sampler.sample(self.n, seed=seed), self.reference)
