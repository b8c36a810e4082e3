"""Evaluation of trained models: metrics and their settings, figures and their sizes,
the evaluation at the end of training (and its failure), `waebench-eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    REPO,
    TINY,
    compose_config,
    compose_train_config,
    write_celeba_layout,
)
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from PIL import Image

from waebench.eval import evaluate_checkpoint
from waebench.evaluation import evaluate
from waebench.evaluation.images import load_images
from waebench.evaluation.normality import mardia_kurtosis, mardia_skewness
from waebench.evaluation.settings import EvalSettings
from waebench.regularizers.mmd import PAPER_SCALES
from waebench.samplers import PriorSampler
from waebench.train import build_model, train

# Classifier FID on few images, no Inception: seconds on a CPU.
QUICK_EVAL = [
    "eval=quick",
    "eval.inception.enabled=false",
    "eval.classifier.num_samples=200",
    "eval.classifier.train_steps=40",
    "eval.latent_mmd_codes=300",
    "eval.figures.scatter_points=300",
]
FID_SETTINGS = {"value", "extractor", "num_fake", "num_real", "real", "seed", "checkpoint"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def config(tmp_path: Path, cache_dir: Path, *overrides: str, run: str = "run"):
    return compose_train_config(
        tmp_path / run, [*TINY, *QUICK_EVAL, f"eval.cache_dir={cache_dir}", *overrides]
    )


def imq_mmd_reference(x: np.ndarray, y: np.ndarray, base: float) -> float:
    """Unbiased MMD^2 with sum_s C s / (C s + ||a - b||^2), in NumPy."""

    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(base * s / (base * s + d2) for s in PAPER_SCALES)

    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within_x + within_y - 2 * k(x, y).mean())


def test_evaluate_reports_every_metric_with_its_settings(tmp_path, cache_dir):
    cfg = config(
        tmp_path, cache_dir, "eval.samplers=[auto,gmm]", "eval.fid.interpolations=true",
        "eval.kid=true", "eval.prc=true",
    )  # fmt: skip
    model, datamodule = build_model(cfg).eval(), instantiate(cfg.dataset)
    results, notes = evaluate(model, datamodule, EvalSettings.from_config(cfg.eval), tmp_path)

    space = "@classifier-digits"
    for source, recorded in (
        ("samples/prior", set()),
        ("samples/gmm", {"sampler"}),  # its options: a GMM of other settings is another column
        ("reconstructions", {"reconstruction"}),  # how the images were made (docs/protocols.md)
        ("interpolations", {"interpolation"}),
    ):
        entry = results[f"fid/{source}{space}"]
        assert set(entry) == FID_SETTINGS | recorded
        assert np.isfinite(entry["value"]) and entry["value"] > 0
        assert entry["extractor"] == "classifier-digits" and entry["real"] == "digits:test"
        assert entry["num_fake"] == 200 and entry["num_real"] == 359
        assert entry["checkpoint"] == "last"
        assert {"std"} | FID_SETTINGS | recorded == set(results[f"kid/{source}{space}"])
        for name in ("precision", "recall"):
            assert 0 <= results[f"prc/{source}/{name}{space}"]["value"] <= 1
    assert "kl/test" not in results  # a deterministic encoder
    assert any("Inception" not in n and "test accuracy" in n for n in notes)

    x = datamodule.to_float(datamodule.splits["test"][0])
    with torch.no_grad():
        codes = model.encode(x)
        mse = (model.reconstruct(x) - x).pow(2).mean().item()
    assert results["mse/test"]["value"] == pytest.approx(mse, rel=1e-5)
    assert results["rec/test"]["value"] == pytest.approx(
        0.05 * (model.reconstruct(x) - x).pow(2).flatten(1).sum(1).mean().item(), rel=1e-5
    )
    assert results["fid/samples/gmm" + space]["sampler"] == {"n_components": 10, "max_iter": 100}
    mmd = results["latent_mmd/test"]
    assert mmd["num_codes"] == 300 and mmd["base"] == 2 * 8 * 1.0
    prior = PriorSampler(model.prior).sample(300, seed=0).double().numpy()
    expected = imq_mmd_reference(codes[:300].double().numpy(), prior, base=16.0)
    assert mmd["value"] == pytest.approx(expected, rel=1e-6)


def test_mardia_statistics_follow_the_official_definitions():
    """b_1 through the third-moment tensor (sum_ij (z_i^T z_j)^3 = ||sum_i z_i (x) z_i (x)
    z_i||^2, another route to the same number); at the prior the skewness is its diagonal
    d(d+2)(d+4)/N in expectation and the kurtosis close to 0; wider codes score worse."""
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(128, 8, generator=generator, dtype=torch.float64)
    moment = torch.einsum("ia,ib,ic->abc", z, z, z)
    assert mardia_skewness(z) == pytest.approx(moment.pow(2).sum().item() / 128**2, rel=1e-9)
    assert mardia_kurtosis(z) == pytest.approx(abs(z.norm(dim=1).pow(4).mean().item() - 80))
    batches = torch.randn(200, 128, 8, generator=generator, dtype=torch.float64)
    skewness = sum(map(mardia_skewness, batches)) / len(batches)
    assert skewness == pytest.approx(8 * 10 * 12 / 128, rel=0.1)
    kurtosis = sum(map(mardia_kurtosis, batches)) / len(batches)
    assert kurtosis < 0.2 * sum(map(mardia_kurtosis, 2 * batches)) / len(batches)
    assert skewness < sum(map(mardia_skewness, batches + 0.5)) / len(batches)


def test_mardia_entries_and_the_fid_real_set_of_several_splits(tmp_path, cache_dir):
    cfg = config(
        tmp_path, cache_dir, "eval.fid.real_splits=[train,test]", "model.prior_var=4.0",
        "eval.fid.reconstructions=false", "eval.figures.enabled=false",
    )  # fmt: skip
    model, datamodule = build_model(cfg).eval(), instantiate(cfg.dataset)
    results, _ = evaluate(model, datamodule, EvalSettings.from_config(cfg.eval), tmp_path)
    counts = {split: len(images) for split, (images, _) in datamodule.splits.items()}
    entry = results["fid/samples/prior@classifier-digits"]
    assert entry["real"] == "digits:train+test"
    assert entry["num_real"] == counts["train"] + counts["test"] == 1617
    x = datamodule.to_float(datamodule.splits["test"][0])
    with torch.no_grad():
        codes = model.encode(x).double() / 2.0  # sigma_z = 2
    batches = codes[:256].split(128)  # the 359 test codes: two full batches
    skewness, kurtosis = results["mardia_skewness/test"], results["mardia_kurtosis/test"]
    assert skewness["value"] == pytest.approx(sum(map(mardia_skewness, batches)) / 2)
    assert kurtosis["value"] == pytest.approx(sum(map(mardia_kurtosis, batches)) / 2)
    assert skewness["num_codes"] == 256 and skewness["batch_size"] == 128
    assert skewness["codes"] == "deterministic" and skewness["real"] == "digits:test"
    assert kurtosis["standardisation"] == "none: the codes / sigma_z, against N(0, I)"


def test_vae_evaluation_reports_the_kl_term(tmp_path, cache_dir):
    cfg = config(tmp_path, cache_dir, "regularizer=kl", "eval.classifier.enabled=false")
    model, datamodule = build_model(cfg).eval(), instantiate(cfg.dataset)
    results, notes = evaluate(model, datamodule, EvalSettings.from_config(cfg.eval), tmp_path)
    assert not [k for k in results if k.startswith("fid/")]
    assert any("FID skipped" in note for note in notes)
    x = datamodule.to_float(datamodule.splits["test"][0])
    with torch.no_grad():
        mean, log_var = model.encoder(x).chunk(2, dim=1)
    # KL(N(m, s^2) || N(0, 1)) = 1/2 sum(s^2 + m^2 - 1 - log s^2), averaged over images.
    kl = 0.5 * (log_var.exp() + mean**2 - 1 - log_var).sum(1).mean().item()
    assert results["kl/test"]["value"] == pytest.approx(kl, rel=1e-5)
    assert results["latent_mmd/test"]["codes"] == "sampled"  # Q_Z, what the penalty matches
    assert results["latent_mmd_means/test"]["codes"] == "means"


def grid_size(rows: int, cols: int, image_size: int) -> tuple[int, int]:
    """(width, height) of a torchvision grid with 2-pixel padding."""
    return cols * (image_size + 2) + 2, rows * (image_size + 2) + 2


@pytest.mark.parametrize("dataset, image_size", [("digits", 28), ("celeba", 64)])
def test_figures_have_the_expected_sizes(tmp_path, cache_dir, dataset, image_size):
    data_dir = tmp_path / "data"
    write_celeba_layout(data_dir / "celeba", counts=(24, 8, 16))
    cfg = compose_train_config(
        tmp_path / "run",
        [*TINY, *QUICK_EVAL, f"dataset={dataset}", "eval.classifier.enabled=false"],
        data_dir=data_dir,
    )
    model, datamodule = build_model(cfg).eval(), instantiate(cfg.dataset)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    evaluate(model, datamodule, EvalSettings.from_config(cfg.eval), run_dir)
    n_test = 16 if dataset == "celeba" else 359
    expected = {
        "test_reconstructions.png": grid_size(2 * min(64, n_test) // 8, 8, image_size),
        "prior_samples.png": grid_size(8, 8, image_size),
        "interpolations.png": grid_size(2 * 8, 10, image_size),
        "latent_pca.png": (600, 600),
    }
    for name, size in expected.items():
        assert Image.open(run_dir / name).size == size, name
    assert Image.open(run_dir / "prior_samples.png").mode == "RGB"


@pytest.mark.slow
def test_training_survives_a_failed_evaluation_and_waebench_eval_completes_it(
    tmp_path, cache_dir, monkeypatch
):
    missing = tmp_path / "missing-weights.pth"
    cfg = config(
        tmp_path,
        cache_dir,
        "++eval.enabled=true",
        "eval.inception.enabled=true",
        f"eval.inception_weights={missing}",
    )
    metrics = train(cfg)
    run_dir = tmp_path / "run"
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved == metrics
    assert saved["status"] == "completed" and "rec" in saved["test"]
    assert "no such file" in saved["eval_error"] and "eval" not in saved
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()

    monkeypatch.chdir(tmp_path)  # a run folder given relative to the working directory
    eval_cfg = compose_config(
        "eval",
        tmp_path / "eval-run",
        ["ckpt_path=run", *QUICK_EVAL, f"eval.cache_dir={cache_dir}"],
    )
    evaluate_checkpoint(eval_cfg)
    after = json.loads((run_dir / "metrics.json").read_text())
    assert "eval_error" not in after and after["run_dir"] == str(run_dir.resolve())
    assert after["test"] == saved["test"] and after["checkpoints"] == saved["checkpoints"]
    assert after["eval"]["fid/samples/prior@classifier-digits"]["num_fake"] == 200
    assert after["eval"]["rec/test"]["value"] == pytest.approx(saved["test"]["rec"], rel=1e-4)
    for name in ("test_reconstructions", "prior_samples", "interpolations"):
        assert (run_dir / f"{name}.png").is_file()
    # One panel per loss term (loss, objective: validation only, penalty, rec) from the CSV log.
    assert Image.open(run_dir / "training_curves.png").size == (4 * 400, 350)


def test_images_load_from_npz_and_folders_in_any_layout(tmp_path):
    rng = np.random.default_rng(0)
    nchw = rng.integers(0, 256, (4, 3, 10, 12), dtype=np.uint8)
    np.savez(tmp_path / "nhwc.npz", nchw.transpose(0, 2, 3, 1))
    np.savez(tmp_path / "nchw.npz", images=nchw)
    np.savez(tmp_path / "gray.npz", nchw[:, 0])
    assert torch.equal(load_images(tmp_path / "nhwc.npz"), torch.from_numpy(nchw))
    assert torch.equal(load_images(tmp_path / "nchw.npz"), torch.from_numpy(nchw))
    assert load_images(tmp_path / "gray.npz").shape == (4, 1, 10, 12)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(nchw):
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i:03d}.png")
    assert torch.equal(load_images(folder), torch.from_numpy(nchw))
    np.savez(tmp_path / "float.npz", nchw / 255.0)
    with pytest.raises(ValueError, match="uint8"):
        load_images(tmp_path / "float.npz")


@pytest.mark.slow
def test_waebench_eval_scores_images_against_a_split(tmp_path, cache_dir):
    """The console script on the digits test set saved as .npz: FID against itself ~ 0."""
    cfg = config(tmp_path, cache_dir)
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    test_images = datamodule.splits["test"][0].numpy()
    np.savez(tmp_path / "test.npz", test_images.transpose(0, 2, 3, 1))
    command = [
        sys.executable,
        "-m",
        "waebench.eval",
        f"images={tmp_path / 'test.npz'}",
        "real=digits:test",
        *QUICK_EVAL,
        "eval.classifier.num_samples=1000",
        f"eval.cache_dir={cache_dir}",
        f"paths.log_dir={tmp_path / 'outputs'}",
        f"hydra.run.dir={tmp_path / 'outputs' / 'eval'}",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "outputs" / "eval" / "metrics.json").read_text())
    entry = metrics["eval"]["fid/images@classifier-digits"]
    assert entry["num_fake"] == entry["num_real"] == 359 and entry["real"] == "digits:test"
    assert abs(entry["value"]) < 1e-6
    assert OmegaConf.load(tmp_path / "outputs" / "eval" / ".hydra" / "config.yaml").real

    neither = subprocess.run(
        [sys.executable, "-m", "waebench.eval", f"hydra.run.dir={tmp_path / 'neither'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert neither.returncode != 0 and "ckpt_path=" in neither.stderr


def test_figures_and_values_go_to_an_offline_wandb_run(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    from lightning.pytorch.loggers import WandbLogger

    cfg = config(tmp_path, cache_dir, "eval.classifier.enabled=false")
    model, datamodule = build_model(cfg).eval(), instantiate(cfg.dataset)
    logger = WandbLogger(project="waebench-test", save_dir=str(tmp_path), offline=True)
    evaluate(model, datamodule, EvalSettings.from_config(cfg.eval), tmp_path, loggers=[logger])
    logger.experiment.finish()
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    logged = {p.name.split("_")[0] for p in (run / "files" / "media" / "images" / "eval").iterdir()}
    assert {"test", "prior", "interpolations", "latent"} <= logged


@pytest.mark.slow  # t-SNE: ~10 s
def test_latent_views_pca_and_tsne(tmp_path):
    from waebench.evaluation.figures import latent_scatter

    generator = torch.Generator().manual_seed(0)
    codes, prior = (
        torch.randn(120, 8, generator=generator),
        torch.randn(120, 8, generator=generator),
    )
    labels = torch.arange(120) % 10
    for method in ("pca", "tsne"):
        path = latent_scatter(codes, labels, prior, tmp_path / f"{method}.png", method)
        assert Image.open(path).size == (600, 600)
    with pytest.raises(ValueError, match="valid: pca, tsne"):
        latent_scatter(codes, labels, prior, tmp_path / "x.png", "umap")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_evaluation_on_a_gpu_matches_the_cpu(tmp_path, cache_dir):
    cfg = config(tmp_path, cache_dir, "eval.figures.enabled=false")
    model, datamodule = build_model(cfg).eval(), instantiate(cfg.dataset)
    on_cpu, _ = evaluate(model, datamodule, EvalSettings.from_config(cfg.eval), tmp_path)
    with open_dict(cfg):
        cfg.eval.device = "cuda"
    on_gpu, _ = evaluate(model, datamodule, EvalSettings.from_config(cfg.eval), tmp_path)
    assert next(model.parameters()).is_cuda
    for key, entry in on_cpu.items():
        assert on_gpu[key]["value"] == pytest.approx(entry["value"], rel=1e-3, abs=1e-4), key
