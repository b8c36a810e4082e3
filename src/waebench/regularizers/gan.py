"""WAE-GAN: an adversary in latent space tells prior samples from codes.

With D the adversary's logit and sigma the logistic function:

- adversary, ascending:  weight * mean_i [log sigma(D(z~_i)) + log(1 - sigma(D(z_i)))]
  (z~ prior samples, z codes), i.e. it minimises `adversary_loss`;
- encoder and decoder, descending (non-saturating): rec - weight * mean_i log sigma(D(z_i)).

Adversary: 4 x [Linear 512 -> ReLU] -> Linear 1. The optional "p-trick" adds
the analytic log N(z; 0, sigma_z^2 I) to the logit (the official code uses it
on CelebA, not on MNIST).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer

ADVERSARY_CODES = ("reencoded", "step")


class LatentAdversary(nn.Module):
    def __init__(self, latent_dim: int, hidden: int = 512, layers: int = 4) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = latent_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


class GANPenalty(LatentRegularizer):
    name = "gan"

    def __init__(
        self,
        latent_dim: int,
        weight: float = 10.0,
        adversary_lr: float = 5e-4,
        hidden: int = 512,
        layers: int = 4,
        prior_trick: bool = False,
        adversary_codes: str = "reencoded",
        gaussian_encoder: bool = False,
    ) -> None:
        if adversary_codes not in ADVERSARY_CODES:
            raise ValueError(
                f"regularizer.adversary_codes={adversary_codes!r}; valid values: "
                f"{', '.join(ADVERSARY_CODES)}"
            )
        super().__init__(weight, gaussian_encoder)
        self.adversary_codes = adversary_codes
        self.adversary = LatentAdversary(latent_dim, hidden, layers)
        self.adversary_lr, self.prior_trick = adversary_lr, prior_trick

    def logits(self, z: torch.Tensor, prior: GaussianPrior) -> torch.Tensor:
        logits = self.adversary(z)
        return logits + prior.log_prob(z) if self.prior_trick else logits

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        """-mean log sigma(D(z)) = mean softplus(-D(z))."""
        return F.softplus(-self.logits(codes.z, prior)).mean()

    def adversary_loss(self, z: torch.Tensor, prior: GaussianPrior) -> torch.Tensor:
        """weight * -mean[log sigma(D(z~)) + log(1 - sigma(D(z)))] on detached codes z."""
        z_prior = prior.sample(len(z), device=z.device).to(z.dtype)
        real, fake = self.logits(z_prior, prior), self.logits(z.detach(), prior)
        loss = F.softplus(-real).mean() + F.softplus(fake).mean()
        return self.weight * loss
