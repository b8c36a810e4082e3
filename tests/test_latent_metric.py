"""`latent_mmd/test` scores the codes the penalty matches (issue 12, point 3): for a Gaussian
encoder, samples of Q(z|x), whose law over the images is the aggregate posterior Q_Z."""

from __future__ import annotations

import math

import torch

from waebench.evaluation.metrics import latent_mmd_entries
from waebench.train import build_model


def test_gaussian_encoder_is_scored_on_sampled_codes_not_means(train_config):
    """A VAE whose every posterior is the prior: Q_Z = P_Z exactly, so the sampled codes score
    ~0, while the means (all 0) are a collapsed law far from the prior."""
    model = build_model(train_config("regularizer=kl")).eval()
    d, variance = model.prior.latent_dim, model.prior.variance
    head = model.encoder.head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.cat([torch.zeros(d), torch.full((d,), math.log(variance))]))
    size, channels = model.hparams.image_size, model.hparams.channels
    x = torch.rand(500, channels, size, size, generator=torch.Generator().manual_seed(0))
    entries = latent_mmd_entries(model, x, batch_size=100, seed=0, real="random")
    sampled, means = entries["latent_mmd/test"], entries["latent_mmd_means/test"]
    assert (sampled["codes"], means["codes"]) == ("sampled", "means")
    assert abs(sampled["value"]) < 0.02 < 0.1 < means["value"], (sampled, means)


def test_deterministic_encoder_has_one_entry_on_its_codes(train_config):
    model = build_model(train_config("regularizer=mmd")).eval()
    size, channels = model.hparams.image_size, model.hparams.channels
    x = torch.rand(200, channels, size, size, generator=torch.Generator().manual_seed(0))
    entries = latent_mmd_entries(model, x, batch_size=100, seed=0, real="random")
    assert list(entries) == ["latent_mmd/test"]
    assert entries["latent_mmd/test"]["codes"] == "deterministic"
