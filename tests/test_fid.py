"""FID through torch-fidelity: the value against an independent float64 NumPy/SciPy
computation, its behaviour (0 on itself, growing with noise), uint8 handling, the
real-statistics cache, the classifier feature space, and the Inception network."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import INCEPTION_WEIGHTS, needs_inception_weights, needs_real_data
from torchvision.transforms.functional import gaussian_blur

from waebench.data import ImageDataModule
from waebench.evaluation import classifier
from waebench.evaluation.fid import (
    INCEPTION,
    FeatureSpace,
    InceptionWeightsError,
    RealImages,
    UInt8Images,
    fidelity_metrics,
    require_inception_weights,
    to_uint8,
)

CLASSIFIER_STEPS = 40


@pytest.fixture(scope="module")
def digits() -> ImageDataModule:
    datamodule = ImageDataModule("digits", 28, 1, val_size=180)
    datamodule.setup()
    return datamodule


@pytest.fixture(scope="module")
def space(digits, tmp_path_factory) -> FeatureSpace:
    """The classifier feature space of the digits (a briefly trained classifier)."""
    cache = tmp_path_factory.mktemp("classifier-cache")
    weights, _ = classifier.classifier_weights(digits, cache, steps=CLASSIFIER_STEPS)
    return FeatureSpace(classifier.extractor_name("digits"), str(weights), weights.stem)


def noisy(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return (images.float() + sigma * noise).round().clamp(0, 255).to(torch.uint8)


def fid(fake, real, space, cache_dir) -> float:
    return fidelity_metrics(fake, real, space, cache_dir)["frechet_inception_distance"]


def reference_fid(features_1: np.ndarray, features_2: np.ndarray) -> float:
    """||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) in float64 with scipy's sqrtm."""
    mu_1, mu_2 = features_1.mean(0), features_2.mean(0)
    s_1, s_2 = np.cov(features_1, rowvar=False), np.cov(features_2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_1 @ s_2).real
    return float(((mu_1 - mu_2) ** 2).sum() + np.trace(s_1 + s_2 - 2 * covmean))


def classifier_features(space: FeatureSpace, images: torch.Tensor) -> np.ndarray:
    network = classifier.SmallCNN()
    network.load_state_dict(torch.load(space.weights_path)["state_dict"])
    with torch.no_grad():
        return network.eval().features(images).double().numpy()


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # dead ReLU units: rank-deficient S
def test_frechet_distance_matches_an_independent_float64_computation(digits, space, tmp_path):
    real_images = digits.splits["test"][0]
    fake = noisy(digits.splits["train"][0][:300], sigma=20)
    ours = fid(fake, RealImages("digits:test", real_images), space, tmp_path)
    reference = reference_fid(
        classifier_features(space, fake), classifier_features(space, real_images)
    )
    assert reference > 1.0
    assert ours == pytest.approx(reference, rel=1e-6)


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_noise(digits, space, tmp_path):
    real = RealImages("digits:test", digits.splits["test"][0])
    values = [fid(noisy(real.images, sigma), real, space, tmp_path) for sigma in (0, 10, 40, 120)]
    assert abs(values[0]) < 1e-6 * values[1]
    assert values[1] < values[2] < values[3]


def test_images_reach_torch_fidelity_as_uint8_once(digits):
    images = digits.splits["test"][0][:5]
    # The datamodule's floats and back: exactly the original pixels (no double scaling).
    assert torch.equal(to_uint8(digits.to_float(images), digits.value_range), images)
    assert torch.equal(
        to_uint8(torch.tensor([-1.0, 0.0, 1.0]), (-1.0, 1.0)), torch.tensor([0, 128, 255])
    )
    item = UInt8Images(images)[0]
    assert item.dtype == torch.uint8 and item.shape == (3, 28, 28)
    assert torch.equal(item[0], item[1]) and torch.equal(item[0], item[2])
    assert torch.equal(item[0], images[0, 0])
    with pytest.raises(ValueError, match="to_uint8"):
        UInt8Images(digits.to_float(images))


def test_the_real_statistics_cache_is_used_on_the_second_evaluation(digits, space, tmp_path):
    test_images, train_images = digits.splits["test"][0][:200], digits.splits["train"][0][:200]
    fake = noisy(train_images, sigma=30)
    first = fid(fake, RealImages("digits:test", test_images), space, tmp_path)
    cached = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert any("stat-fid" in name and "digits-test-n200-1x28x28" in name for name in cached)
    # Same cache entry (name, count, size), other pixels: only a cache hit gives `first` back.
    impostor = RealImages("digits:test", train_images)
    assert fid(fake, impostor, space, tmp_path) == first
    assert fid(fake, impostor, space, tmp_path / "fresh") != pytest.approx(first)
    # Another image count is another entry.
    fid(fake, RealImages("digits:test", test_images[:100]), space, tmp_path)
    assert any("digits-test-n100-1x28x28" in p.name for p in tmp_path.glob("*stat-fid*.pt"))


def _fid_in_a_new_process(args) -> float:
    images, weights, cache_dir = args
    space = FeatureSpace(classifier.extractor_name("digits"), weights, "tag")
    return fid(noisy(images, 30), RealImages("digits:test", images), space, cache_dir)


@pytest.mark.slow
def test_concurrent_jobs_compute_the_cache_once_and_agree(digits, space, tmp_path):
    images = digits.splits["test"][0]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        values = pool.map(_fid_in_a_new_process, [(images, space.weights_path, tmp_path)] * 3)
    assert values[0] == values[1] == values[2]
    assert len(list(tmp_path.glob("*stat-fid*.pt"))) == 1
    assert not [p for p in tmp_path.iterdir() if p.suffix not in (".pt", ".lock")]


def test_the_classifier_trains_caches_and_reloads(digits, space):
    weights = Path(space.weights_path)
    cache_dir = weights.parent.parent
    meta = torch.load(weights)["meta"]
    assert meta["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert meta["dataset"] == "digits" and meta["steps"] == CLASSIFIER_STEPS
    mtime = weights.stat().st_mtime_ns
    again, meta_again = classifier.classifier_weights(digits, cache_dir, steps=CLASSIFIER_STEPS)
    assert again == weights and again.stat().st_mtime_ns == mtime and meta_again == meta
    other_steps, _ = classifier.classifier_weights(digits, cache_dir, steps=5)
    assert other_steps != weights  # other settings, another cache entry
    # torch-fidelity's extractor reloads it and gives the network's features.
    extractor = classifier.ClassifierFeatureExtractor(
        "classifier-digits", [classifier.FEATURES], feature_extractor_weights_path=str(weights)
    )
    images = digits.splits["test"][0][:8]
    with torch.no_grad():
        (features,) = extractor(images.expand(-1, 3, -1, -1))
    expected = classifier_features(FeatureSpace("x", str(weights)), images)
    assert np.allclose(features.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_the_classifier_needs_a_labelled_mnist_family_dataset(tmp_path):
    celeba = ImageDataModule("celeba", 64, 3, value_range=(-1.0, 1.0))
    with pytest.raises(ValueError, match="MNIST-family"):
        classifier.classifier_weights(celeba, tmp_path)


def test_missing_inception_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.delenv("WAEBENCH_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("WAEBENCH_BUNDLE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(InceptionWeightsError, match="no such file"):
        require_inception_weights(str(tmp_path / "missing.pth"))
    monkeypatch.setenv("WAEBENCH_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(InceptionWeightsError, match="WAEBENCH_INCEPTION_WEIGHTS"):
        require_inception_weights(None)
    monkeypatch.delenv("WAEBENCH_INCEPTION_WEIGHTS")
    try:
        path = require_inception_weights(None)
    except InceptionWeightsError as error:
        message = str(error)
        assert "WAEBENCH_INCEPTION_WEIGHTS" in message and "eval.inception.weights" in message
    else:
        pytest.skip(f"this machine has network: torch-fidelity downloaded {path}")


@pytest.mark.slow
@needs_inception_weights
@needs_real_data("fashion_mnist")
def test_inception_fid_of_real_fashion_mnist(tmp_path):
    datamodule = ImageDataModule("fashion_mnist", 28, 1)
    datamodule.setup()
    images = datamodule.splits["test"][0][:40]  # ~0.2-0.7 s per image on this CPU
    real = RealImages("fashion_mnist:test", images)
    space = FeatureSpace(INCEPTION, os.fspath(INCEPTION_WEIGHTS))
    itself = fid(images, real, space, tmp_path)
    blurred = fid(gaussian_blur(images, kernel_size=5, sigma=1.5), real, space, tmp_path)
    assert abs(itself) < 1e-2
    assert blurred > 20.0
