"""Fully connected encoder and decoder (`model=mlp`), for any image size and channel count.

- encoder: flatten the image, then [Linear -> ReLU] per hidden size, then a linear layer
  to the code (twice its size for a Gaussian encoder: mean and log-variance);
- decoder: [Linear -> ReLU] per hidden size, then a linear layer to C x S x S pixels,
  reshaped to the image. It returns logits; the model applies the output activation
  (sigmoid for [0, 1], tanh for [-1, 1]).

`hidden` lists the hidden layers' sizes in the order the data flows (encoder: from the
image on; decoder: from the code on); null gives three layers of `width` units. The CWAE
paper's MNIST networks (gmum/cwae-pytorch, src/architectures/mnist.py) are
784-200-200-200-d_z and d_z-200-200-200-784 with a sigmoid output: `model=mlp` as shipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

DEFAULT_DEPTH = 3


def hidden_sizes(hidden: Sequence[int] | None, width: int) -> list[int]:
    """The hidden layers' sizes: `hidden`, or DEFAULT_DEPTH layers of `width` when it is None
    (`waebench.config_check` refuses an empty list or a size < 1 before training)."""
    return [width] * DEFAULT_DEPTH if hidden is None else list(hidden)


def linear_relu_stack(sizes: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU(inplace=True)]
    return layers


class MLPEncoder(nn.Module):
    """Images [N, C, S, S] -> codes [N, out_features]."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        out_features: int,
        width: int = 200,
        hidden: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        sizes = [channels * image_size**2, *hidden_sizes(hidden, width)]
        self.net = nn.Sequential(
            nn.Flatten(), *linear_relu_stack(sizes), nn.Linear(sizes[-1], out_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    """Codes [N, latent_dim] -> logits [N, C, S, S]."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        latent_dim: int,
        width: int = 200,
        hidden: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        sizes = [latent_dim, *hidden_sizes(hidden, width)]
        self.net = nn.Sequential(
            *linear_relu_stack(sizes),
            nn.Linear(sizes[-1], channels * image_size**2),
            nn.Unflatten(1, (channels, image_size, image_size)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
