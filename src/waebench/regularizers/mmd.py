"""WAE-MMD: the maximum mean discrepancy between encoded codes and prior samples.

Kernels, with C = 2 d sigma_z^2 (the expected squared distance of two prior
samples) and the sum taken over `scales` s:

- `imq` (the paper's): k(x, y) = sum_s C s / (C s + ||x - y||^2)
- `rbf`:               k(x, y) = sum_s exp(-||x - y||^2 / (C s))

Unbiased estimator (the paper's U-statistic), for n codes z and n prior samples z~:

    MMD = sum_{i != j} k(z_i, z_j) / (n (n-1)) + sum_{i != j} k(z~_i, z~_j) / (n (n-1))
          - 2 sum_{i, j} k(z_i, z~_j) / n^2

It can be negative. The biased (V-statistic) estimator keeps the diagonal and
divides all three terms by n^2.
"""

from __future__ import annotations

import torch

from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer

KERNELS = ("imq", "rbf")
PAPER_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def kernel_matrix(sq_dists: torch.Tensor, kernel: str, base: float, scales) -> torch.Tensor:
    total = torch.zeros_like(sq_dists)
    for s in scales:
        c = base * s
        total = total + (c / (c + sq_dists) if kernel == "imq" else torch.exp(-sq_dists / c))
    return total


def mmd(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str = "imq",
    base: float = 1.0,
    scales=PAPER_SCALES,
    unbiased: bool = True,
) -> torch.Tensor:
    """MMD^2 between samples x [n, d] and y [m, d] (see the module docstring)."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; valid kernels: {', '.join(KERNELS)}")
    n, m = len(x), len(y)
    k_xx = kernel_matrix(torch.cdist(x, x).pow(2), kernel, base, scales)
    k_yy = kernel_matrix(torch.cdist(y, y).pow(2), kernel, base, scales)
    k_xy = kernel_matrix(torch.cdist(x, y).pow(2), kernel, base, scales)
    if unbiased:
        within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
        within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    else:
        within_x, within_y = k_xx.sum() / n**2, k_yy.sum() / m**2
    return within_x + within_y - 2 * k_xy.sum() / (n * m)


class MMDPenalty(LatentRegularizer):
    name = "mmd"

    def __init__(
        self,
        weight: float = 10.0,
        kernel: str = "imq",
        scales: list[float] | tuple[float, ...] = PAPER_SCALES,
        unbiased: bool = True,
        gaussian_encoder: bool = False,
    ) -> None:
        super().__init__(weight, gaussian_encoder)
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; valid kernels: {', '.join(KERNELS)}")
        self.kernel, self.scales, self.unbiased = kernel, tuple(scales), unbiased

    def base_scale(self, prior: GaussianPrior) -> float:
        """C = 2 d sigma_z^2."""
        return 2.0 * prior.latent_dim * prior.variance

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        z = codes.z
        z_prior = prior.sample(len(z), device=z.device).to(z.dtype)
        return mmd(z, z_prior, self.kernel, self.base_scale(prior), self.scales, self.unbiased)
