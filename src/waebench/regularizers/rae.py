"""RAE: the regularized deterministic auto-encoder (Ghosh et al. 2020),

    L = rec + beta * L_Z + lambda * L_REG,   L_Z = mean_i 1/2 ||z_i||^2

with beta = `weight` and lambda = `decoder_weight`. L_Z bounds the codes (the latent space
is not matched to a prior: samples come from a density fitted to the codes afterwards).
The decoder regularization (`decoder_regularizer`):

- `none`: plain RAE (the paper's "RAE" row: L_Z alone, no L_REG);
- `l2` (RAE-L2): L_REG = sum of the squared weights of the decoder's Linear and
  convolution layers (biases and normalisation layers excluded), as Keras' `l2` kernel
  regularizer in the official code; `l2_layers: convolutions` leaves the Linear layers out
  (the official code's MNIST decoder, whose first dense layer has no regularizer);
- `gp` (RAE-GP): L_REG = mean_i ||grad_{z_i} sum_b ||G(z_b)||^2||^2, on the codes z of the
  batch and the decoded images G(z) in the data's range. The official code differentiates
  the squared output, not G itself (the paper writes ||grad D(E(x))||^2); with batch norm
  in training mode the sum over the batch b couples the codes, as there. It needs the
  decoder twice (double backward), which torch.compile does not support.

`spectral_norm` lists the networks (`encoder`, `decoder`) whose Linear and convolution
layers are spectrally normalised (RAE-SN; the official code normalises both:
`waebench.networks.spectral_normalise`). Any combination with `decoder_regularizer` works.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from waebench.networks import spectral_normalise
from waebench.prior import GaussianPrior
from waebench.regularizers.base import Codes, LatentRegularizer

DECODER_REGULARIZERS = ("none", "l2", "gp")
L2_LAYERS = ("all", "convolutions")
NETWORKS = ("encoder", "decoder")


def weight_norm_squared(network: nn.Module, layers: str = "all") -> torch.Tensor:
    """sum of w^2 over the weights of rank >= 2 (Linear and convolution kernels; with
    `layers="convolutions"` the convolution kernels only)."""
    if layers == "convolutions":
        convolutions = [m for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd)]
        parameters = [p for m in convolutions for p in m.parameters()]
    else:
        parameters = list(network.parameters())
    return torch.stack([w.pow(2).sum() for w in parameters if w.ndim >= 2]).sum()


def output_gradient_penalty(z: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """mean_i ||grad_{z_i} sum_b ||x_hat_b||^2||^2 for images x_hat decoded from codes z [n, d],
    differentiable (create_graph) so that it trains the encoder and decoder."""
    (grad,) = torch.autograd.grad(x_hat.pow(2).sum(), z, create_graph=True)
    return grad.pow(2).sum(1).mean()


class RAEPenalty(LatentRegularizer):
    name = "rae"
    uses_prior = False  # the code penalty only bounds the codes: no P_Z to sample (RAE's N: a fitted Gaussian)

    def __init__(
        self,
        weight: float = 4.9e-3,
        decoder_regularizer: str = "none",
        decoder_weight: float = 0.0,
        l2_layers: str = "all",
        spectral_norm: list[str] | tuple[str, ...] = (),
        power_iterations: int = 1,
        gaussian_encoder: bool = False,
    ) -> None:
        if decoder_regularizer not in DECODER_REGULARIZERS:
            raise ValueError(
                f"regularizer.decoder_regularizer={decoder_regularizer!r}; valid values: "
                f"{', '.join(DECODER_REGULARIZERS)}"
            )
        if l2_layers not in L2_LAYERS:
            raise ValueError(
                f"regularizer.l2_layers={l2_layers!r}; valid values: {', '.join(L2_LAYERS)}"
            )
        unknown = [n for n in spectral_norm if n not in NETWORKS]
        if unknown:
            raise ValueError(
                f"regularizer.spectral_norm={list(spectral_norm)}: unknown network(s) "
                f"{unknown}; valid: a list of {', '.join(NETWORKS)} (or [] for none)"
            )
        super().__init__(weight, gaussian_encoder)
        self.decoder_regularizer = decoder_regularizer
        self.decoder_weight = float(decoder_weight)
        self.l2_layers = l2_layers
        self.spectral_norm, self.power_iterations = tuple(spectral_norm), int(power_iterations)
        self.has_decoder_penalty = decoder_regularizer != "none"
        self.differentiates_decoder_twice = decoder_regularizer == "gp"

    def forward(self, codes: Codes, prior: GaussianPrior) -> torch.Tensor:
        """L_Z = mean_i 1/2 ||z_i||^2 (the prior is not used)."""
        return 0.5 * codes.z.pow(2).sum(1).mean()

    def prepare_networks(self, encoder: nn.Module, decoder: nn.Module) -> None:
        networks = {"encoder": encoder, "decoder": decoder}
        for name in self.spectral_norm:
            option = f"regularizer.spectral_norm: the {name}"
            spectral_normalise(networks[name], option, self.power_iterations)

    def decoder_penalty(
        self,
        decoder: nn.Module,
        generate: Callable[[torch.Tensor], torch.Tensor],
        z: torch.Tensor,
        x_hat: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.decoder_regularizer == "l2":
            return weight_norm_squared(decoder, self.l2_layers)
        return output_gradient_penalty(z, generate(z) if x_hat is None else x_hat)
