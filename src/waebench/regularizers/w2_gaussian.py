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
"""

from __future__ import annotations

import math

import torch

from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer

FORMS = ("per_sample", "aggregate")


def w2_squared_diagonal_to_isotropic(
    mean: torch.Tensor, log_var: torch.Tensor, prior_var: float
) -> torch.Tensor:
    """Per row: W2^2(N(mean, diag exp(log_var)), N(0, v I)) = ||mean||^2 + ||sigma - sqrt(v)||^2."""
    sigma = (0.5 * log_var).exp()
    return mean.pow(2).sum(-1) + (sigma - math.sqrt(prior_var)).pow(2).sum(-1)


def w2_squared_batch_to_isotropic(z: torch.Tensor, prior_var: float) -> torch.Tensor:
    """W2^2 between the Gaussian fitted to the rows of z [n, d] (mean, unbiased
    covariance) and N(0, v I): ||m||^2 + Tr(S) + d v - 2 sqrt(v) Tr(S^1/2)."""
    n, d = z.shape
    if n < 2:
        raise ValueError(f"the aggregate W2 needs at least 2 codes to fit a covariance, got {n}")
    mean = z.mean(0)
    centred = (z - mean) / math.sqrt(n - 1)
    trace_cov = centred.pow(2).sum()
    trace_sqrt_cov = torch.linalg.svdvals(centred).sum()
    return mean.pow(2).sum() + trace_cov + d * prior_var - 2 * math.sqrt(prior_var) * trace_sqrt_cov


class W2GaussianPenalty(LatentRegularizer):
    name = "w2_gaussian"

    def __init__(
        self, weight: float = 1.0, form: str = "aggregate", gaussian_encoder: bool = False
    ) -> None:
        if form not in FORMS:
            raise ValueError(f"unknown form {form!r}; valid forms: {', '.join(FORMS)}")
        if form == "per_sample" and not gaussian_encoder:
            raise ValueError(
                "regularizer=w2_gaussian with form=per_sample needs a Gaussian encoder "
                "(regularizer.gaussian_encoder=true), or use form=aggregate"
            )
        super().__init__(weight, gaussian_encoder)
        self.form = form

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        if self.form == "per_sample":
            per_code = w2_squared_diagonal_to_isotropic(codes.mean, codes.log_var, prior.variance)
            return per_code.mean()
        return w2_squared_batch_to_isotropic(codes.z, prior.variance)
