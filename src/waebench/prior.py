"""The latent prior P_Z = N(0, sigma_z^2 I)."""

from __future__ import annotations

import math

import torch
from torch import nn


class GaussianPrior(nn.Module):
    def __init__(self, latent_dim: int, variance: float = 1.0) -> None:
        super().__init__()
        self.latent_dim, self.variance = latent_dim, float(variance)

    def sample(self, n: int, device: torch.device | str = "cpu", generator=None) -> torch.Tensor:
        noise = torch.randn(n, self.latent_dim, device=device, generator=generator)
        return noise * math.sqrt(self.variance)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, sigma^2 I) = -||z||^2 / (2 sigma^2) - d/2 log(2 pi sigma^2), per row."""
        d = z.shape[-1]
        return -z.pow(2).sum(-1) / (2 * self.variance) - 0.5 * d * math.log(
            2 * math.pi * self.variance
        )
