"""Codes drawn from a Gaussian fitted to the training codes: the N column of Ghosh et al.
2020 (Table 1) for the models without a prior (RAE, AE)."""

from __future__ import annotations

import torch


class GaussianSampler:
    """z ~ N(m, S), m and S the mean and (full, unbiased) covariance of the training codes:
    the maximum-likelihood Gaussian (up to S's n / (n - 1)), as a 1-component GMM."""

    name = "gaussian"
    label = "Gaussian"
    title = "a Gaussian fitted to the training codes"
    needs_prior = False

    def __init__(self, codes: torch.Tensor, seed: int = 0) -> None:
        codes = codes.double().cpu()
        if len(codes) < 2:
            raise ValueError(f"a Gaussian fit needs at least 2 codes, got {len(codes)}")
        self.mean = codes.mean(0)
        covariance = torch.cov(codes.T).reshape(codes.shape[1], codes.shape[1])
        # A jitter of 1e-9 of the mean variance keeps the Cholesky factor of a rank-deficient
        # covariance (collapsed code dimensions) defined.
        jitter = 1e-9 * covariance.diagonal().mean().clamp_min(1e-12)
        eye = torch.eye(len(covariance), dtype=covariance.dtype)
        self.scale_tril = torch.linalg.cholesky(covariance + jitter * eye)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        eps = torch.randn(n, len(self.mean), generator=torch.Generator().manual_seed(seed))
        return (self.mean + eps.double() @ self.scale_tril.T).float()
