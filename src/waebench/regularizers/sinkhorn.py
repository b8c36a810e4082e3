"""Sinkhorn auto-encoders: the entropic optimal-transport (Sinkhorn) divergence
between codes and prior samples (Patrini et al. 2019), computed by geomloss.

With OT_eps(a, b) = min_P <P, C> + eps KL(P | a x b) over couplings P of the
empirical measures a, b and the cost C(x, y) = ||x - y||^2, the debiased
Sinkhorn divergence is

    S_eps(a, b) = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2,

which is >= 0, zero iff a = b, and tends to W2^2(a, b) as eps -> 0.
geomloss' `SamplesLoss("sinkhorn", p=2, blur=b)` uses the cost ||x - y||^2 / 2 with
eps = b^2; the penalty is twice its value, i.e. S_eps above with eps = 2 b^2, on the
same squared-distance scale as the other Wasserstein penalties.

`blur` is a length in latent units (details finer than it are smoothed out);
`scaling` in (0, 1) trades speed (small) for accuracy (close to 1) in geomloss'
epsilon-scaling. The "tensorized" backend holds the n x n cost matrix in memory;
"online" streams it and needs pykeops.
"""

from __future__ import annotations

import torch
from geomloss import SamplesLoss

from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer

BACKENDS = ("tensorized", "online", "auto")


def sinkhorn_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    blur: float,
    scaling: float = 0.5,
    backend: str = "tensorized",
) -> torch.Tensor:
    """S_eps between the uniform measures on the rows of x and y, cost ||x - y||^2,
    eps = 2 blur^2 (see the module docstring)."""
    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, debias=True, backend=backend)
    return 2 * loss(x, y)


class SinkhornPenalty(LatentRegularizer):
    name = "sinkhorn"

    def __init__(
        self,
        weight: float = 1.0,
        blur: float = 0.1,
        scaling: float = 0.5,
        backend: str = "tensorized",
        gaussian_encoder: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
        if blur <= 0:
            raise ValueError(f"regularizer.blur must be > 0, got {blur}")
        if not 0 < scaling < 1:
            raise ValueError(f"regularizer.scaling must be in (0, 1), got {scaling}")
        super().__init__(weight, gaussian_encoder)
        self.blur, self.scaling, self.backend = float(blur), float(scaling), backend

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        z = codes.z
        z_prior = prior.sample(len(z), device=z.device).to(z.dtype)
        return sinkhorn_divergence(z, z_prior, self.blur, self.scaling, self.backend)
