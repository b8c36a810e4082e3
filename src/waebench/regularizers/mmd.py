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

Memory: above `block_size` codes, the kernel sums are taken over blocks of
`block_size` rows, and each block is recomputed in the backward pass
(`torch.utils.checkpoint`) instead of being stored, so memory grows as
block_size x n, linearly in the batch, while the time stays O(n^2 d). A batch of
at most `block_size` codes (the paper's 100) is one block, stored: no recompute.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer

KERNELS = ("imq", "rbf")
PAPER_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BLOCK_SIZE = 256


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[n, m] matrix of ||x_i - y_j||^2 = ||x_i||^2 + ||y_j||^2 - 2 <x_i, y_j>, clamped at 0."""
    return (x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1) - 2 * x @ y.T).clamp_min(0)


def kernel_matrix(sq_dists: torch.Tensor, kernel: str, base: float, scales) -> torch.Tensor:
    """k summed over the scales, all scales at once (a few kernels, not a few per scale)."""
    c = base * sq_dists.new_tensor(scales).view(-1, *([1] * sq_dists.dim()))
    return (c / (c + sq_dists) if kernel == "imq" else torch.exp(-sq_dists / c)).sum(0)


def _block_kernel_sum(
    x_block: torch.Tensor,
    y: torch.Tensor,
    first_row: int,
    kernel: str,
    base: float,
    scales,
    skip_diagonal: bool,
) -> torch.Tensor:
    """Sum of k(x_i, y_j) for the rows i of x_block (rows first_row.. of x) and all j;
    with skip_diagonal (y is x), the terms i == j are left out."""
    k = kernel_matrix(squared_distances(x_block, y), kernel, base, scales)
    total = k.sum()
    return total - k.diagonal(first_row).sum() if skip_diagonal else total


def kernel_sum(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str,
    base: float,
    scales,
    skip_diagonal: bool = False,
    block_size: int = BLOCK_SIZE,
) -> torch.Tensor:
    """sum_{i, j} k(x_i, y_j) blockwise over the rows of x, in memory O(block_size x len(y)).
    A batch of at most block_size rows is one block, kept for the backward pass as it is."""
    if len(x) <= block_size:
        return _block_kernel_sum(x, y, 0, kernel, base, scales, skip_diagonal)
    keep_graph = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    total = x.new_zeros(())
    for start in range(0, len(x), block_size):
        args = (x[start : start + block_size], y, start, kernel, base, scales, skip_diagonal)
        part = (
            checkpoint(_block_kernel_sum, *args, use_reentrant=False, preserve_rng_state=False)
            if keep_graph
            else _block_kernel_sum(*args)
        )
        total = total + part
    return total


def mmd(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str = "imq",
    base: float = 1.0,
    scales=PAPER_SCALES,
    unbiased: bool = True,
    block_size: int = BLOCK_SIZE,
) -> torch.Tensor:
    """MMD^2 between samples x [n, d] and y [m, d] (see the module docstring)."""
    check_kernel(kernel, scales)
    n, m = len(x), len(y)
    if unbiased and min(n, m) < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples on each side, got {n} and {m}")
    k_xx = kernel_sum(x, x, kernel, base, scales, unbiased, block_size)
    k_yy = kernel_sum(y, y, kernel, base, scales, unbiased, block_size)
    k_xy = kernel_sum(x, y, kernel, base, scales, False, block_size)
    if unbiased:
        within_x, within_y = k_xx / (n * (n - 1)), k_yy / (m * (m - 1))
    else:
        within_x, within_y = k_xx / n**2, k_yy / m**2
    return within_x + within_y - 2 * k_xy / (n * m)


def check_kernel(kernel: str, scales) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; valid kernels: {', '.join(KERNELS)}")
    if len(scales) == 0 or any(s <= 0 for s in scales):
        raise ValueError(f"kernel scales must be a non-empty list of positive numbers: {scales}")


class MMDPenalty(LatentRegularizer):
    name = "mmd"

    def __init__(
        self,
        weight: float = 10.0,
        kernel: str = "imq",
        scales: list[float] | tuple[float, ...] = PAPER_SCALES,
        unbiased: bool = True,
        block_size: int = BLOCK_SIZE,
        gaussian_encoder: bool = False,
    ) -> None:
        super().__init__(weight, gaussian_encoder)
        check_kernel(kernel, tuple(scales))
        self.kernel, self.scales, self.unbiased = kernel, tuple(scales), unbiased
        self.block_size = int(block_size)

    def base_scale(self, prior: GaussianPrior) -> float:
        """C = 2 d sigma_z^2."""
        return 2.0 * prior.latent_dim * prior.variance

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        z = codes.z
        z_prior = prior.sample(len(z), device=z.device).to(z.dtype)
        return mmd(
            z,
            z_prior,
            self.kernel,
            self.base_scale(prior),
            self.scales,
            self.unbiased,
            self.block_size,
        )
