"""Reconstruction costs c(x, G(z)), summed over the pixels of each image,
averaged over the batch, and multiplied by `scale`.

The scale fixes what the regularizer's weight lambda means:

- `l2sq` with scale 0.05 is the official WAE code's cost
  `0.05 * mean_batch sum_pixels (x - y)^2`; the paper's lambda values
  (MNIST 10; CelebA 100 for MMD, 1 for GAN) are on this scale.
- `bernoulli` with scale 1 is the negative log-likelihood of a Bernoulli
  decoder, so with the `kl` regularizer at weight 1 the loss is the VAE's
  negative ELBO (data must lie in [0, 1]).
- `l2sq` with scale 1 / (2 v) is the negative log-likelihood of a Gaussian
  decoder with fixed variance v, up to a constant (the paper's CelebA VAE:
  v = 0.3, scale 1.667).
- `l1` sums absolute errors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

COSTS = ("l2sq", "l1", "bernoulli")


class ReconstructionCost(nn.Module):
    def __init__(self, name: str = "l2sq", scale: float = 0.05) -> None:
        super().__init__()
        if name not in COSTS:
            raise ValueError(
                f"unknown reconstruction cost {name!r}; valid names: {', '.join(COSTS)}"
            )
        self.name, self.scale = name, float(scale)

    def forward(self, x: torch.Tensor, logits: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        """`logits` are the decoder's outputs before the activation, `x_rec` after it."""
        if self.name == "bernoulli":
            per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        elif self.name == "l2sq":
            per_pixel = (x - x_rec).pow(2)
        else:
            per_pixel = (x - x_rec).abs()
        return self.scale * per_pixel.flatten(1).sum(1).mean()
