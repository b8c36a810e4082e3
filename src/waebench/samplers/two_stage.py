"""Codes drawn from a second VAE trained on the training codes: the two-stage VAE of Dai &
Wipf (ICLR 2019), as the official RAE code configures it for its 2sVAE row (docs/evaluation.md).

Sampling: v ~ N(0, I) -> the second decoder -> u -> the codes z = u * std + mean, which the
model's own decoder turns into images. The second VAE has as many latent dimensions as the
codes (Dai & Wipf), sees them standardized per dimension (the RAE code), and minimises
Dai & Wipf's negative ELBO with a Gaussian decoder N(u; D(v), gamma I) whose variance gamma
is learned; here gamma takes its optimum for the batch, the mean squared error per dimension,
which turns the reconstruction term into (d / 2) log(mean ||u - D(v)||^2 / d):

    loss = d/2 log(mse) + beta * mean_i KL(N(m_i, diag s_i^2) || N(0, I)),

with beta rising linearly from 0 to 1 over the first `kl_warmup` of the steps (KL annealing,
Bowman et al. 2016), then Dai & Wipf's objective. Without it, on codes close to a Gaussian
(those of a VAE or a WAE) a short fit stays at the collapsed optimum (Q(v|u) = N(0, I),
gamma = 1), which samples no better than a diagonal Gaussian (measured: docs/evaluation.md).
"""

from __future__ import annotations

import torch
from torch import nn

from waebench.config_check import BOOLEAN, Range, at_least, positive
from waebench.samplers.fitting import Standardized, adam_on_minibatches


class SkipMLP(nn.Module):
    """`layers` ReLU layers of `hidden` units; the output layer sees their output and the
    input (a skip path), so the identity is one linear map."""

    def __init__(self, features: int, hidden: int, layers: int, out_features: int) -> None:
        super().__init__()
        body: list[nn.Module] = []
        width = features
        for _ in range(layers):
            body += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*body)
        self.out = nn.Linear(features + hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([x, self.body(x)], dim=1))


class TwoStageVAESampler:
    """A second VAE (encoder and decoder: `SkipMLP`s of `layers` x `hidden`) trained for
    `steps` Adam steps (batch `batch_size`, learning rate `lr`, KL warm-up over the first
    `kl_warmup` of them) on the standardized codes.
    `decoder_noise`: sample u ~ N(D(v), gamma I) with the fitted gamma (the second VAE's own
    law) instead of u = D(v) (Dai & Wipf and the RAE code, where training has driven gamma to
    about 0; a short fit leaves gamma larger, and the mean alone is too concentrated)."""

    name = "two_stage"
    label = "2-stage"
    title = "a second VAE trained on the training codes"
    options = {  # the ranges of eval.sampler.two_stage
        "hidden": at_least(1),
        "layers": at_least(1),
        "steps": at_least(1),
        "batch_size": at_least(2),
        "lr": positive(),
        "kl_warmup": Range(False, 0.0, 1.0),
        "decoder_noise": BOOLEAN,
    }
    needs_prior = False

    def __init__(
        self,
        codes: torch.Tensor,
        seed: int = 0,
        hidden: int = 128,
        layers: int = 2,
        steps: int = 1500,
        batch_size: int = 256,
        lr: float = 3e-3,
        kl_warmup: float = 0.25,
        decoder_noise: bool = True,
    ) -> None:
        self.codes = Standardized(codes)
        self.kl_warmup = kl_warmup
        d = self.codes.data.shape[1]
        self.decoder_noise = decoder_noise
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = SkipMLP(d, hidden, layers, 2 * d)
            self.decoder = SkipMLP(d, hidden, layers, d)
            parameters = [*self.encoder.parameters(), *self.decoder.parameters()]
            self.final_loss = adam_on_minibatches(
                self.loss, parameters, self.codes.data, steps, batch_size, lr, seed
            )
            with torch.no_grad():
                self.gamma = self.mse(self.codes.data).item()

    def reconstruct(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """D(v) for v ~ Q(v|u) (reparameterised), and the posterior's mean and log-variance."""
        mean, log_var = self.encoder(u).chunk(2, dim=1)
        v = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        return self.decoder(v), mean, log_var

    def loss(self, u: torch.Tensor, progress: float = 1.0) -> torch.Tensor:
        recon, mean, log_var = self.reconstruct(u)
        mse = (u - recon).pow(2).mean()
        kl = 0.5 * (log_var.exp() + mean.pow(2) - 1.0 - log_var).sum(1).mean()
        beta = min(1.0, progress / self.kl_warmup) if self.kl_warmup > 0 else 1.0
        return 0.5 * u.shape[1] * mse.log() + beta * kl

    def mse(self, u: torch.Tensor, batch_size: int = 10_000) -> torch.Tensor:
        """gamma: the mean squared reconstruction error per dimension over `u`."""
        total = sum((b - self.reconstruct(b)[0]).pow(2).sum() for b in u.split(batch_size))
        return total / u.numel()

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        d = self.codes.data.shape[1]
        generator = torch.Generator().manual_seed(seed)
        u = self.decoder(torch.randn(n, d, generator=generator))
        if self.decoder_noise:
            u = u + self.gamma**0.5 * torch.randn(n, d, generator=generator)
        return self.codes.restore(u)
