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

Under mixed precision (`trainer.precision=bf16-mixed`) every penalty is
computed in float32 with autocast off (`__call__`): kernel sums, matrix square
roots and Sinkhorn iterations lose too much in bfloat16.
"""

from __future__ import annotations

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


class NoRegularizer(LatentRegularizer):
    """Plain auto-encoder: no penalty, so no prior its codes follow."""

    name = "none"
    uses_prior = False

    def __init__(self, weight: float = 0.0, gaussian_encoder: bool = False) -> None:
        super().__init__(weight, gaussian_encoder)

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        return codes.z.new_zeros(())
