"""Bad inputs are refused before training, each with a message naming the key or the file and
the fix, and a refused launch writes nothing (issue 13, holes 5, 6 and 8; issue 32; the table
is in docs/reliability.md)."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIG_DIR, TINY, compose_config, write_celeba_layout, write_mnist_layout

from waebench.config_check import ConfigValueError, check_config, problems
from waebench.data import ImageDataModule
from waebench.data.errors import CorruptFileError
from waebench.eval import checkpoint_of
from waebench.evaluation.fid import InceptionWeightsError, inception_weights_path
from waebench.run.record import CheckpointNotFoundError, run_dir_of
from waebench.train import train

BIN = Path(sys.executable).parent


# Hole 5: values that make no sense.
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.latent_dim=0", "model.latent_dim=0: must be an integer >= 1"),
        ("dataset.batch_size=0", "dataset.batch_size=0: must be an integer >= 1"),
        ("dataset.batch_size=-5", "dataset.batch_size=-5: must be an integer >= 1"),
        ("model.width=0", "model.width=0: must be an integer >= 1"),
        ("regularizer.weight=-1", "regularizer.weight=-1: must be a finite number >= 0"),
        ("regularizer.weight=nan", "regularizer.weight=nan: must be a finite number >= 0"),
        ("model.optimizer.lr=0", "model.optimizer.lr=0: must be a finite number > 0"),
        ("model.latent_dim=2.5", "model.latent_dim=2.5: must be an integer >= 1"),
        ("dataset.batch_size=abc", "dataset.batch_size=abc: must be an integer >= 1"),
        ("eval.samplers=[]", "eval.samplers=[]: must be a list of auto, prior"),
        ("regularizer.kernel=foo", "unknown kernel 'foo'; valid kernels: imq, rbf"),
        ("model.reconstruction.name=foo", "unknown reconstruction cost 'foo'; valid names"),
        ("+model.no_such_option=1", "unexpected keyword argument 'no_such_option'"),
        ("trainer.precision=bf16-true", "trainer.precision=bf16-true: pure bfloat16 runs on a GPU"),
    ],
)
def test_a_bad_value_is_refused_before_anything_is_built(train_config, override, expected):
    cfg = train_config(override)
    with pytest.raises(ConfigValueError) as error:
        train(cfg)
    assert expected in str(error.value)
    assert not Path(cfg.paths.output_dir).exists()  # nothing written, no run folder


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_a_gpu_accelerator_without_a_gpu_is_refused_before_anything_is_built(train_config):
    cfg = train_config("trainer.accelerator=gpu")
    with pytest.raises(ConfigValueError, match="trainer.accelerator=gpu: no CUDA GPU is visible"):
        train(cfg)
    assert not Path(cfg.paths.output_dir).exists()


def test_every_bad_value_is_named_at_once(train_config):
    found = problems(train_config("model.latent_dim=0", "regularizer.weight=nan", "seed=-1"))
    assert [p.split(":")[0] for p in found] == [
        "seed=-1",
        "model.latent_dim=0",
        "regularizer.weight=nan",
    ]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["regularizer=sinkhorn", "regularizer.scaling=1"], "regularizer.scaling=1: must be a finite number in (0, 1)"),
        (["regularizer=sinkhorn", "regularizer.blur=0"], "regularizer.blur=0: must be a finite number > 0 (or null)"),
        (["regularizer=sinkhorn", "regularizer.relative_blur=-1"], "regularizer.relative_blur=-1: must be a finite number > 0"),
        (["regularizer=sliced", "regularizer.n_projections=0"], "regularizer.n_projections=0: must be an integer >= 1"),
        (["regularizer=mmd", "regularizer.block_size=0"], "regularizer.block_size=0: must be an integer >= 1"),
    ],
)  # fmt: skip
def test_a_bad_regularizer_option_is_named_with_its_range(train_config, overrides, expected):
    assert problems(train_config(*overrides)) == [expected]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["eval.fid.real_splits=[]"], "eval.fid.real_splits=[]: must be null or a list of distinct splits from train, val, test"),
        (["eval.fid.real_splits=[train,train]"], "eval.fid.real_splits=[train,train]: must be null"),
        (["eval.fid.real_splits=[train,valid]"], "eval.fid.real_splits=[train,valid]: must be null"),
        (["dataset=mnist", "dataset.val_size=0", "eval.fid.real_splits=[val,test]"],
         "eval.fid.real_splits=['val', 'test']: with dataset.val_size=0 the val split is the test split"),
    ],
)  # fmt: skip
def test_a_bad_fid_real_set_is_refused_before_training(tmp_path, overrides, expected):
    cfg = compose_config("train", tmp_path / "run", overrides)
    with pytest.raises(ConfigValueError, match=re.escape(expected)):
        check_config(cfg)
    check_config(compose_config("train", tmp_path / "run", ["eval.fid.real_splits=[train,test]"]))


def shipped_choices() -> list[list[str]]:
    groups = [
        [f"{group}={p.stem}"]
        for group in ("dataset", "regularizer")
        for p in sorted((CONFIG_DIR / group).glob("*.yaml"))
    ]
    experiments = sorted((CONFIG_DIR / "experiment").rglob("*.yaml"))
    rel = [p.relative_to(CONFIG_DIR / "experiment").with_suffix("") for p in experiments]
    return groups + [[f"experiment={r}"] for r in rel]


@pytest.mark.parametrize("overrides", shipped_choices(), ids=lambda o: o[0])
def test_every_shipped_config_is_within_the_ranges(tmp_path, overrides):
    cfg = compose_config("train", tmp_path / "run", overrides)
    assert problems(cfg) == []


def test_the_command_line_says_key_value_and_range_and_exits_1(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [str(BIN / "waebench-train"), "model.latent_dim=0", "regularizer.weight=-1",
         f"hydra.run.dir={run_dir}", "trainer.accelerator=cpu"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "model.latent_dim=0: must be an integer >= 1" in output
    assert "regularizer.weight=-1: must be a finite number >= 0" in output
    assert "Traceback" not in output
    assert not run_dir.exists()  # no folder, no .hydra/, no train.log


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["eval.inception.num_samples=0"], "eval.inception.num_samples=0: must be"),
        ([], "give ckpt_path=<run directory or .ckpt>, or images="),
        (["ckpt_path=auto"], "ckpt_path=auto means the run's own folder in waebench-train"),
    ],
)
def test_a_refused_evaluation_says_why_and_leaves_no_folder(tmp_path, arguments, expected):
    eval_dir = tmp_path / "eval"
    ckpt = [] if not arguments or arguments[0].startswith("ckpt_path") else [
        f"ckpt_path={tmp_path / 'no-such-run'}"
    ]  # fmt: skip
    result = subprocess.run(
        [str(BIN / "waebench-eval"), *ckpt, *arguments, f"hydra.run.dir={eval_dir}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1 and expected in output, output
    assert "Traceback" not in output
    assert not eval_dir.exists()  # no folder, no eval.log


def test_a_refused_relaunch_into_a_completed_run_leaves_its_folder_as_it_was(train_config):
    """waebench-train into the folder of a completed run with another config: refused with
    the message alone, and every file of the folder (its .hydra/ included, which the page's
    reproduce command reads) stays byte for byte."""
    cfg = train_config()
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert run_dir / ".hydra" / "overrides.yaml" in before
    result = subprocess.run(
        [str(BIN / "waebench-train"), *TINY, "trainer.max_epochs=3", "ckpt_path=auto",
         f"paths.log_dir={run_dir.parent}", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert f"{run_dir} already holds a run of another configuration (differs in: " in output
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_waebench_eval_says_what_ckpt_path_auto_means_there():
    with pytest.raises(CheckpointNotFoundError, match="give the run folder, ckpt_path=<run"):
        checkpoint_of("auto")


# Hole 6: damaged files are named, with what to do.
def test_truncated_or_garbage_gzip_idx_is_named(tmp_path):
    folder = write_mnist_layout(tmp_path / "mnist")
    images = folder / "train-images-idx3-ubyte.gz"
    whole = images.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"garbage, not gzip at all" * 10):
        images.write_bytes(damaged)
        dm = ImageDataModule("mnist", image_size=28, channels=1, root=str(folder), val_size=20)
        with pytest.raises(CorruptFileError) as error:
            dm.setup()
        message = str(error.value)
        assert str(images) in message and "download it again" in message


def test_idx_whose_header_and_size_disagree_is_named(tmp_path):
    folder = write_mnist_layout(tmp_path / "mnist")
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(labels, "rb") as f:
        data = f.read()
    with gzip.open(labels, "wb") as f:  # a whole gzip stream of a cut IDX file
        f.write(data[:-7])
    dm = ImageDataModule("mnist", image_size=28, channels=1, root=str(folder), val_size=20)
    with pytest.raises(CorruptFileError, match="header says shape"):
        dm.setup()


def test_damaged_celeba_jpegs_are_all_listed_before_any_decoding(tmp_path):
    root = write_celeba_layout(tmp_path / "celeba", counts=(6, 2, 2))
    truncated, garbage = (
        root / "img_align_celeba" / "000002.jpg",
        root / "img_align_celeba" / "000005.jpg",
    )
    truncated.write_bytes(truncated.read_bytes()[:3000])
    garbage.write_bytes(b"<html>quota exceeded</html>")
    dm = ImageDataModule("celeba", image_size=64, channels=3, root=str(root))
    with pytest.raises(CorruptFileError) as error:
        dm.setup()
    message = str(error.value)
    assert f"{truncated}: truncated JPEG" in message
    assert f"{garbage}: not a JPEG file" in message
    assert "img_align_celeba.zip" in message
    assert not (root / "cache").exists()


def test_a_jpeg_that_fails_to_decode_is_named(tmp_path):
    root = write_celeba_layout(tmp_path / "celeba", counts=(3, 1, 1))
    broken = root / "img_align_celeba" / "000001.jpg"
    data = bytearray(broken.read_bytes())
    data[2:-2] = b"\x00" * (len(data) - 4)  # markers intact, the rest zeros
    broken.write_bytes(bytes(data))
    dm = ImageDataModule("celeba", image_size=64, channels=3, root=str(root))
    with pytest.raises(CorruptFileError, match=str(broken)):
        dm.setup()


def test_a_missing_run_folder_is_named_itself(tmp_path):
    missing = tmp_path / "runs" / "2026-01-01_00-00-00"
    with pytest.raises(FileNotFoundError) as error:
        run_dir_of(missing)
    message = str(error.value)
    assert f"{missing} does not exist" in message
    assert f"in {tmp_path}" not in message  # not its parent's parent


def test_a_corrupt_inception_weights_file_is_named(tmp_path, monkeypatch):
    good = tmp_path / "good.pth"
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, good)
    assert inception_weights_path(str(good)) == good
    truncated, garbage = tmp_path / "truncated.pth", tmp_path / "garbage.pth"
    truncated.write_bytes(good.read_bytes()[:-200])
    garbage.write_bytes(b"<html>rate limited</html>")
    for path in (truncated, garbage):
        with pytest.raises(InceptionWeightsError) as error:
            inception_weights_path(str(path))
        assert f"{path} (eval.inception.weights) is not a readable weights file" in str(error.value)
        assert "Download it again" in str(error.value)
    monkeypatch.setenv("WAEBENCH_INCEPTION_WEIGHTS", str(garbage))
    with pytest.raises(InceptionWeightsError, match="WAEBENCH_INCEPTION_WEIGHTS"):
        inception_weights_path(None)


# Hole 8: the README's spelling of the weights key works, and so does the older one.
@pytest.mark.parametrize("key", ["eval.inception.weights", "eval.inception_weights"])
@pytest.mark.parametrize("entry_point", ["train", "eval"])
def test_both_spellings_of_the_inception_weights_key(tmp_path, key, entry_point):
    cfg = compose_config(entry_point, tmp_path / "run", [f"{key}=/data/w.pth"])
    assert cfg.eval.inception.weights == "/data/w.pth"


def test_no_message_names_a_development_machine_path():
    src = Path(__file__).resolve().parents[1] / "src"
    offenders = [
        f"{path}:{number}"
        for path in src.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "../shared" in line or "/work/" in line
    ]
    assert offenders == []
