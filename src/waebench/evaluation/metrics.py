"""Test-set metrics that need no feature extractor: reconstruction error, the MMD
between test codes and prior samples, and (Gaussian encoders) the KL term."""

from __future__ import annotations

import torch

from waebench.regularizers.kl import gaussian_kl
from waebench.regularizers.mmd import PAPER_SCALES, mmd


@torch.no_grad()
def reconstruction_errors(model, x: torch.Tensor, batch_size: int = 500) -> dict[str, float]:
    """`rec`: the model's training cost (its `reconstruction`, from deterministic codes);
    `mse`: mean squared error per pixel, in the data's value range."""
    rec_sum, se_sum = 0.0, 0.0
    for batch in x.split(batch_size):
        batch = batch.to(model.device)
        logits = model.decoder(model.encode(batch))
        output = model.output_activation(logits)
        rec_sum += model.reconstruction(batch, logits, output).item() * len(batch)
        se_sum += (output - batch).pow(2).sum().item()
    return {"rec": rec_sum / len(x), "mse": se_sum / x.numel()}


def latent_mmd(codes: torch.Tensor, prior, seed: int = 0) -> float:
    """MMD^2 (unbiased, IMQ kernel summed over the paper's scales, C = 2 d sigma_z^2)
    between `codes` and as many prior samples: the same estimator for every model."""
    prior_samples = prior.sample(len(codes), generator=torch.Generator().manual_seed(seed))
    base = 2.0 * prior.latent_dim * prior.variance
    value = mmd(
        codes.double().cpu(),
        prior_samples.double(),
        kernel="imq",
        base=base,
        scales=PAPER_SCALES,
        unbiased=True,
    )
    return value.item()


@torch.no_grad()
def mean_kl(model, x: torch.Tensor, batch_size: int = 500) -> float:
    """Mean over images of KL(Q(z|x) || P_Z) for a Gaussian encoder."""
    total = 0.0
    for batch in x.split(batch_size):
        codes = model.codes(batch.to(model.device))
        total += gaussian_kl(codes.mean, codes.log_var, model.prior.variance).sum().item()
    return total / len(x)
