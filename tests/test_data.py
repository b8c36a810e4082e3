"""The loaders read the real on-disk formats; missing files give an error that says what to put where."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DEBIAN_FASHION_MNIST, write_celeba_layout, write_idx, write_mnist_layout

from waebench.data import DatasetNotFoundError, ImageDataModule
from waebench.data.idx import read_idx
from waebench.data.loader import InMemoryBatches


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


def test_missing_mnist_lists_the_expected_files(tmp_path):
    dm = ImageDataModule("mnist", 28, 1, root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError) as error:
        dm.setup()
    message = str(error.value)
    for expected in (
        "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        str(tmp_path / "nowhere"),
        "dataset.root=",
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


@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist"
)
def test_real_fashion_mnist_is_found_without_configuration():
    dm = ImageDataModule("fashion_mnist", 28, 1, root=None, val_size=5000)
    dm.setup()
    assert {k: len(v[0]) for k, v in dm.splits.items()} == {
        "train": 55000,
        "val": 5000,
        "test": 10000,
    }
    assert sorted(dm.splits["test"][1].unique().tolist()) == list(range(10))


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


def test_ddp_ranks_share_one_permutation_without_overlap():
    images = torch.zeros(12, 1, 1, 1, dtype=torch.uint8)
    ranks = [
        InMemoryBatches(images, torch.arange(12), 2, shuffle=True, rank=r, world_size=2)
        for r in (0, 1)
    ]
    seen = [{i for b in loader for i in b[1].tolist()} for loader in ranks]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 12
