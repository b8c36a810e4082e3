"""The interface of a latent regularizer.

The training loss is `rec + weight * penalty(codes, prior)`, where `penalty` is
D_Z(Q_Z, P_Z) (WAE), the KL term (VAE) or nothing (AE). A regularizer also
says whether the encoder is Gaussian (outputs a mean and a log-variance and
codes are sampled with the reparameterisation trick) or deterministic.
Adversarial regularizers (WAE-GAN) carry an `adversary` network trained with
its own optimizer on `adversary_loss`. `uses_prior` says whether the penalty pulls
the codes toward the prior P_Z: false for the plain AE (and the RAE family, whose
penalties ignore P_Z), whose samples the evaluation draws from laws fitted to the
codes instead (waebench.samplers).

Two hooks reach past the codes, for the regularizers that act on the networks too
(RAE, Ghosh et al. 2020): `prepare_networks` changes the fresh encoder and decoder once,
when the model is built (e.g. spectral normalisation of their layers), and
`decoder_penalty` is a training-only term L_REG added to the loss as
`decoder_weight * decoder_penalty` (logged as `decoder_penalty`). `encoder_std` fixes the
standard deviation of a Gaussian encoder (CV-VAE): the encoder then outputs the mean only.

Under mixed precision (`trainer.precision=bf16-mixed`) every penalty is
computed in float32 with autocast off (`__call__`, `decoder_term`): kernel sums, matrix
square roots and Sinkhorn iterations lose too much in bfloat16.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from waebench.prior import GaussianPrior


@dataclass
class Codes:
    """A batch of codes: `z` is what the decoder sees; `log_var` is set for Gaussian encoders."""

    z: torch.Tensor
    mean: torch.Tensor
    log_var: torch.Tensor | None = None


class LatentRegularizer(nn.Module):
    name: str = "base"
    uses_prior: bool = True  # the penalty pulls the codes toward P_Z
    encoder_std: float | None = None  # a constant encoder standard deviation (CV-VAE)
    decoder_weight: float = 0.0  # lambda of `decoder_penalty`
    has_decoder_penalty: bool = False  # whether `decoder_penalty` is added to the loss
    differentiates_decoder_twice: bool = False  # a penalty on gradients (torch.compile cannot)

    def __init__(self, weight: float = 1.0, gaussian_encoder: bool = False) -> None:
        super().__init__()
        self.weight = float(weight)
        self.gaussian_encoder = gaussian_encoder
        self.adversary: nn.Module | None = None

    def __call__(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        def f32(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.float()

        codes = Codes(z=f32(codes.z), mean=f32(codes.mean), log_var=f32(codes.log_var))
        with torch.autocast(codes.z.device.type, enabled=False):
            return super().__call__(codes, prior)

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def latent_dim_problem(cls, latent_dim: int) -> str | None:
        """Why the penalty cannot be computed for codes of `latent_dim` dimensions, naming the
        sizes it can (checked before training: `waebench.config_check`); None when it can."""
        return None

    def prepare_networks(self, encoder: nn.Module, decoder: nn.Module) -> None:
        """Change the model's fresh networks once, before any weights are loaded into them."""

    def decoder_term(
        self,
        decoder: nn.Module,
        generate: Callable[[torch.Tensor], torch.Tensor],
        z: torch.Tensor,
        x_hat: torch.Tensor,
    ) -> torch.Tensor:
        """`decoder_penalty` in float32 with autocast off. Where the training forward ran
        under autocast, z is cast to float32 and x_hat is passed as None (to be recomputed
        in float32 with `generate` if the penalty needs it)."""
        device = z.device.type
        autocast = torch.is_autocast_enabled(device)
        with torch.autocast(device, enabled=False):
            z, x_hat = (z.float(), None) if autocast else (z, x_hat)
            return self.decoder_penalty(decoder, generate, z, x_hat).float()

    def decoder_penalty(
        self,
        decoder: nn.Module,
        generate: Callable[[torch.Tensor], torch.Tensor],
        z: torch.Tensor,
        x_hat: torch.Tensor | None,
    ) -> torch.Tensor:
        """L_REG of the decoder for a batch of codes z; x_hat = generate(z) from the training
        forward (the decoded images in the data's range), or None (see `decoder_term`)."""
        raise NotImplementedError


class NoRegularizer(LatentRegularizer):
    """Plain auto-encoder: no penalty, so no prior its codes follow."""

    name = "none"
    uses_prior = False

    def __init__(self, weight: float = 0.0, gaussian_encoder: bool = False) -> None:
        super().__init__(weight, gaussian_encoder)

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        return codes.z.new_zeros(())
