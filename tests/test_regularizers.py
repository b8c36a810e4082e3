"""The core regularizers against the paper's definitions and closed forms."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from waebench.prior import GaussianPrior
from waebench.regularizers import Codes, GANPenalty, KLDivergence, MMDPenalty, NoRegularizer
from waebench.regularizers.mmd import PAPER_SCALES, mmd
from waebench.train import build_model


def test_mmd_near_zero_for_same_distribution_and_grows_with_shift():
    torch.manual_seed(0)
    d, n, draws = 8, 100, 200
    base = 2 * d
    same = torch.stack([mmd(torch.randn(n, d), torch.randn(n, d), base=base) for _ in range(draws)])
    stderr = same.std() / math.sqrt(draws)
    assert abs(same.mean()) < 3 * stderr, "the unbiased estimator must be ~0 in expectation"
    assert (same < 0).any(), "the U-statistic takes negative values for equal distributions"
    shifts = [0.25, 0.5, 1.0, 2.0]
    values = [mmd(torch.randn(500, d) + s, torch.randn(500, d), base=base).item() for s in shifts]
    assert values[0] > 5 * stderr
    assert values == sorted(values), f"MMD must grow with the shift: {values}"


def test_imq_kernel_scales_and_constant_follow_the_paper():
    prior = GaussianPrior(latent_dim=8, variance=2.0)
    penalty = MMDPenalty(weight=10.0)
    assert penalty.kernel == "imq"
    assert penalty.scales == (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0) == PAPER_SCALES
    c = penalty.base_scale(prior)
    assert c == 2 * 8 * 2.0
    x, y = torch.randn(5, 8, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64)
    expected_xy = sum(
        c * s / (c * s + ((x[i] - y[j]) ** 2).sum())
        for i in range(5)
        for j in range(6)
        for s in PAPER_SCALES
    ) / (5 * 6)
    expected_xx = sum(
        c * s / (c * s + ((x[i] - x[j]) ** 2).sum())
        for i in range(5)
        for j in range(5)
        if i != j
        for s in PAPER_SCALES
    ) / (5 * 4)
    expected_yy = sum(
        c * s / (c * s + ((y[i] - y[j]) ** 2).sum())
        for i in range(6)
        for j in range(6)
        if i != j
        for s in PAPER_SCALES
    ) / (6 * 5)
    got = mmd(x, y, kernel="imq", base=c, scales=PAPER_SCALES, unbiased=True)
    torch.testing.assert_close(got, expected_xx + expected_yy - 2 * expected_xy)


def test_mmd_penalty_samples_the_prior_with_its_variance():
    torch.manual_seed(0)
    prior = GaussianPrior(latent_dim=4, variance=4.0)
    penalty = MMDPenalty()
    matching = torch.randn(2000, 4) * 2.0
    mismatched = torch.randn(2000, 4)
    assert penalty(Codes(z=matching, mean=matching), prior) < 0.01
    assert penalty(Codes(z=mismatched, mean=mismatched), prior) > 0.05


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mean, log_var = torch.randn(32, 8), torch.randn(32, 8)
    prior = GaussianPrior(8, variance=2.0)
    got = KLDivergence()(Codes(z=mean, mean=mean, log_var=log_var), prior)
    q = Normal(mean, (0.5 * log_var).exp())
    p = Normal(torch.zeros(8), torch.full((8,), math.sqrt(2.0)))
    torch.testing.assert_close(got, kl_divergence(q, p).sum(-1).mean())


def test_kl_requires_a_gaussian_encoder():
    with pytest.raises(ValueError, match="gaussian_encoder"):
        KLDivergence(gaussian_encoder=False)


def test_no_regularizer_is_zero():
    z = torch.randn(4, 2)
    assert NoRegularizer()(Codes(z=z, mean=z), GaussianPrior(2)) == 0


def test_gan_prior_trick_adds_the_log_prior_to_the_logit():
    torch.manual_seed(0)
    prior = GaussianPrior(3, variance=2.0)
    plain, trick = GANPenalty(latent_dim=3), GANPenalty(latent_dim=3, prior_trick=True)
    trick.adversary.load_state_dict(plain.adversary.state_dict())
    z = torch.randn(10, 3)
    log_prior = Normal(0.0, math.sqrt(2.0)).log_prob(z).sum(-1)
    torch.testing.assert_close(trick.logits(z, prior), plain.logits(z, prior) + log_prior)


def test_gan_step_updates_both_optimizers(train_config):
    cfg = train_config("regularizer=gan")
    model = build_model(cfg)
    assert not model.automatic_optimization
    encoder_before = [p.detach().clone() for p in model.encoder.parameters()]
    adversary_before = [p.detach().clone() for p in model.regularizer.adversary.parameters()]
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
    )
    images = torch.rand(16, 1, 28, 28)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, torch.zeros(16)), batch_size=16
    )
    trainer.fit(model, loader)
    assert trainer.global_step == 1, "global_step counts iterations (each updates both networks)"
    assert any(
        not torch.equal(a, b)
        for a, b in zip(encoder_before, model.encoder.parameters(), strict=True)
    )
    adversary_after = list(model.regularizer.adversary.parameters())
    assert any(
        not torch.equal(a, b) for a, b in zip(adversary_before, adversary_after, strict=True)
    )
    assert "train/adversary_epoch" in trainer.callback_metrics
