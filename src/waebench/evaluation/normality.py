"""Mardia's multivariate skewness and kurtosis of the test codes: how far they are from the
prior (the CWAE paper's normality columns, Knop et al. 2020; the official code's
evaluators/sample_evaluators/mardia_{skewness,kurtosis}_sample_evaluator.py).

The official normalisation, kept here: the codes z_i in R^d are divided by sigma_z and then
neither centred nor whitened, so both measure the distance to the prior N(0, I) itself, not
to the nearest Gaussian (as Mardia's sample-standardised statistics would). For a batch of
N codes:

    skewness  b_1 = 1/N^2 sum_ij (z_i^T z_j)^3
    kurtosis  |b_2 - d(d+2)|,  b_2 = 1/N sum_i ||z_i||^4      (E b_2 = d(d+2) under N(0, I))

Both are lower for codes closer to the prior. Under N(0, I) the expected skewness is not 0
but its diagonal, d(d+2)(d+4)/N (7.5 for d = 8, N = 128). As in the official code, each is
computed on batches of 128 test codes in order (its validation batches; the last partial
batch dropped) and averaged over the batches. Gaussian encoders: the codes the penalty sees,
z = mean + sigma * eps (one draw per image, seeded), as for the latent MMD.
"""

from __future__ import annotations

import math

import torch

from waebench.evaluation.metrics import posterior_codes

BATCH = 128  # the official batch size (args_parser.py: --batch_size 128)
STANDARDISATION = "none: the codes / sigma_z, against N(0, I)"


def mardia_skewness(z: torch.Tensor) -> float:
    """b_1 = 1/N^2 sum_ij (z_i^T z_j)^3 of the rows of z [N, d]."""
    return ((z @ z.T).pow(3).sum() / len(z) ** 2).item()


def mardia_kurtosis(z: torch.Tensor) -> float:
    """|1/N sum_i ||z_i||^4 - d(d+2)| of the rows of z [N, d]."""
    d = z.shape[1]
    return (z.pow(2).sum(1).pow(2).mean() - d * (d + 2)).abs().item()


def normality_entries(model, x: torch.Tensor, batch_size: int, seed: int, real: str) -> dict:
    """`mardia_skewness/test` and `mardia_kurtosis/test` of the codes of images x, each the
    mean over batches of BATCH codes (one batch of all of them when there are fewer)."""
    codes = posterior_codes(model, x, batch_size, seed).double()
    codes = codes / math.sqrt(model.prior.variance)
    batches = list(codes.split(BATCH)[: len(codes) // BATCH]) or [codes]
    common = {
        "num_codes": sum(len(b) for b in batches),
        "batch_size": len(batches[0]),
        "codes": "sampled" if model.regularizer.gaussian_encoder else "deterministic",
        "standardisation": STANDARDISATION,
        "real": real,
        "seed": seed,
    }
    skewness = sum(map(mardia_skewness, batches)) / len(batches)
    kurtosis = sum(map(mardia_kurtosis, batches)) / len(batches)
    return {
        "mardia_skewness/test": {"value": skewness, **common},
        "mardia_kurtosis/test": {"value": kurtosis, **common},
    }
