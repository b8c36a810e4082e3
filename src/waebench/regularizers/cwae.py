"""CWAE: the Cramer-Wold distance between the batch of codes and the prior, in closed form
(Knop, Spurek, Tabor, Podolak, Mazur, Jastrzebski, JMLR 21, 2020; the official code's
src/metrics/cw.py, gmum/cwae-pytorch).

The Cramer-Wold distance compares two laws through their one-dimensional projections:
project both on a direction v, smooth each projection with a Gaussian kernel of variance
gamma, take the squared L2 distance of the two smoothed densities, and average over the
directions v of the unit sphere. Between the N codes z_i in R^D of a batch and N(0, I) it
has a closed form (the paper's, times 2 sqrt(pi) as in the official code):

    CW^2 = 1 / sqrt(1 + gamma)
           + 1 / (N^2 sqrt(gamma))        sum_ij phi_D(||z_i - z_j||^2 / (4 gamma))
           - 2 / (N sqrt(gamma + 1/2))    sum_i  phi_D(||z_i||^2 / (2 + 4 gamma))

with phi_D(s) = 1F1(1/2; D/2; -s) (Kummer's function): exp(-s) for D = 1,
exp(-s/2) I_0(s/2) for D = 2 (torch's `i0e`), and for D >= 8 the official code's
asymptotic form (1 + 4 s / (2D - 3))^(-1/2) (the paper: accurate from D = 20; 3 % off at
D = 8). For D = 1..7 other than 1 and 2 there is no closed form here: such latent sizes are
refused. The bandwidth gamma is Silverman's rule for the batch, (4 / (3N))^(2/5) (codes of
unit standard deviation), unless `bandwidth` gives it. With that gamma, for D >= 8:

    CW^2 = 1 / sqrt(1 + gamma) + mean_ij (gamma + ||z_i - z_j||^2 / (2D - 3))^(-1/2)
           - 2 mean_i (gamma + 1/2 + ||z_i||^2 / (2D - 3))^(-1/2)

The prior N(0, sigma_z^2 I): the codes are divided by sigma_z first. CW^2(z / sigma_z,
N(0, I); gamma) = sigma_z CW^2(z, N(0, sigma_z^2 I); sigma_z^2 gamma): the distance to the
prior with Silverman's bandwidth for codes of the prior's spread, times the constant
sigma_z.

`form`: `log` (the official `cwae` cost, the default) is log(CW^2 + 1e-7); `plain` (the
official `cwae_plus`) is CW^2. The official 1-D function (cw_1d) omits the 2 sqrt(pi) its
other forms carry; here every D has it (a constant: a shift of the log form).
"""

from __future__ import annotations

import math

import torch

from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer
from waebench.regularizers.mmd import squared_distances

FORMS = ("log", "plain")
LOG_EPSILON = 1e-7  # the official cost: log(CW^2 + 1e-7)
ASYMPTOTIC_FROM = 8  # the official code's asymptotic phi_D from D = 8 on
COVERED = f"1, 2 or >= {ASYMPTOTIC_FROM}"


def covers(latent_dim: int) -> bool:
    """Whether the closed form has a phi_D for D = `latent_dim`."""
    return latent_dim in (1, 2) or latent_dim >= ASYMPTOTIC_FROM


def silverman_bandwidth(n: int) -> float:
    """gamma = (4 / (3n))^(2/5): Silverman's rule of thumb for n samples of unit spread."""
    return (4.0 / (3.0 * n)) ** 0.4


def phi(s: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """phi_D(s) = 1F1(1/2; D/2; -s): exact for D = 1, 2; asymptotic for D >= 8."""
    if not covers(latent_dim):
        raise ValueError(
            f"the Cramer-Wold closed form covers latent sizes {COVERED}, not {latent_dim}"
        )
    if latent_dim == 1:
        return torch.exp(-s)
    if latent_dim == 2:
        return torch.special.i0e(s / 2)
    return (1.0 + 4.0 * s / (2.0 * latent_dim - 3.0)).rsqrt()


def cramer_wold_squared(z: torch.Tensor, bandwidth: float | None = None) -> torch.Tensor:
    """CW^2 between the rows of z [N, D] and N(0, I) (the module docstring's formula)."""
    n, d = z.shape
    gamma = silverman_bandwidth(n) if bandwidth is None else bandwidth
    pairs = phi(squared_distances(z, z) / (4.0 * gamma), d).sum() / (n * n * math.sqrt(gamma))
    to_prior = phi(z.pow(2).sum(1) / (2.0 + 4.0 * gamma), d).sum()
    return 1.0 / math.sqrt(1.0 + gamma) + pairs - 2.0 * to_prior / (n * math.sqrt(gamma + 0.5))


class CramerWoldPenalty(LatentRegularizer):
    name = "cwae"

    def __init__(
        self,
        latent_dim: int,
        weight: float = 1.0,
        form: str = "log",
        bandwidth: float | None = None,
        gaussian_encoder: bool = False,
    ) -> None:
        super().__init__(weight, gaussian_encoder)
        problem = self.latent_dim_problem(latent_dim)
        if problem:
            raise ValueError(problem)
        if form not in FORMS:
            raise ValueError(f"regularizer.form={form!r}; valid forms: {', '.join(FORMS)}")
        self.form, self.bandwidth = form, bandwidth

    @classmethod
    def latent_dim_problem(cls, latent_dim: int) -> str | None:
        if covers(latent_dim):
            return None
        return (
            f"model.latent_dim={latent_dim}: regularizer={cls.name}'s closed form covers latent "
            f"sizes {COVERED}"
        )

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        distance = cramer_wold_squared(codes.z / math.sqrt(prior.variance), self.bandwidth)
        return torch.log(distance + LOG_EPSILON) if self.form == "log" else distance
