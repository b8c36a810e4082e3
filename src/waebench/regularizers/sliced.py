"""SWAE: the sliced 2-Wasserstein distance between codes and prior samples
(Kolouri et al. 2019).

For L random directions theta_l, uniform on the unit sphere, and n codes z and
n prior samples z~ (equal counts):

    SW2^2 = 1/L sum_l 1/n sum_i (sort(z theta_l)_i - sort(z~ theta_l)_i)^2

In one dimension, sorting gives the optimal coupling, so each term is the exact
W2^2 between the projected samples. Cost O(L n (d + log n)).
"""

from __future__ import annotations

import torch

from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer


def random_directions(
    dim: int, count: int, device=None, dtype=None, generator=None
) -> torch.Tensor:
    """[dim, count] unit vectors drawn uniformly on the sphere (normalised Gaussians)."""
    theta = torch.randn(dim, count, device=device, dtype=dtype, generator=generator)
    return theta / theta.norm(dim=0, keepdim=True)


def sliced_wasserstein_squared(
    x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """SW2^2 between samples x [n, d] and y [n, d] along directions [d, L]."""
    if x.shape != y.shape:
        raise ValueError(
            f"sliced Wasserstein needs equal sample counts and dimensions, got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    x_proj = (x @ directions).sort(dim=0).values
    y_proj = (y @ directions).sort(dim=0).values
    return (x_proj - y_proj).pow(2).mean()


class SlicedWassersteinPenalty(LatentRegularizer):
    name = "sliced"

    def __init__(
        self, weight: float = 10.0, n_projections: int = 50, gaussian_encoder: bool = False
    ) -> None:
        super().__init__(weight, gaussian_encoder)
        self.n_projections = int(n_projections)

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        z = codes.z
        z_prior = prior.sample(len(z), device=z.device).to(z.dtype)
        directions = random_directions(z.shape[1], self.n_projections, z.device, z.dtype)
        return sliced_wasserstein_squared(z, z_prior, directions)
