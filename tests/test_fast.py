"""The GPU speed options give the same losses as the plain float32 path: bf16-mixed (penalties
in float32), channels_last, torch.compile (with its fallback), cudnn.benchmark, and the
GPU-resident data path (same batches, exact resume). CPU where the option exists on CPU,
`gpu`-marked otherwise."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
import torch
from conftest import compose_train_config, crash_at
from hydra.utils import instantiate
from lightning.pytorch.profilers import SimpleProfiler

from waebench.config_check import ConfigValueError
from waebench.data import ImageDataModule, placement
from waebench.evaluation.evaluate import decode_codes, reconstruct_images
from waebench.evaluation.fid import to_uint8
from waebench.fast import NullProfiler, compile_with_fallback
from waebench.regularizers import Codes
from waebench.train import build_model, build_trainer, train

needs_gpu = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
STEPS = ["trainer.limit_train_batches=4", "trainer.max_epochs=2", "regularizer=mmd"]


def losses(train_config, *overrides: str, run: str) -> list[float]:
    metrics = train(train_config(*STEPS, *overrides, run=run))
    return [metrics["train"]["loss"], metrics["val"]["loss"], metrics["test"]["loss"]]


@pytest.mark.parametrize(
    "regularizer", ["mmd", "kl", "gan", "sliced", "sinkhorn", "w2_gaussian", "none"]
)
def test_penalties_are_float32_under_bf16_autocast(tmp_path, regularizer):
    cfg = compose_train_config(tmp_path, [f"regularizer={regularizer}"])
    model = build_model(cfg)
    z = torch.randn(32, cfg.model.latent_dim).bfloat16()  # codes as a bf16 encoder gives them
    log_var = torch.full_like(z, -1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(1)
        penalty = model.regularizer(Codes(z=z, mean=z, log_var=log_var), model.prior)
    assert penalty.dtype == torch.float32
    torch.manual_seed(1)
    z, log_var = z.float(), log_var.float()
    plain = model.regularizer(Codes(z=z, mean=z, log_var=log_var), model.prior)
    torch.testing.assert_close(penalty, plain, rtol=1e-5, atol=1e-6)


def test_bf16_mixed_gives_the_float32_losses_within_2_percent(train_config):
    fp32 = losses(train_config, run="fp32")
    bf16 = losses(train_config, "trainer.precision=bf16-mixed", run="bf16")
    assert bf16 == pytest.approx(fp32, rel=0.02)


def test_channels_last_gives_the_same_losses(train_config):
    plain = losses(train_config, run="plain")
    nhwc = losses(train_config, "model.channels_last=true", run="nhwc")
    assert nhwc == pytest.approx(plain, rel=1e-4)


@pytest.mark.slow
def test_compile_gives_the_same_losses(train_config):
    plain = losses(train_config, run="plain")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compiling the .* failed")  # no eager fallback
        compiled = losses(train_config, "model.compile=true", run="compiled")
    assert compiled == pytest.approx(plain, rel=1e-4)


def test_compile_failure_falls_back_to_eager_with_the_reason():
    def failing_backend(graph_module, example_inputs):
        raise RuntimeError("no code generator for this graph")

    module = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    expected = module(x)
    compile_with_fallback(module, "decoder", backend=failing_backend)
    with pytest.warns(UserWarning, match="compiling the decoder failed .*no code generator"):
        out = module(x)
    torch.testing.assert_close(out, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module(x)  # eager from then on: no second warning


def test_unknown_compile_backend_falls_back_with_a_warning():
    module = torch.nn.Linear(3, 2)
    with pytest.warns(UserWarning, match="compiling the encoder failed"):
        compile_with_fallback(module, "encoder", backend="no-such-backend")
    assert module(torch.randn(1, 3)).shape == (1, 2)


def test_the_trainer_profiles_nothing_unless_a_profiler_is_named(train_config):
    """NullProfiler: one reused null context per hook call (docs/speed.md)."""
    profiler = build_trainer(train_config()).profiler
    assert isinstance(profiler, NullProfiler)
    with profiler.profile("[Callback]a.on_train_batch_end"), profiler.profile("b"):
        pass
    named = build_trainer(train_config("+trainer.profiler=simple", run="profiled")).profiler
    assert isinstance(named, SimpleProfiler)


def test_on_device_takes_auto_true_false_only():
    with pytest.raises(ValueError, match="dataset.on_device='maybe'; valid values: auto, true"):
        ImageDataModule("digits", 28, 1, on_device="maybe")
    assert not placement.keep_on_device("true", 10**6, torch.device("cpu")), "CPU runs copy nothing"


# ---------------------------------------------------------------- several batches a step


def final_weights(metrics: dict) -> dict[str, torch.Tensor]:
    path = Path(metrics["run_dir"], "checkpoints", "last.ckpt")
    return torch.load(path, weights_only=False)["state_dict"]


def training_steps(metrics: dict) -> int:
    """Lightning's training steps of a run, from its CSV log (trainer.log_every_n_steps=1)."""
    with open(Path(metrics["run_dir"], "csv", "metrics.csv"), newline="") as file:
        return sum(1 for row in csv.DictReader(file) if row.get("train/loss_step"))


def assert_same_weights(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(got[name], value), name


@pytest.mark.parametrize("regularizer", ["mmd", "gan"])
def test_several_batches_a_step_take_the_same_optimizer_steps(train_config, regularizer):
    """model.batches_per_step=K: K optimizer steps a training step, on the same batches in the
    same order with the same random draws (MMD's prior samples; WAE-GAN's adversary), so the
    weights are those of one batch a step, bit for bit; an epoch whose batches K does not
    divide ends on a shorter item, and trainer.max_steps stops inside an item."""
    common = [f"regularizer={regularizer}", "trainer.limit_train_batches=null",
              "callbacks.last_checkpoint.every_n_train_steps=null"]  # fmt: skip
    epochs = ["trainer.max_epochs=2"]
    one = train(train_config(*common, *epochs, run="one"))
    seven = train(train_config(*common, *epochs, "model.batches_per_step=7", run="seven"))
    batches = one["global_step"] // 2
    assert batches % 7, "the test needs an epoch that 7 batches a step do not divide"
    assert seven["global_step"] == one["global_step"]
    assert_same_weights(final_weights(seven), final_weights(one))
    assert seven["train"] == one["train"] and seven["test"] == one["test"]
    assert training_steps(seven) == 2 * -(-batches // 7), "7 batches in each training step"

    steps = ["trainer.max_steps=10"]
    one = train(train_config(*common, *steps, run="one_10"))
    three = train(train_config(*common, *steps, "model.batches_per_step=3", run="three_10"))
    assert three["global_step"] == one["global_step"] == 10
    assert_same_weights(final_weights(three), final_weights(one))


def test_several_batches_a_step_resume_exactly(train_config):
    """A crash at step 12 of 3-batch steps resumes from the step checkpoint written at step 12
    (every 4 steps: written at the first training step that reaches a multiple)."""
    common = ["regularizer=mmd", "model.batches_per_step=3", "trainer.limit_train_batches=null",
              "trainer.max_epochs=2", "callbacks.last_checkpoint.every_n_train_steps=4"]  # fmt: skip
    straight = train(train_config(*common, run="straight"))
    with pytest.raises(RuntimeError, match="crashed at step 12"):
        train(train_config(*common, *crash_at(12), run="resumed"))
    path = Path(straight["run_dir"]).parent / "resumed" / "checkpoints" / "last.ckpt"
    assert torch.load(path, weights_only=False)["global_step"] == 12
    resumed = train(train_config(*common, "ckpt_path=auto", run="resumed"))
    assert resumed["global_step"] == straight["global_step"]
    assert_same_weights(final_weights(resumed), final_weights(straight))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.batches_per_step=0"], "model.batches_per_step=0: must be an integer >= 1"),
        (["model.batches_per_step=4", "+trainer.gradient_clip_val=1.0"],
         "model.batches_per_step=4 with trainer.gradient_clip_val: .*set model.batches_per_step=1"),
        (["model.batches_per_step=4", "model.lr_schedule.plateau={patience: 2}"],
         "plateau is not supported with .*model.batches_per_step > 1"),
    ],
)  # fmt: skip
def test_several_batches_a_step_refuse_what_they_cannot_do(train_config, overrides, message):
    cfg = train_config(*overrides)
    with pytest.raises(ConfigValueError, match=message):
        train(cfg)
    assert not Path(cfg.paths.output_dir, "config.yaml").exists()


# ---------------------------------------------------------------- on a GPU


@pytest.mark.parametrize("on_device", ["true", "false"])
@pytest.mark.parametrize("trainer", ["trainer.accelerator=gpu", "trainer.accelerator=cpu"])
def test_the_data_order_is_the_same_on_every_path(train_config, on_device, trainer):
    """(seed, epoch) -> batches, whether the data lives on the GPU, in pinned memory or the CPU."""
    if "gpu" in trainer and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cfg = train_config(trainer, f"dataset.on_device={on_device}")
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    device = torch.device("cuda" if "gpu" in trainer else "cpu")

    class Trainer:  # what the loader reads of Lightning's trainer
        global_rank, world_size, current_epoch = 0, 1, 1

        class strategy:  # noqa: N801
            root_device = device

    datamodule.trainer = Trainer()
    batches = [labels.cpu() for _, labels in datamodule.train_dataloader()]
    images, labels = datamodule.splits["train"]
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0 * 100_003 + 1))
    expected = labels[order][: len(batches) * 16].split(16)
    assert all(torch.equal(a, b) for a, b in zip(batches, expected, strict=True))
    first_images, _ = next(iter(datamodule.train_dataloader()))
    on_gpu = device.type == "cuda" and on_device == "true"
    assert first_images.device.type == ("cuda" if on_gpu else "cpu")
    assert first_images.is_pinned() == (device.type == "cuda" and on_device == "false")


@pytest.mark.parametrize("on_device", ["true", "false"])
@pytest.mark.parametrize("mark", [pytest.param(0, marks=needs_gpu)])
def test_exact_resume_on_the_gpu(train_config, on_device, mark):
    common = ["trainer.accelerator=gpu", f"dataset.on_device={on_device}", "regularizer=none",
              "trainer.limit_train_batches=null", "trainer.max_epochs=2",
              "callbacks.last_checkpoint.every_n_train_steps=20"]  # fmt: skip
    straight = train(train_config(*common, run="straight"))
    with pytest.raises(RuntimeError, match="crashed at step 20"):
        train(train_config(*common, *crash_at(20), run="resumed"))
    resumed = train(train_config(*common, "ckpt_path=auto", run="resumed"))
    assert resumed["global_step"] == straight["global_step"]
    expected = torch.load(Path(straight["run_dir"], "checkpoints", "last.ckpt"), weights_only=False)
    got = torch.load(Path(resumed["run_dir"], "checkpoints", "last.ckpt"), weights_only=False)
    for name, value in expected["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][name], value, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("mark", [pytest.param(0, marks=needs_gpu)])
def test_on_device_true_says_how_much_memory_it_needs_and_how_much_is_free(mark):
    device = torch.device("cuda")
    free, _ = torch.cuda.mem_get_info(device)
    with pytest.raises(
        MemoryError, match=r"needs [\d.]+ GiB .* has [\d.]+ GiB free .*on_device=auto"
    ):
        placement.keep_on_device("true", 2 * free, device)
    assert placement.keep_on_device("auto", 2 * free, device) is False


@pytest.mark.parametrize(
    "option",
    [
        pytest.param("trainer.precision=bf16-mixed", marks=needs_gpu),
        pytest.param("model.channels_last=true", marks=needs_gpu),
        pytest.param("trainer.benchmark=true", marks=needs_gpu),
        pytest.param("model.compile=true", marks=needs_gpu),
    ],
)
def test_gpu_options_give_the_float32_losses(train_config, option):
    gpu = ["trainer.accelerator=gpu", "dataset.on_device=true"]
    plain = losses(train_config, *gpu, run="plain")
    fast = losses(train_config, *gpu, option, run="fast")
    assert fast == pytest.approx(plain, rel=0.02 if "bf16" in option else 1e-3)


def test_fid_images_come_back_as_uint8_batch_by_batch(train_config):
    cfg = train_config()
    model, datamodule = build_model(cfg).eval(), instantiate(cfg.dataset)
    datamodule.setup()
    images = datamodule.splits["test"][0][:50]
    codes = torch.randn(50, cfg.model.latent_dim)
    decoded = decode_codes(model, codes, 16, datamodule.value_range)
    assert decoded.dtype == torch.uint8 and decoded.shape == images.shape
    assert torch.equal(decoded, to_uint8(model.decode(codes), datamodule.value_range))
    recs = reconstruct_images(model, datamodule, images, 16)
    whole = model.reconstruct(datamodule.to_float(images))
    assert torch.equal(recs, to_uint8(whole, datamodule.value_range))
