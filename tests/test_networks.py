"""The DCGAN-like networks have the official WAE code's layer shapes (TensorFlow SAME padding);
the MLPs (model=mlp) the CWAE code's, and train with every regularizer."""

from __future__ import annotations

import pytest
import torch
from conftest import CONFIG_DIR
from torch import nn

from waebench import load_model
from waebench.build import build_model
from waebench.config_check import ConfigValueError, check_config
from waebench.mlp import MLPDecoder, MLPEncoder
from waebench.networks import ConvDecoder, ConvEncoder, SameConv2d
from waebench.train import train

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


def test_the_cwae_celeba_networks_have_the_official_shapes():
    """experiment=cwae_paper/celeba_*: 4x4 kernels, padding 1 (gmum/cwae-pytorch
    architectures/celeba.py: 64 -> 32 -> 16 -> 8 -> 4; 8 -> 16 -> 32 -> 64)."""
    with torch.device("meta"):
        encoder = ConvEncoder(64, 3, 64, width=128, kernel_size=4, padding="torch")
        decoder = ConvDecoder(64, 3, 64, width=128, kernel_size=4)
        x, z = torch.zeros(1, 3, 64, 64), torch.zeros(1, 64)
        assert layer_shapes(encoder, x) == PAPER_SHAPES["celeba"]["encoder"]
        assert layer_shapes(decoder, z) == PAPER_SHAPES["celeba"]["decoder"]


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


# ---- model=mlp ---------------------------------------------------------------------------------

REGULARIZERS = sorted(p.stem for p in (CONFIG_DIR / "regularizer").glob("*.yaml"))


def test_the_mlp_has_the_cwae_papers_mnist_shapes():
    """784-200-200-200-d_z and d_z-200-200-200-784 (gmum/cwae-pytorch architectures/mnist.py)."""
    encoder, decoder = MLPEncoder(28, 1, 8), MLPDecoder(28, 1, 8)
    assert layer_shapes(encoder, torch.zeros(2, 1, 28, 28)) == [(200,), (200,), (200,), (8,)]
    assert layer_shapes(decoder, torch.zeros(2, 8)) == [(200,), (200,), (200,), (784,)]
    assert decoder(torch.zeros(2, 8)).shape == (2, 1, 28, 28)


def test_the_mlp_takes_any_image_size_channels_and_hidden_sizes():
    encoder = MLPEncoder(32, 3, 16, hidden=[64, 32])
    decoder = MLPDecoder(32, 3, 8, width=5)
    assert layer_shapes(encoder, torch.zeros(2, 3, 32, 32)) == [(64,), (32,), (16,)]
    assert layer_shapes(decoder, torch.zeros(2, 8)) == [(5,), (5,), (5,), (3 * 32 * 32,)]
    assert decoder(torch.zeros(2, 8)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("regularizer", REGULARIZERS)
def test_the_mlp_trains_with_every_regularizer(train_config, regularizer):
    """One training step's loss and gradients, Gaussian encoders (VAE, CV-VAE, W-VAE) and the
    networks' own penalties (RAE-L2, RAE-GP, RAE-SN) included."""
    model = build_model(
        train_config("model=mlp", "model.width=6", f"regularizer={regularizer}")
    ).train()
    terms, codes = model.loss_terms(torch.rand(16, 1, 28, 28))
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"]) and codes.z.shape == (16, 8)
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_an_mlp_run_loads_with_load_model(train_config, tmp_path):
    cfg = train_config("model=mlp", "model.encoder.hidden=[12, 6]", "regularizer=cwae")
    assert train(cfg)["status"] == "completed"
    model = load_model(tmp_path / "run")
    assert type(model.encoder).__name__ == "MLPEncoder"
    assert [m.out_features for m in model.encoder.modules() if isinstance(m, nn.Linear)] == [
        12,
        6,
        8,
    ]
    assert model.reconstruct(torch.rand(3, 1, 28, 28)).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("hidden", ["[]", "[64,0]", "[-3]", "[2.5]"])
def test_an_empty_or_non_positive_hidden_list_is_refused_before_training(train_config, hidden):
    cfg = train_config("model=mlp", f"model.decoder.hidden={hidden}")
    with pytest.raises(ConfigValueError, match=r"model.decoder.hidden=\[.*\]: must be a non-empty"):
        check_config(cfg)
