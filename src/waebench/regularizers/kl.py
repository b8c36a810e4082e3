"""VAE: KL(Q(z|x) || P_Z) for a Gaussian encoder, weight beta (1 = the ELBO)."""

from __future__ import annotations

import math

import torch

from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor, prior_var: float) -> torch.Tensor:
    """Per row: KL(N(m, diag s^2) || N(0, v I))
    = 1/2 sum_j (s_j^2 / v + m_j^2 / v - 1 - log s_j^2 + log v)."""
    return 0.5 * (
        (log_var.exp() + mean.pow(2)) / prior_var - 1.0 - log_var + math.log(prior_var)
    ).sum(-1)


class KLDivergence(LatentRegularizer):
    name = "kl"

    def __init__(self, weight: float = 1.0, gaussian_encoder: bool = True) -> None:
        if not gaussian_encoder:
            raise ValueError(
                "regularizer=kl needs a Gaussian encoder (regularizer.gaussian_encoder=true)"
            )
        super().__init__(weight, gaussian_encoder=True)

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        return gaussian_kl(codes.mean, codes.log_var, prior.variance).mean()
