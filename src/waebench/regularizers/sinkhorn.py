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

On a batch, S_eps of the n codes against n prior samples is biased: the self-terms
OT_eps(a, a) pair each point with itself at cost 0, and at small eps the value is
the W2^2 between two point clouds, which is large in high dimension even for equal
laws. Its expectation at the prior is far from 0 (about 4.8 at d = 8 and 183 at
d = 64 with blur 0.1, batch 100) and is smallest for codes shrunk towards 0. The
`split` estimator (the default) removes this: with the codes split in halves a1, a2
and the prior samples in halves b1, b2, all independent draws of n/2 points,

    S = (OT_eps(a1, b1) + OT_eps(a2, b2)) / 2 - (OT_eps(a1, a2) + OT_eps(b1, b2)) / 2,

whose four terms have the same law when the codes follow the prior, so its
expectation there is exactly 0, and it is smallest at the prior for any eps.
`debiased` is the plain S_eps on the whole batch.

`blur` is a length in latent units (details finer than it are smoothed out). By
default it is tied to the prior, blur = relative_blur * sqrt(d) sigma_z, i.e.
eps = 2 blur^2 = relative_blur^2 C with C = 2 d sigma_z^2 the expected squared distance
of two prior samples: small values approach W2^2 (sharper, noisier, more iterations),
large ones approach the squared distance of the means (smooth, blind to the spread).
`scaling` in (0, 1) trades speed (small) for accuracy (close to 1) in geomloss'
epsilon-scaling. The "tensorized" backend holds the n x n cost matrix in memory;
"online" streams it and needs pykeops.
"""

from __future__ import annotations

import math

import torch
from geomloss import SamplesLoss

from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer

BACKENDS = ("tensorized", "online", "auto")
ESTIMATORS = ("split", "debiased")


def ot_loss(blur: float, scaling: float, backend: str, debias: bool) -> SamplesLoss:
    """geomloss' entropic OT with cost ||x - y||^2 / 2 and eps = blur^2."""
    return SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, debias=debias, backend=backend)


def sinkhorn_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    blur: float,
    scaling: float = 0.5,
    backend: str = "tensorized",
) -> torch.Tensor:
    """S_eps between the uniform measures on the rows of x and y, cost ||x - y||^2,
    eps = 2 blur^2 (see the module docstring)."""
    return 2 * ot_loss(blur, scaling, backend, debias=True)(x, y)


def split_sinkhorn_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    blur: float,
    scaling: float = 0.5,
    backend: str = "tensorized",
) -> torch.Tensor:
    """(OT(x1, y1) + OT(x2, y2)) / 2 - (OT(x1, x2) + OT(y1, y2)) / 2 over the halves of
    x [n, d] and y [n, d] (a last odd row is left out), cost ||x - y||^2, eps = 2 blur^2."""
    half = min(len(x), len(y)) // 2
    if half < 2:
        raise ValueError(f"the split Sinkhorn estimator needs at least 4 codes, got {len(x)}")
    x1, x2, y1, y2 = x[:half], x[half : 2 * half], y[:half], y[half : 2 * half]
    ot = ot_loss(blur, scaling, backend, debias=False)(
        torch.stack([x1, x2, x1, y1]), torch.stack([y1, y2, x2, y2])
    )
    return ot[0] + ot[1] - ot[2] - ot[3]


class SinkhornPenalty(LatentRegularizer):
    name = "sinkhorn"

    def __init__(
        self,
        weight: float = 1.0,
        blur: float | None = None,
        relative_blur: float = 0.25,
        estimator: str = "split",
        scaling: float = 0.5,
        backend: str = "tensorized",
        gaussian_encoder: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
        if estimator not in ESTIMATORS:
            raise ValueError(
                f"unknown estimator {estimator!r}; valid estimators: {', '.join(ESTIMATORS)}"
            )
        super().__init__(weight, gaussian_encoder)
        self.blur = None if blur is None else float(blur)
        self.relative_blur, self.estimator = float(relative_blur), estimator
        self.scaling, self.backend = float(scaling), backend

    def blur_for(self, prior: GaussianPrior) -> float:
        """`blur`, else relative_blur * sqrt(d) sigma_z."""
        if self.blur is not None:
            return self.blur
        return self.relative_blur * math.sqrt(prior.latent_dim * prior.variance)

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        z = codes.z
        z_prior = prior.sample(len(z), device=z.device).to(z.dtype)
        divergence = split_sinkhorn_divergence if self.estimator == "split" else sinkhorn_divergence
        return divergence(z, z_prior, self.blur_for(prior), self.scaling, self.backend)
