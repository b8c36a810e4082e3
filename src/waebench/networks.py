"""The WAE paper's DCGAN-like encoder and decoder, for any square image size.

With `width` w (the paper: 128) and kernel k (the paper: 4 at 28x28, 5 at 64x64):

- encoder: 4 x [Conv(k, stride 2) -> BatchNorm -> ReLU] with w, 2w, 4w, 8w
  filters, then a linear layer to the code (twice its size for a Gaussian
  encoder: mean and log-variance);
- decoder: linear to s x s x 8w, ReLU, then per doubling of the size
  [ConvTranspose(k, stride 2) -> BatchNorm -> ReLU] halving the filters, then a
  stride-1 convolution to the image channels. s = 7 for 28x28 (two doublings),
  8 for 64x64 (three), as in the paper.

The decoder returns logits; the caller applies the output activation that
matches the data range (sigmoid for [0, 1], tanh for [-1, 1]).
"""

from __future__ import annotations

import torch
from torch import nn

ENCODER_LAYERS = 4
PAPER_KERNEL_SIZE = {28: 4, 64: 5}


def paper_kernel_size(image_size: int) -> int:
    return PAPER_KERNEL_SIZE.get(image_size, 4 if image_size <= 32 else 5)


def decoder_doublings(image_size: int) -> int:
    return 2 if image_size <= 32 else 3


class ConvEncoder(nn.Module):
    def __init__(
        self,
        image_size: int,
        channels: int,
        out_features: int,
        width: int = 128,
        kernel_size: int | None = None,
    ) -> None:
        super().__init__()
        k = kernel_size or paper_kernel_size(image_size)
        layers: list[nn.Module] = []
        in_channels = channels
        for i in range(ENCODER_LAYERS):
            out_channels = width * 2**i
            layers += [
                nn.Conv2d(in_channels, out_channels, k, stride=2, padding=(k - 1) // 2, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n_features = self.features(torch.zeros(2, channels, image_size, image_size)).shape[1]
        self.head = nn.Linear(n_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvDecoder(nn.Module):
    def __init__(
        self,
        image_size: int,
        channels: int,
        latent_dim: int,
        width: int = 128,
        kernel_size: int | None = None,
    ) -> None:
        super().__init__()
        k = kernel_size or paper_kernel_size(image_size)
        doublings = decoder_doublings(image_size)
        self.start_size, remainder = divmod(image_size, 2**doublings)
        if remainder:
            raise ValueError(f"image size {image_size} is not divisible by 2^{doublings}")
        self.start_channels = width * 2 ** (ENCODER_LAYERS - 1)
        self.head = nn.Linear(latent_dim, self.start_channels * self.start_size**2)
        layers: list[nn.Module] = [nn.ReLU(inplace=True)]
        in_channels = self.start_channels
        for _ in range(doublings):
            out_channels = in_channels // 2
            layers += [
                nn.ConvTranspose2d(
                    in_channels,
                    out_channels,
                    k,
                    stride=2,
                    padding=(k - 1) // 2,
                    output_padding=k % 2,
                    bias=False,
                ),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        layers.append(nn.Conv2d(in_channels, channels, k, stride=1, padding="same"))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.head(z).view(-1, self.start_channels, self.start_size, self.start_size)
        return self.body(h)
