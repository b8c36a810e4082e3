"""RAE (plain, L2, GP, SN) and CV-VAE (Ghosh et al. 2020; issue 25): the decoder penalties
against independent values (finite differences, a hand sum), spectral normalisation's layer
norms after training and through a checkpoint, the code penalties' pull, the protocol
configs, the names in reports, bad input, and short runs on the real Fashion-MNIST."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from conftest import CONFIG_DIR, compose_train_config, needs_real_data, write_mnist_layout
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from waebench.build import build_model
from waebench.config_check import ConfigValueError, check_config
from waebench.data import ImageDataModule
from waebench.evaluation.metrics import latent_mmd, posterior_codes
from waebench.model import load_model
from waebench.networks import SPECTRAL_NORM_LAYERS, ConvDecoder, spectral_normalise
from waebench.prior import GaussianPrior
from waebench.regularizers import ConstantVarianceKL, RAEPenalty
from waebench.regularizers.rae import output_gradient_penalty, weight_norm_squared
from waebench.reporting.runs import Run
from waebench.samplers.fitting import KerasPlateau
from waebench.train import build_trainer, train
from waebench.validity import PRIOR, Law, expected_penalty, pull

NEW_MODELS = {
    "rae": "RAE",
    "rae_l2": "RAE-L2",
    "rae_gp": "RAE-GP",
    "rae_sn": "RAE-SN",
    "cv_vae": "CV-VAE",
}
RAE_PAPER_MODELS = ["vae", "cv_vae", "wae", "rae_gp", "rae_l2", "rae_sn", "rae", "ae"]


def small_decoder(seed: int = 0) -> ConvDecoder:
    """A real ConvDecoder (8x8 images: linear, ReLU, 2 x [transposed conv, batch norm, ReLU],
    conv), small enough for finite differences in float64."""
    torch.manual_seed(seed)
    return ConvDecoder(image_size=8, channels=1, latent_dim=3, width=2).double()


def batch_total(decoder: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """F(z) = sum_b ||sigmoid(G(z_b))||^2: what the gradient penalty differentiates."""
    return torch.sigmoid(decoder(z)).pow(2).sum()


# ----- the decoder penalties against independent values -----


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradient_penalty_matches_finite_differences(mode):
    """mean_i ||grad_{z_i} F||^2 against central differences of F in each code entry
    (batch norm in training mode couples the codes through the batch statistics)."""
    decoder = small_decoder().train(mode == "train")
    z = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z.requires_grad_()
    penalty = output_gradient_penalty(z, torch.sigmoid(decoder(z)))
    h, grad = 1e-6, torch.zeros_like(z)
    with torch.no_grad():
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                step = torch.zeros_like(z)
                step[i, j] = h
                grad[i, j] = (batch_total(decoder, z + step) - batch_total(decoder, z - step)) / (
                    2 * h
                )
    expected = grad.pow(2).sum(1).mean()
    assert penalty.item() > 1e-6
    torch.testing.assert_close(penalty, expected, rtol=1e-6, atol=0)


def test_gradient_penalty_is_differentiable_twice():
    """Its own gradient (the double backward that trains the networks) passes gradcheck in
    the codes, and reaches every decoder weight."""
    decoder = small_decoder().eval()
    z = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    z.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda codes: output_gradient_penalty(codes, torch.sigmoid(decoder(codes))), (z,)
    )
    penalty = output_gradient_penalty(z, torch.sigmoid(decoder(z)))
    grads = torch.autograd.grad(penalty, [p for p in decoder.parameters() if p.ndim >= 2])
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_l2_penalty_is_the_sum_of_squared_kernels():
    decoder = small_decoder()
    kernels = [
        m.weight
        for m in decoder.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))
    ]
    expected = sum(float((w.double() ** 2).sum()) for w in kernels)  # biases, batch norm: out
    assert len(kernels) == 4
    assert weight_norm_squared(decoder).item() == pytest.approx(expected, rel=1e-12)
    convolutions = sum(float((w.double() ** 2).sum()) for w in kernels[1:])  # not the Linear
    assert isinstance(decoder.head, nn.Linear) and kernels[0] is decoder.head.weight
    assert weight_norm_squared(decoder, "convolutions").item() == pytest.approx(
        convolutions, rel=1e-12
    )  # the official MNIST decoder's L2 (its first Dense has none)


def test_gradient_penalty_stays_float32_under_bf16_autocast(tmp_path):
    """Under autocast the penalty is recomputed from float32 codes with autocast off: it
    equals the plain float32 value, whatever precision the training forward ran in."""
    cfg = compose_train_config(tmp_path, ["regularizer=rae_gp", "model.width=4"])
    model = build_model(cfg).train()
    z = torch.randn(16, cfg.model.latent_dim, generator=torch.Generator().manual_seed(3))
    z.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_hat = model._generate(z)
        penalty = model.regularizer.decoder_term(model.decoder, model._generate, z, x_hat)
    assert x_hat.dtype == torch.bfloat16 and penalty.dtype == torch.float32
    plain = output_gradient_penalty(z, model._generate(z))
    torch.testing.assert_close(penalty, plain, rtol=1e-5, atol=0)


# ----- spectral normalisation -----


def top_singular_values(network: nn.Module) -> list[float]:
    """sigma_max of each wrapped layer's weight (as the layer uses it) reshaped to
    [out, -1] for convs and Linear, [in, -1] for transposed convs (dim 0 in torch's
    layout): the matrix the official code normalises."""
    return [
        torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        for m in network.modules()
        if isinstance(m, SPECTRAL_NORM_LAYERS)
    ]


def test_spectral_norms_stay_near_one_through_training_and_a_checkpoint(train_config):
    """After 30 training steps every layer of both networks has sigma_max <= 1.15 (one power
    iteration a step, as the official code, lags where a layer's top singular values are
    close: the decoder's first linear layer, sigma_2 / sigma_1 ~ 0.97, measured 1.04-1.06),
    and <= 1.005 once the power method has caught up (200 power iterations without
    updates); without normalisation that layer starts at sigma_max ~ 8.5. The checkpoint
    loads back with its power-iteration state: two loads under different seeds decode
    alike, and as the trained model does."""
    cfg = train_config("regularizer=rae_sn", "trainer.limit_train_batches=30", run="sn")
    model = build_model(cfg)
    build_trainer(cfg).fit(model, datamodule=instantiate(cfg.dataset))
    model.eval()
    norms = top_singular_values(model.encoder) + top_singular_values(model.decoder)
    assert len(norms) == 9 and max(norms) <= 1.15 and min(norms) >= 0.9, norms
    plain = build_model(train_config("regularizer=rae", run="plain"))
    assert max(top_singular_values(plain.decoder)) > 2

    z = torch.randn(8, cfg.model.latent_dim, generator=torch.Generator().manual_seed(4))
    loaded = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        loaded.append(load_model(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"))
    assert "decoder.head.parametrizations.weight.0._u" in loaded[0].state_dict()
    torch.testing.assert_close(loaded[0].decode(z), loaded[1].decode(z), rtol=0, atol=0)
    torch.testing.assert_close(loaded[0].decode(z), model.decode(z))

    layers = [m for m in model.modules() if isinstance(m, SPECTRAL_NORM_LAYERS)]
    model.train()
    with torch.no_grad():
        for _ in range(200):  # in training mode, each read of a weight is one power iteration
            [layer.weight for layer in layers]
    model.eval()
    norms = top_singular_values(model.encoder) + top_singular_values(model.decoder)
    assert max(norms) <= 1.005 and min(norms) >= 0.99, norms


def test_spectral_norm_wraps_only_decoder_when_asked(tmp_path):
    cfg = compose_train_config(
        tmp_path, ["regularizer=rae_sn", "regularizer.spectral_norm=[decoder]", "model.width=4"]
    )
    model = build_model(cfg)
    wrapped = {n.split(".")[0] for n, _ in model.named_parameters() if ".original" in n}
    assert wrapped == {"decoder"}


@pytest.mark.parametrize(
    ("network", "message"),
    [
        (nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), "has no layer spectral normalisation can"),
        (
            nn.Sequential(nn.Linear(3, 3), nn.Bilinear(3, 3, 3)),
            r"cannot wrap: 1 \(Bilinear\). It wraps Linear, Conv1d",
        ),
    ],
    ids=["no-layer", "unsupported-layer"],
)
def test_spectral_norm_refuses_networks_it_cannot_wrap(network, message):
    with pytest.raises(ValueError, match=f"regularizer.spectral_norm: the decoder .*{message}"):
        spectral_normalise(network, "regularizer.spectral_norm: the decoder")


def test_spectral_norm_on_a_user_decoder_without_layers_fails_before_training(tmp_path):
    cfg = compose_train_config(
        tmp_path,
        [
            "regularizer=rae_sn",
            "model.decoder._target_=test_rae.LayerlessDecoder",
        ],
    )
    with pytest.raises(InstantiationException, match=r"the decoder \(LayerlessDecoder\) has no"):
        build_model(cfg)


class LayerlessDecoder(nn.Module):
    """A user's decoder with no weight matrix: spectral normalisation has nothing to wrap."""

    def __init__(
        self, image_size: int, channels: int, latent_dim: int, width: int, kernel_size=None
    ) -> None:
        super().__init__()
        self.shape = (channels, image_size, image_size)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * z.mean(1).view(-1, 1, 1, 1).expand(-1, *self.shape)


# ----- the code penalties -----


def test_rae_code_penalty_pulls_codes_to_the_origin_from_any_start():
    """1/2 ||z||^2 is not a prior match: its expectation is d s sigma_z^2 / 2 for codes of
    N(0, s sigma_z^2 I), and its gradient moves shifted codes back, and shrinks codes of
    every spread, too wide or too narrow."""
    prior, rae = GaussianPrior(8, 1.0), RAEPenalty(weight=1.0)
    assert expected_penalty(rae, prior, PRIOR, reps=50) == pytest.approx(4.0, rel=0.03)
    assert pull(rae, prior, Law("shifted", shift=1.0)).towards_origin > 0
    assert pull(rae, prior, Law("scaled", scale=4.0)).grow < 0
    assert pull(rae, prior, Law("shrunk", scale=0.25)).grow < 0


def test_cv_vae_encoder_has_the_constant_variance(tmp_path):
    cfg = compose_train_config(tmp_path, ["regularizer=cv_vae", "model.width=4"])
    model = build_model(cfg).train()
    assert model.encoder.head.out_features == cfg.model.latent_dim  # the mean only
    x = torch.rand(256, 1, 28, 28)
    codes = model.codes(x)
    torch.testing.assert_close(codes.log_var, torch.full_like(codes.mean, 2 * math.log(0.7)))
    assert (codes.z - codes.mean).std().item() == pytest.approx(0.7, rel=0.05)
    assert pull(model.regularizer, model.prior, Law("shifted", shift=1.0)).towards_origin > 0


# ----- training through the configs -----


@pytest.mark.parametrize("name", ["rae_l2", "rae_gp"])
def test_decoder_penalty_is_trained_and_logged(train_config, name):
    weight = "regularizer.decoder_weight=1.0"  # a visible share of val/objective
    metrics = train(train_config(f"regularizer={name}", weight, run=name))
    assert metrics["status"] == "completed"
    assert metrics["train"]["decoder_penalty"] > 0 and "decoder_penalty" not in metrics["val"]
    assert metrics["val"]["objective"] > metrics["val"]["loss"]  # Keras' val_loss has it
    with open(Path(metrics["run_dir"], "csv", "metrics.csv"), newline="") as file:
        rows = list(csv.DictReader(file))
    logged = [
        float(r["train/decoder_penalty_step"]) for r in rows if r["train/decoder_penalty_step"]
    ]
    assert len(logged) == 3 and all(math.isfinite(v) and v > 0 for v in logged)


def test_validation_objective_is_the_training_loss_as_keras_validates_it(tmp_path):
    """`val/objective` (what the RAE protocol's plateau schedule and best checkpoint
    monitor): `val/loss` plus the decoder penalty (RAE-L2: lambda x the squared kernels,
    exactly), and for a Gaussian encoder the loss of sampled codes, not of the means."""
    x = torch.rand(32, 1, 28, 28)
    l2 = build_model(compose_train_config(tmp_path / "l2", ["regularizer=rae_l2", "model.width=4"]))
    l2.eval()
    with torch.no_grad():
        terms, codes = l2.loss_terms(x)
        objective = l2.validation_objective(x, terms["loss"], codes)
    expected = terms["loss"] + l2.regularizer.decoder_weight * weight_norm_squared(l2.decoder)
    torch.testing.assert_close(objective, expected)
    vae = build_model(compose_train_config(tmp_path / "vae", ["regularizer=kl", "model.width=4"]))
    vae.eval()
    state = torch.random.get_rng_state()
    with torch.no_grad():
        terms, codes = vae.loss_terms(x)
        draws = [vae.validation_objective(x, terms["loss"], codes) for _ in range(2)]
        vae.on_validation_epoch_start()  # a new epoch draws the same noise again
        again = vae.validation_objective(x, terms["loss"], codes)
    assert not torch.equal(draws[0], draws[1])  # the codes are drawn
    assert torch.equal(again, draws[0]) and not torch.equal(draws[0], terms["loss"])
    assert torch.equal(codes.z, codes.mean)  # val/loss decodes the means
    assert torch.equal(torch.random.get_rng_state(), state)  # the training's stream untouched


def test_keras_patience_5_is_torch_patience_4():
    """On any loss sequence, torch's ReduceLROnPlateau with patience 4 cuts the lr at the
    epochs Keras' rule (train_raes_vaes.py: patience 5, min_delta 1e-4) cuts it."""
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.49995, 0.5, 0.5, 0.5, 0.5, 0.4]
    losses += [0.4] * 12
    keras = KerasPlateau(patience=5)
    keras_cuts = [i for i, loss in enumerate(losses) if keras.step(loss)]
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(()))], lr=1.0)
    torch_rule = ReduceLROnPlateau(optimizer, factor=0.5, patience=4, threshold=1e-4,
                                   threshold_mode="abs")  # fmt: skip
    torch_cuts = []
    for i, loss in enumerate(losses):
        before = optimizer.param_groups[0]["lr"]
        torch_rule.step(loss)
        if optimizer.param_groups[0]["lr"] < before:
            torch_cuts.append(i)
    assert keras_cuts == torch_cuts == [6, 12, 19, 24]


def test_plateau_schedule_halves_the_lr_when_val_loss_stalls(train_config):
    """threshold 1e9 (absolute): no epoch counts as an improvement, so with patience 0 the lr
    halves after every epoch but the first; monitored on val/objective as the RAE protocol."""
    plateau = (
        "{factor: 0.5, patience: 0, threshold: 1.0e9, threshold_mode: abs, monitor: val/objective}"
    )
    cfg = train_config(
        "regularizer=rae", "trainer.max_epochs=3", f"model.lr_schedule.plateau={plateau}"
    )
    metrics = train(cfg)
    with open(Path(metrics["run_dir"], "csv", "metrics.csv"), newline="") as file:
        lrs = [float(r["lr-Adam"]) for r in csv.DictReader(file) if r.get("lr-Adam")]
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4])


def test_the_rae_table_sweeps_every_model_on_both_datasets():
    sweep = OmegaConf.load(CONFIG_DIR / "sweep" / "rae_paper_table.yaml")
    experiments = sweep.hydra.sweeper.params.experiment.split(",")
    expected = [f"rae_paper/{d}_{m}" for d in ("mnist", "celeba") for m in RAE_PAPER_MODELS]
    assert [e.strip() for e in experiments] == expected


def test_model_names_in_reports(tmp_path):
    for name, expected in NEW_MODELS.items():
        cfg = compose_train_config(tmp_path / name, [f"regularizer={name}"])
        run = Run(tmp_path / name, OmegaConf.to_container(cfg, resolve=True), None)
        assert run.model == expected


def test_mnist_padding_adds_zero_borders(tmp_path):
    write_mnist_layout(tmp_path / "mnist")
    plain = ImageDataModule("mnist", 28, 1, root=str(tmp_path / "mnist"), val_size=20)
    padded = ImageDataModule("mnist", 32, 1, root=str(tmp_path / "mnist"), val_size=20, pad=2)
    plain.setup()
    padded.setup()
    for split in ("train", "val", "test"):
        images, small = padded.splits[split][0], plain.splits[split][0]
        assert images.shape[1:] == (1, 32, 32) and images.dtype == torch.uint8
        assert torch.equal(images[..., 2:30, 2:30], small)
        images[..., 2:30, 2:30] = 0
        assert images.sum() == 0
    mismatched = ImageDataModule("mnist", 28, 1, root=str(tmp_path / "mnist"), val_size=20, pad=2)
    with pytest.raises(ValueError, match="set dataset.image_size=32"):
        mismatched.setup()


# ----- bad input -----


def test_bad_rae_options_are_refused_with_the_valid_choices(tmp_path):
    with pytest.raises(
        ValueError, match="decoder_regularizer='gradient'; valid values: none, l2, gp"
    ):
        RAEPenalty(decoder_regularizer="gradient")
    with pytest.raises(
        ValueError, match=r"unknown network\(s\) \['generator'\]; valid: a list of encoder, decoder"
    ):
        RAEPenalty(spectral_norm=["generator"])
    cfg = compose_train_config(tmp_path / "c", ["regularizer=rae_gp", "model.compile=true"])
    with pytest.raises(InstantiationException, match="set model.compile=false"):
        build_model(cfg)
    both = "model.lr_schedule.plateau={factor: 0.5, patience: 5}"
    monitor = "model.lr_schedule.plateau={factor: 0.5, patience: 4, monitor: val/rec}"
    for overrides, message in (
        ([both, "model.lr_schedule.milestones=[3]", "model.lr_schedule.factors=[0.1]"], "not both"),
        ([both, "regularizer=gan"], "not supported with an adversarial regularizer"),
        ([monitor], "monitor=.val/rec.; valid values: val/loss, val/objective"),
        (["regularizer=rae_l2", "regularizer.l2_layers=dense"], "l2_layers=.*dense.*; valid"),
        (["model.init=xavier"], "model.init=.xavier.; valid values: torch, wae, keras"),
    ):
        with pytest.raises(InstantiationException, match=message):
            build_model(compose_train_config(tmp_path / "s", overrides))


def test_bad_values_are_refused_before_training(tmp_path):
    cfg = compose_train_config(
        tmp_path,
        [
            "regularizer=cv_vae",
            "regularizer.encoder_std=0",
            "dataset.pad=-1",
            "model.lr_schedule.plateau={factor: 1.5, patience: -1}",
        ],
    )
    with pytest.raises(ConfigValueError) as error:
        check_config(cfg)
    for key in (
        "regularizer.encoder_std=0",
        "dataset.pad=-1",
        "plateau.factor=1.5",
        "plateau.patience=-1",
    ):
        assert key in str(error.value)
    rae = compose_train_config(
        tmp_path / "rae", ["regularizer=rae_l2", "regularizer.decoder_weight=-1"]
    )
    with pytest.raises(ConfigValueError, match="regularizer.decoder_weight=-1"):
        check_config(rae)
    assert ConstantVarianceKL().encoder_std == 0.7


# ----- the real Fashion-MNIST -----


@pytest.mark.slow
@needs_real_data("fashion_mnist")
def test_new_models_train_on_real_fashion_mnist(train_config):
    """150 steps of batch 100 at width 8 with each config's defaults: finite losses; the
    CV-VAE's sampled codes are closer to N(0, I) than the AE's (latent MMD), and every RAE's
    code penalty keeps its codes nearer the origin than the AE's."""
    dm = ImageDataModule("fashion_mnist", 28, 1)
    dm.setup()
    images = dm.to_float(dm.splits["test"][0][:1000])
    distance, size = {}, {}
    for name in ["none", *NEW_MODELS]:
        cfg = train_config(
            f"regularizer={name}",
            "dataset=fashion_mnist",
            "dataset.val_size=200",
            "dataset.batch_size=100",
            "model.width=8",
            "trainer.limit_train_batches=150",
            "++trainer.limit_test_batches=1",
            run=name,
        )
        metrics = train(cfg)
        assert metrics["status"] == "completed"
        assert all(
            math.isfinite(v) for v in [*metrics["train"].values(), *metrics["test"].values()]
        )
        model = load_model(cfg.paths.output_dir)
        codes = posterior_codes(model, images)
        distance[name] = latent_mmd(codes, model.prior, seed=0)
        size[name] = codes.pow(2).sum(1).mean().item()
    assert distance["cv_vae"] < 0.5 * distance["none"], distance
    for name in ("rae", "rae_l2", "rae_gp", "rae_sn"):
        assert size[name] < size["none"], size
