"""The DCGAN-like networks have the official WAE code's layer shapes (TensorFlow SAME padding)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from waebench.networks import ConvDecoder, ConvEncoder, SameConv2d

# (channels, height, width) after each conv / transposed conv / linear layer, width 128.
PAPER_SHAPES = {
    "mnist": {
        "size": (28, 1, 8),
        "encoder": [(128, 14, 14), (256, 7, 7), (512, 4, 4), (1024, 2, 2), (8,)],
        "decoder": [(1024 * 7 * 7,), (512, 14, 14), (256, 28, 28), (1, 28, 28)],
    },
    "celeba": {
        "size": (64, 3, 64),
        "encoder": [(128, 32, 32), (256, 16, 16), (512, 8, 8), (1024, 4, 4), (64,)],
        "decoder": [(1024 * 8 * 8,), (512, 16, 16), (256, 32, 32), (128, 64, 64), (3, 64, 64)],
    },
}


def layer_shapes(network: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes = []
    layers = [
        m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
    ]
    hooks = [
        m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for m in layers
    ]
    with torch.no_grad():
        network.eval()(x)
    for hook in hooks:
        hook.remove()
    return shapes


@pytest.mark.parametrize("dataset", list(PAPER_SHAPES))
def test_every_layer_has_the_official_shape(dataset):
    image_size, channels, latent = PAPER_SHAPES[dataset]["size"]
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        encoder = ConvEncoder(image_size, channels, latent, width=128, padding="same")
        decoder = ConvDecoder(image_size, channels, latent, width=128)
        x, z = torch.zeros(1, channels, image_size, image_size), torch.zeros(1, latent)
        # the decoder's Linear head runs first, the encoder's last
        assert layer_shapes(encoder, x) == PAPER_SHAPES[dataset]["encoder"]
        assert layer_shapes(decoder, z) == PAPER_SHAPES[dataset]["decoder"]


def test_same_padding_matches_tensorflow_placement():
    """TF SAME pads the odd pixel at the end: for 7 -> 4 with k = 4, stride 2, one row above
    and two below, so the last window covers input rows 5, 6 and two zeros."""
    conv = SameConv2d(1, 1, 4, stride=2, bias=False)
    nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 6, :] = 1.0  # only the last row is on
    out = conv(x)[0, 0]
    assert out.shape == (4, 4)
    # windows start at rows -1, 1, 3, 5 (padded): the last two contain row 6
    assert out[:, 1].tolist() == [0.0, 0.0, 4.0, 4.0]
    explicit = nn.functional.conv2d(nn.functional.pad(x, (1, 2, 1, 2)), conv.weight, stride=2)
    assert torch.equal(out, explicit[0, 0])


def test_torch_padding_is_kept_for_earlier_checkpoints():
    """The constructor's default is the earlier symmetric padding (old checkpoints name none)."""
    old = ConvEncoder(28, 1, 8, width=4)
    assert old.head.in_features == 4 * 8 * 1 * 1
    new = ConvEncoder(28, 1, 8, width=4, padding="same")
    assert new.head.in_features == 4 * 8 * 2 * 2
    assert new.state_dict().keys() == old.state_dict().keys()
    with pytest.raises(ValueError, match="padding"):
        ConvEncoder(28, 1, 8, padding="valid")
