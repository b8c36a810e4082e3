"""Test-set metrics that need no feature extractor: reconstruction error, the MMD
between test codes and prior samples, and (Gaussian encoders) the KL term.

The latent MMD scores the codes that the training penalties match: for Gaussian
encoders, samples z ~ Q(z|x) (whose law over the test images is the aggregate
posterior Q_Z), not the means, which spread less than Q_Z and would rank VAE-type
models farther from the prior than they are."""

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


@torch.no_grad()
def posterior_codes(
    model, x: torch.Tensor, batch_size: int = 500, seed: int = 0, sample: bool = True
) -> torch.Tensor:
    """Codes of the images x on the CPU: for a Gaussian encoder, with `sample`, one draw
    z = mean + exp(log_var / 2) * eps per image (eps from a generator seeded with `seed`),
    i.e. samples of the aggregate posterior Q_Z that the training penalty matches; else
    the means. Deterministic encoders: their codes."""
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for batch in x.split(batch_size):
        codes = model.codes(batch.to(model.device))
        z = codes.mean.cpu()
        if sample and codes.log_var is not None:
            eps = torch.randn(z.shape, generator=generator)
            z = z + eps * (0.5 * codes.log_var.cpu()).exp()
        chunks.append(z)
    return torch.cat(chunks)


def latent_mmd_entries(model, x: torch.Tensor, batch_size: int, seed: int, real: str) -> dict:
    """`latent_mmd/test` on the codes the penalty sees (sampled for Gaussian encoders), and
    for Gaussian encoders `latent_mmd_means/test` on their means; `codes` says which."""
    gaussian = model.regularizer.gaussian_encoder
    common = {
        "num_codes": len(x),
        "kernel": "imq",
        "base": 2.0 * model.prior.latent_dim * model.prior.variance,
        "scales": list(PAPER_SCALES),
        "estimator": "unbiased",
        "real": real,
        "seed": seed,
    }
    kinds = {"latent_mmd/test": "sampled" if gaussian else "deterministic"}
    if gaussian:
        kinds["latent_mmd_means/test"] = "means"
    return {
        key: {
            "value": latent_mmd(
                posterior_codes(model, x, batch_size, seed, kind == "sampled"), model.prior, seed
            ),
            "codes": kind,
            **common,
        }
        for key, kind in kinds.items()
    }


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
