"""The closed-form 2-Wasserstein distance between Gaussians, as a latent penalty.

Between N(m1, S1) and N(m2, S2):

    W2^2 = ||m1 - m2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)

Against the prior N(0, v I) the root term simplifies to sqrt(v) Tr(S1^1/2), so

    W2^2 = ||m1||^2 + Tr(S1) + d v - 2 sqrt(v) Tr(S1^1/2).

Two forms:

- `per_sample` (the "W-VAE"): mean over the batch of W2^2 between each Gaussian
  posterior N(mu, diag sigma^2) and the prior, = ||mu||^2 + ||sigma - sqrt(v)||^2.
  Needs a Gaussian encoder.
- `aggregate`: W2^2 between the Gaussian fitted to the batch of codes z (mean m,
  unbiased covariance S = Zc^T Zc / (n-1), Zc the centred codes) and the prior.
  Tr(S^1/2) is the sum of the square roots of S's eigenvalues, which are the
  singular values of Zc / sqrt(n-1): it is computed from `svdvals(Zc)`, whose
  gradient U V^T stays bounded for singular or repeated spectra (batches smaller
  than the latent size, collapsed codes), unlike 1 / sqrt(eigenvalue).

The plug-in estimate of the aggregate form is biased at small batches: Tr(S^1/2) is
concave in S, so it is low (by about 10 % at n = 100, d = 64), and ||m||^2 is high by
Tr(S) / n. Its expected value at the prior is then far from 0 (about 24.5 at d = 64)
and smallest for codes shrunk to about 0.8 sigma_z^2. With `bias_correction` (the
default) the penalty uses the unbiased ||m||^2 - Tr(S) / n, and Tr(S^1/2) / c(n, d),
where c(n, d) = E[Tr(S^1/2)] / d for n samples of N(0, I) (computed once per (n, d)
by Monte Carlo with a fixed seed). Both corrections are exact when the codes' covariance
is isotropic, as the prior's is, so the expected penalty of codes from N(0, s sigma_z^2 I)
is d (sqrt(s) - 1)^2 sigma_z^2: 0 at the prior and smallest there.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer

FORMS = ("per_sample", "aggregate")
ROOT_BIAS_CODES = 25_600  # codes drawn to compute c(n, d): 256 batches of 100


def w2_squared_diagonal_to_isotropic(
    mean: torch.Tensor, log_var: torch.Tensor, prior_var: float
) -> torch.Tensor:
    """Per row: W2^2(N(mean, diag exp(log_var)), N(0, v I)) = ||mean||^2 + ||sigma - sqrt(v)||^2."""
    sigma = (0.5 * log_var).exp()
    return mean.pow(2).sum(-1) + (sigma - math.sqrt(prior_var)).pow(2).sum(-1)


def w2_squared_batch_to_isotropic(
    z: torch.Tensor, prior_var: float, bias_correction: bool = False
) -> torch.Tensor:
    """W2^2 between the Gaussian fitted to the rows of z [n, d] (mean, unbiased
    covariance) and N(0, v I): ||m||^2 + Tr(S) + d v - 2 sqrt(v) Tr(S^1/2); with
    `bias_correction`, ||m||^2 - Tr(S) / n and Tr(S^1/2) / c(n, d) (module docstring)."""
    n, d = z.shape
    if n < 2:
        raise ValueError(f"the aggregate W2 needs at least 2 codes to fit a covariance, got {n}")
    mean = z.mean(0)
    centred = (z - mean) / math.sqrt(n - 1)
    trace_cov = centred.pow(2).sum()
    trace_sqrt_cov = torch.linalg.svdvals(centred).sum()
    mean_sq = mean.pow(2).sum()
    if bias_correction:
        mean_sq = mean_sq - trace_cov / n
        trace_sqrt_cov = trace_sqrt_cov / root_trace_bias(n, d)
    return mean_sq + trace_cov + d * prior_var - 2 * math.sqrt(prior_var) * trace_sqrt_cov


@lru_cache(maxsize=64)
def root_trace_bias(n: int, d: int) -> float:
    """c(n, d) = E[Tr(S^1/2)] / d for the unbiased covariance S of n draws of N(0, I_d),
    by Monte Carlo over ROOT_BIAS_CODES / n batches (at least 4; fixed seed: the same
    value every call)."""
    generator = torch.Generator().manual_seed(0)
    batches = max(4, ROOT_BIAS_CODES // n)
    draws = torch.randn(batches, n, d, generator=generator, dtype=torch.float64)
    centred = (draws - draws.mean(1, keepdim=True)) / math.sqrt(n - 1)
    return torch.linalg.svdvals(centred).sum(-1).mean().item() / d


class W2GaussianPenalty(LatentRegularizer):
    name = "w2_gaussian"

    def __init__(
        self,
        weight: float = 1.0,
        form: str = "aggregate",
        bias_correction: bool = True,
        gaussian_encoder: bool = False,
    ) -> None:
        if form not in FORMS:
            raise ValueError(f"unknown form {form!r}; valid forms: {', '.join(FORMS)}")
        if form == "per_sample" and not gaussian_encoder:
            raise ValueError(
                "regularizer=w2_gaussian with form=per_sample needs a Gaussian encoder "
                "(regularizer.gaussian_encoder=true), or use form=aggregate"
            )
        super().__init__(weight, gaussian_encoder)
        self.form, self.bias_correction = form, bias_correction

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        if self.form == "per_sample":
            per_code = w2_squared_diagonal_to_isotropic(codes.mean, codes.log_var, prior.variance)
            return per_code.mean()
        return w2_squared_batch_to_isotropic(codes.z, prior.variance, self.bias_correction)
