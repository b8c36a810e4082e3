"""Checks that a latent penalty measures what it claims, on codes of known law.

Codes come from Gaussian posteriors N(m, v_q I) for every image (reparameterised,
z = m + sqrt(v_q) eps), so their law Q_Z is N(m, v_q I); the prior is N(0, sigma_z^2 I).
Per-sample penalties (KL, W-VAE) see the posteriors, the others the codes z. A valid
penalty has an expectation near 0 at Q_Z = P_Z next to its value at clearly wrong laws,
is smallest in expectation at s = 1 over Q_Z = N(0, s sigma_z^2 I), and its gradient
moves the codes towards the prior. Expectations average `reps` batches, with the same
random numbers for every law compared (common random numbers), so differences between
laws are not drowned by the batch-to-batch noise.

WAE-GAN has no closed-form penalty: `adversary_divergence` trains its adversary on the
two laws and returns log 4 - (its loss / weight), the Jensen-Shannon estimate
2 JS(Q_Z, P_Z) it implies (0 when the adversary cannot tell them apart).

Used by tests/test_validity.py and benchmarks/regularizer_validity.py (the table in
docs/regularizers.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from waebench.prior import GaussianPrior
from waebench.regularizers import Codes, GANPenalty, LatentRegularizer


@dataclass(frozen=True)
class Law:
    """Q_Z = N(shift * sigma_z * 1, scale * sigma_z^2 I): `shift` in prior standard deviations
    per coordinate, `scale` the variance ratio."""

    name: str
    shift: float = 0.0
    scale: float = 1.0


PRIOR = Law("prior")
WRONG_LAWS = (
    Law("shifted", shift=1.0),
    Law("scaled", scale=4.0),
    Law("collapsed", scale=0.01),
)


def law_codes(law: Law, prior: GaussianPrior, eps: torch.Tensor) -> Codes:
    """Codes of law `law` from standard normal noise eps [n, d], with gradients to
    their `mean` and `log_var` leaves."""
    sigma_z = math.sqrt(prior.variance)
    mean = torch.full_like(eps, law.shift * sigma_z).requires_grad_()
    log_var = torch.full_like(eps, math.log(law.scale * prior.variance)).requires_grad_()
    z = mean + (0.5 * log_var).exp() * eps
    return Codes(z=z, mean=mean, log_var=log_var)


def noise(rep: int, n: int, d: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(10_000 + rep))


def expected_penalty(
    regularizer: LatentRegularizer, prior: GaussianPrior, law: Law, n: int = 100, reps: int = 50
) -> float:
    """Mean penalty over `reps` batches of n codes of law `law`."""
    total = 0.0
    for rep in range(reps):
        torch.manual_seed(rep)  # the regularizer's own prior samples: the same for every law
        with torch.no_grad():
            total += regularizer(law_codes(law, prior, noise(rep, n, prior.latent_dim)), prior)
    return float(total) / reps


def scale_curve(
    regularizer: LatentRegularizer,
    prior: GaussianPrior,
    scales: tuple[float, ...],
    n: int = 100,
    reps: int = 50,
) -> list[float]:
    """Expected penalty of Q_Z = N(0, s sigma_z^2 I) for each s in `scales`."""
    return [expected_penalty(regularizer, prior, Law(f"s={s}", scale=s), n, reps) for s in scales]


def parabola_minimiser(scales: tuple[float, ...], values: list[float]) -> float:
    """The vertex of the least-squares parabola through (scales, values)."""
    s, f = torch.tensor(scales, dtype=torch.float64), torch.tensor(values, dtype=torch.float64)
    design = torch.stack([s**2, s, torch.ones_like(s)], 1)
    a, b, _ = torch.linalg.lstsq(design, f[:, None]).solution[:, 0]
    return float(-b / (2 * a))


@dataclass(frozen=True)
class Pull:
    """Mean over batches of the descent direction -gradient, summed over the codes:
    `towards_origin` = d penalty / d shift (positive: a descent step moves the mean back
    towards 0), `grow` = -d penalty / d log-variance (positive: the spread grows,
    negative: it shrinks)."""

    towards_origin: float
    grow: float


def pull(
    regularizer: LatentRegularizer, prior: GaussianPrior, law: Law, n: int = 100, reps: int = 20
) -> Pull:
    """Where one gradient step on the penalty moves codes of law `law`."""
    towards, grow = 0.0, 0.0
    for rep in range(reps):
        torch.manual_seed(rep)
        codes = law_codes(law, prior, noise(rep, n, prior.latent_dim))
        grad_mean, grad_log_var = torch.autograd.grad(
            regularizer(codes, prior), [codes.mean, codes.log_var]
        )
        direction = torch.full_like(codes.mean, 1.0 if law.shift >= 0 else -1.0)
        towards += float((grad_mean * direction).sum()) / reps
        grow -= float(grad_log_var.sum()) / reps
    return Pull(towards_origin=towards, grow=grow)


def train_adversary(
    gan: GANPenalty, prior: GaussianPrior, law: Law, steps: int = 300, n: int = 100, seed: int = 0
) -> None:
    """`steps` Adam steps (lr `gan.adversary_lr`) of the adversary on fresh batches of
    codes of law `law` against prior samples."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(
        gan.adversary.parameters(), lr=gan.adversary_lr, betas=(0.5, 0.999)
    )
    for step in range(steps):
        z = law_codes(law, prior, noise(100_000 + step, n, prior.latent_dim)).z.detach()
        optimizer.zero_grad(set_to_none=True)
        gan.adversary_loss(z, prior).backward()
        optimizer.step()


def adversary_divergence(
    gan: GANPenalty, prior: GaussianPrior, law: Law, n: int = 100, reps: int = 20
) -> float:
    """log 4 - (adversary loss / weight) on fresh batches: 2 JS(Q_Z, P_Z) as the trained
    adversary sees it (its loss is weight * 2 log 2 when it cannot tell the laws apart)."""
    total = 0.0
    for rep in range(reps):
        torch.manual_seed(rep)
        with torch.no_grad():
            z = law_codes(law, prior, noise(rep, n, prior.latent_dim)).z
            total += math.log(4) - float(gan.adversary_loss(z, prior)) / gan.weight
    return total / reps
