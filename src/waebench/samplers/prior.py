"""Codes drawn from the model's prior P_Z = N(0, sigma_z^2 I)."""

from __future__ import annotations

import torch

from waebench.prior import GaussianPrior


class PriorSampler:
    """z ~ P_Z. Meaningful only for a model whose regularizer pulls its codes toward P_Z
    (`LatentRegularizer.uses_prior`); the evaluation refuses it on the others."""

    name = "prior"
    label = "N"  # its FID's column heading: N of Ghosh et al. 2020's Table 1
    title = "samples of the prior"
    needs_prior = True

    def __init__(self, prior: GaussianPrior) -> None:
        self.prior = prior

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        return self.prior.sample(n, generator=torch.Generator().manual_seed(seed))
