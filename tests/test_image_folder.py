"""dataset=image_folder reads real PNG and JPEG files written here with PIL: recursively, with
class-subfolder labels, converted, center-cropped and resized, split by fractions and seed;
missing, empty, too small or damaged folders are named with the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY, compose_train_config
from PIL import Image

from waebench.config_check import ConfigValueError
from waebench.data import DatasetNotFoundError, ImageDataModule
from waebench.data.errors import CorruptFileError
from waebench.train import train


def save(path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array.astype(np.uint8))
    (image.convert(mode) if mode else image).save(path)


def noise(rng, height: int, width: int, channels: int | None = 3) -> np.ndarray:
    shape = (height, width) if channels is None else (height, width, channels)
    return rng.integers(0, 256, shape)


@pytest.fixture
def folder(tmp_path):
    """cat/ (RGB PNG, RGBA PNG, palette PNG), dog/ (grey JPEG, in a subfolder too, .JPG),
    one image in the root itself, and what must be skipped: a hidden folder, a text file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for i in range(4):
        save(root / "cat" / f"{i}.png", noise(rng, 30, 40))
    save(root / "cat" / "alpha.png", noise(rng, 20, 20, 4))
    save(root / "cat" / "palette.png", noise(rng, 20, 20), mode="P")
    for i in range(3):
        save(root / "dog" / f"{i}.jpg", noise(rng, 28, 28, None))
    save(root / "dog" / "more" / "deep.JPG", noise(rng, 50, 28))
    save(root / "loose.jpeg", noise(rng, 16, 16))
    save(root / ".thumbnails" / "skip.png", noise(rng, 16, 16))
    (root / "notes.txt").write_text("not an image\n")
    return root


def datamodule(root, **options) -> ImageDataModule:
    settings = {"image_size": 16, "channels": 3, "val_fraction": 0.2, "test_fraction": 0.2}
    dm = ImageDataModule("image_folder", root=str(root), **{**settings, **options})
    dm.setup()
    return dm


def test_every_image_is_read_recursively_with_its_class(folder):
    dm = datamodule(folder)
    sizes = {split: len(images) for split, (images, _) in dm.splits.items()}
    assert sizes == {"train": 7, "val": 2, "test": 2}  # 11 images; hidden and text skipped
    images = torch.cat([dm.splits[s][0] for s in ("train", "val", "test")])
    labels = torch.cat([dm.splits[s][1] for s in ("train", "val", "test")])
    assert images.dtype == torch.uint8 and images.shape == (11, 3, 16, 16)
    assert sorted(labels.tolist()) == [-1] + [0] * 6 + [1] * 4  # loose, cat (0), dog (1)


def test_no_class_subfolders_gives_labels_minus_one(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(5):
        save(tmp_path / f"{i}.png", noise(rng, 16, 16))
    dm = datamodule(tmp_path)
    assert all((labels == -1).all() for _, labels in dm.splits.values())


def test_channels_are_converted_and_the_center_square_is_kept(tmp_path):
    """A 60x20 image, white but for 10 black columns at each side: all white once center-
    cropped (squeezed, the sides would show); an RGB colour becomes PIL's grey, L = 0.299 R
    + 0.587 G + 0.114 B."""
    wide = np.zeros((20, 60, 3))
    wide[:, 10:50] = 255
    save(tmp_path / "a" / "wide.png", wide)
    save(tmp_path / "a" / "colour.png", np.full((16, 16, 3), (200, 100, 50)))
    save(tmp_path / "a" / "grey.png", np.full((16, 16), 77), mode="L")
    by_size = {}
    for channels in (1, 3):
        dm = datamodule(tmp_path, image_size=10, channels=channels, val_fraction=0.3)
        images = torch.cat([images for images, _ in dm.splits.values()])
        by_size[channels] = {tuple(torch.unique(x).tolist()) for x in images}
    assert by_size[1] == {(255,), (124,), (77,)}
    assert by_size[3] == {(255,), (50, 100, 200), (77,)}


def test_the_split_is_fixed_by_the_seed_and_sized_by_the_fractions(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(20):
        save(tmp_path / f"{i:02d}.png", noise(rng, 16, 16))

    def test_set(seed: int) -> torch.Tensor:
        dm = datamodule(tmp_path, val_fraction=0.1, test_fraction=0.25, split_seed=seed)
        assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [13, 2, 5]
        return dm.splits["test"][0]

    assert torch.equal(test_set(0), test_set(0))
    assert not torch.equal(test_set(0), test_set(1))


def test_a_missing_or_imageless_folder_is_named_with_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=f"{tmp_path / 'nowhere'} is not a folder"):
        datamodule(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("images go here\n")
    with pytest.raises(DatasetNotFoundError) as error:
        datamodule(tmp_path / "empty")
    message = str(error.value)
    assert f"no PNG or JPEG images under {tmp_path / 'empty'}" in message
    assert "e.g. readme.md" in message and "Fix: give dataset.root=/path/to/images" in message


def test_too_few_images_a_damaged_file_and_bad_channels_are_named(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(2):
        save(tmp_path / f"{i}.png", noise(rng, 16, 16))
    with pytest.raises(ValueError, match="2 images cannot be split"):
        datamodule(tmp_path)
    save(tmp_path / "2.png", noise(rng, 16, 16))
    (tmp_path / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n but cut off")
    with pytest.raises(CorruptFileError, match=f"{tmp_path / '3.png'}: cannot decode"):
        datamodule(tmp_path, val_fraction=0.1, test_fraction=0.1)
    with pytest.raises(ValueError, match="dataset.channels=2: must be 1 .grey. or 3 .RGB."):
        datamodule(tmp_path, channels=2)


def test_a_batch_larger_than_the_training_set_is_refused(folder):
    with pytest.raises(ConfigValueError, match="7 training images give no batch of dataset.ba"):
        datamodule(folder, batch_size=8).train_dataloader()


def test_a_model_trains_on_an_image_folder(folder, tmp_path):
    cfg = compose_train_config(
        tmp_path / "run",
        [*TINY, "dataset=image_folder", f"dataset.root={folder}", "dataset.image_size=28",
         "dataset.channels=1", "dataset.val_fraction=0.2", "dataset.test_fraction=0.2",
         "dataset.batch_size=4"],
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["status"] == "completed"
    assert metrics["global_step"] == 1  # 7 training images, batches of 4, the last dropped
