"""The WAE paper's DCGAN-like encoder and decoder, for any square image size.

With `width` w (the paper: 128) and kernel k (the paper: 4 at 28x28, 5 at 64x64):

- encoder: 4 x [Conv(k, stride 2) -> BatchNorm -> ReLU] with w, 2w, 4w, 8w
  filters, then a linear layer to the code (twice its size for a Gaussian
  encoder: mean and log-variance). `padding: same` is TensorFlow's SAME padding,
  as in the official code: each convolution outputs ceil(size / 2), padded with
  the odd pixel at the bottom/right (28 -> 14 -> 7 -> 4 -> 2, so 2 x 2 x 8w
  features at 28x28; 64 -> 32 -> 16 -> 8 -> 4). `padding: torch` is the symmetric
  (k - 1) // 2 of earlier runs (28 -> 14 -> 7 -> 3 -> 1); it is the constructor's
  default so that their checkpoints, which do not name a padding, load and compute
  as trained (conf/model/dcgan.yaml sets `same` for new runs);
- decoder: linear to s x s x 8w, ReLU (the WAE code's; `head_relu: false` leaves it out,
  as the RAE code's decoder), then per doubling of the size
  [ConvTranspose(k, stride 2) -> BatchNorm -> ReLU] halving the filters, then a
  stride-1 convolution to the image channels. s = 7 for 28x28 (two doublings),
  8 for 64x64 (three), as in the paper.

The decoder returns logits; the caller applies the output activation that
matches the data range (sigmoid for [0, 1], tanh for [-1, 1]).

`spectral_normalise` wraps the layers of any network with spectral normalisation (RAE-SN).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

ENCODER_LAYERS = 4
PADDINGS = ("same", "torch")
PAPER_KERNEL_SIZE = {28: 4, 64: 5}
SPECTRAL_NORM_LAYERS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def paper_kernel_size(image_size: int) -> int:
    return PAPER_KERNEL_SIZE.get(image_size, 4 if image_size <= 32 else 5)


def decoder_doublings(image_size: int) -> int:
    return 2 if image_size <= 32 else 3


class SameConv2d(nn.Conv2d):
    """A Conv2d with TensorFlow's SAME padding: output size ceil(size / stride), the total
    padding max((out - 1) * stride + k - size, 0) split with the extra pixel at the end."""

    def __init__(self, in_channels: int, out_channels: int, k: int, stride: int, **kwargs):
        super().__init__(in_channels, out_channels, k, stride=stride, padding=0, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, stride in zip(
            x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1], strict=True
        ):
            total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def encoder_conv(in_channels: int, out_channels: int, k: int, padding: str) -> nn.Conv2d:
    if padding == "same":
        return SameConv2d(in_channels, out_channels, k, stride=2, bias=False)
    return nn.Conv2d(in_channels, out_channels, k, stride=2, padding=(k - 1) // 2, bias=False)


class ConvEncoder(nn.Module):
    def __init__(
        self,
        image_size: int,
        channels: int,
        out_features: int,
        width: int = 128,
        kernel_size: int | None = None,
        padding: str = "torch",
    ) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(
                f"model.encoder.padding={padding!r}; valid values: {', '.join(PADDINGS)}"
            )
        k = kernel_size or paper_kernel_size(image_size)
        layers: list[nn.Module] = []
        in_channels = channels
        for i in range(ENCODER_LAYERS):
            out_channels = width * 2**i
            layers += [
                encoder_conv(in_channels, out_channels, k, padding),
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
        head_relu: bool = True,
    ) -> None:
        super().__init__()
        k = kernel_size or paper_kernel_size(image_size)
        doublings = decoder_doublings(image_size)
        self.start_size, remainder = divmod(image_size, 2**doublings)
        if remainder:
            raise ValueError(f"image size {image_size} is not divisible by 2^{doublings}")
        self.start_channels = width * 2 ** (ENCODER_LAYERS - 1)
        self.head = nn.Linear(latent_dim, self.start_channels * self.start_size**2)
        layers: list[nn.Module] = [nn.ReLU(inplace=True)] if head_relu else []
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
        layers.append(SameConv2d(in_channels, channels, k, stride=1))  # = Conv2d(padding="same")
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.head(z).view(-1, self.start_channels, self.start_size, self.start_size)
        return self.body(h)


def spectral_normalise(network: nn.Module, option: str, power_iterations: int = 1) -> int:
    """Reparametrise the weight W of every Linear and convolution layer of `network` as
    W / sigma(W) with torch's spectral_norm (`power_iterations` steps of the power method per
    training forward; 1 as in the official code), and return how many layers were wrapped.
    sigma is the largest singular value of W reshaped to [W.shape[0], -1] (`dim=0` for every
    layer, transposed convolutions included): the matrix the official RAE code normalises
    (Keras' kernel reshaped to [-1, filters]), not the norm of the convolution operator.
    Layers without a weight matrix (batch norm, activations) are left as they are. `option`
    names the setting in the errors: a network with another layer that holds a weight
    matrix, or with no layer to wrap, is refused."""
    names = ", ".join(t.__name__ for t in SPECTRAL_NORM_LAYERS)
    unsupported = [
        f"{name or '<network>'} ({type(module).__name__})"
        for name, module in network.named_modules()
        if not isinstance(module, SPECTRAL_NORM_LAYERS)
        and any(p.ndim >= 2 for p in module.parameters(recurse=False))
    ]
    if unsupported:
        raise ValueError(
            f"{option} ({type(network).__name__}) has layers spectral normalisation cannot "
            f"wrap: {', '.join(unsupported)}. It wraps {names}; remove the network from the "
            f"option or use those layers."
        )
    layers = [m for m in network.modules() if isinstance(m, SPECTRAL_NORM_LAYERS)]
    if not layers:
        raise ValueError(
            f"{option} ({type(network).__name__}) has no layer spectral normalisation can "
            f"wrap (it wraps {names}); remove the network from the option."
        )
    for layer in layers:
        spectral_norm(layer, n_power_iterations=power_iterations, dim=0)
    return len(layers)
