"""One LightningDataModule for every dataset.

Each dataset is read once into uint8 tensors [N, C, H, W]; batches are sliced
from them and turned into floats in the dataset's value range on the device
(`on_after_batch_transfer`), so the host moves 4x fewer bytes. On a GPU the
uint8 splits live on the device when they fit (`on_device`, see `placement`).

Splits: the official test sets (CelebA: also its official validation set);
image_folder: test and validation fractions of its files (`image_folder`);
elsewhere the validation set is `val_size` images drawn from the training set
with `split_seed`, and the rest is the training set; `val_size: 0` holds none out and
validates on the test split (the CWAE code's protocol: all 60,000 MNIST training images). `pad` adds that many rows and
columns of zeros on each side of every image, once (RAE's MNIST: 28x28 -> 32x32).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from waebench.config_check import ConfigValueError
from waebench.data import celeba, digits, idx, image_folder, placement
from waebench.data.download import DOWNLOADERS, ensure
from waebench.data.loader import InMemoryBatches

Splits = dict[str, tuple[torch.Tensor, torch.Tensor]]


def _load_idx(name: str) -> Callable[[ImageDataModule], Splits]:
    def load(dm: ImageDataModule) -> Splits:
        folder = idx.locate(name, idx.search_roots(name, dm.root))
        return idx.load_idx_splits(name, folder)

    return load


def _load_celeba(dm: ImageDataModule) -> Splits:
    folder = celeba.locate([Path(dm.root)] if dm.root else [])
    splits = {}
    for split in ("train", "val", "test"):
        images = celeba.load_split(folder, split, dm.image_size, workers=dm.preprocess_workers)
        splits[split] = (images, torch.full((len(images),), -1, dtype=torch.int64))
    return splits


def _load_digits(dm: ImageDataModule) -> Splits:
    return digits.load_splits(dm.image_size)


def _load_image_folder(dm: ImageDataModule) -> Splits:
    return image_folder.load_splits(
        dm.root, dm.image_size, dm.channels, dm.val_fraction, dm.test_fraction,
        dm.split_seed, dm.preprocess_workers,
    )  # fmt: skip


DATASETS: dict[str, Callable[[ImageDataModule], Splits]] = {
    "digits": _load_digits,
    "mnist": _load_idx("mnist"),
    "fashion_mnist": _load_idx("fashion_mnist"),
    "celeba": _load_celeba,
    "image_folder": _load_image_folder,
}


class ImageDataModule(L.LightningDataModule):
    def __init__(
        self,
        name: str,
        image_size: int,
        channels: int,
        value_range: tuple[float, float] = (0.0, 1.0),
        root: str | None = None,
        batch_size: int = 100,
        eval_batch_size: int = 500,
        val_size: int = 5000,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        preprocess_workers: int = 0,
        on_device: str | bool = "auto",
        val_fraction: float = 0.1,  # image_folder: the split fractions
        test_fraction: float = 0.1,
        download: bool = False,
        pad: int = 0,
    ) -> None:
        super().__init__()
        if name not in DATASETS:
            raise ValueError(
                f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}"
            )
        if not isinstance(download, bool):
            raise ValueError(f"dataset.download must be true or false, got {download!r}")
        if download and (name not in DOWNLOADERS or not root):
            raise ValueError(
                f"dataset.download=true: only {' and '.join(DOWNLOADERS)} download their "
                f"files, into dataset.root; {name}'s are placed by hand (README, 'Datasets')"
            )
        self.name, self.root = name, root
        self.image_size, self.channels = image_size, channels
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.split_seed, self.shuffle_seed = val_size, split_seed, shuffle_seed
        self.preprocess_workers = preprocess_workers
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.on_device = placement.parse_on_device(on_device)
        self.download = download
        self.pad = pad
        self.splits: Splits = {}
        self.device_splits: Splits = {}  # copies of `splits` on the training GPU, if there

    def prepare_data(self) -> None:
        """With `download`: fetch the files unless found (Lightning calls this on one process
        per node before `setup` on all; `setup` calls it too, for use without a trainer)."""
        if self.download:
            ensure(self.name, Path(self.root))

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.prepare_data()
        splits = DATASETS[self.name](self)
        if "val" not in splits and self.val_size == 0:
            splits["val"] = splits["test"]
        if "val" not in splits:
            images, labels = splits["train"]
            if not 0 < self.val_size < len(images):
                raise ValueError(
                    f"{self.name}: val_size={self.val_size} must be in 0..{len(images) - 1}"
                )
            order = torch.randperm(
                len(images), generator=torch.Generator().manual_seed(self.split_seed)
            )
            val, train = order[: self.val_size], order[self.val_size :]
            splits["train"], splits["val"] = (
                (images[train], labels[train]),
                (images[val], labels[val]),
            )
        for split, (images, _) in splits.items():
            if self.pad:
                images = F.pad(images, (self.pad,) * 4)
                splits[split] = (images, splits[split][1])
                if images.shape[-1] != self.image_size:
                    raise ValueError(
                        f"{self.name}: dataset.pad={self.pad} makes the images "
                        f"{images.shape[-1]}x{images.shape[-1]}, but dataset.image_size="
                        f"{self.image_size}; set dataset.image_size={images.shape[-1]}"
                    )
            if images.shape[1:] != (self.channels, self.image_size, self.image_size):
                splits[split] = (self._resize(images), splits[split][1])
        self.splits = splits

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != self.channels:
            raise ValueError(
                f"{self.name}: images have {images.shape[1]} channels but the config says "
                f"dataset.channels={self.channels}"
            )
        resized = F.interpolate(
            images.float(), size=(self.image_size,) * 2, mode="bilinear", antialias=True
        )
        return resized.round().clamp(0, 255).to(torch.uint8)

    def _placed(self, device: torch.device) -> tuple[Splits, bool]:
        """The splits to batch from on `device`, and whether batches need pinning."""
        if device.type != "cuda":
            return self.splits, False
        if not self.device_splits:
            needed = sum(t.nbytes for pair in self.splits.values() for t in pair)
            if not placement.keep_on_device(self.on_device, needed, device):
                return self.splits, True
            self.device_splits = {
                split: (images.to(device), labels.to(device))
                for split, (images, labels) in self.splits.items()
            }
        return self.device_splits, False

    def _loader(self, split: str, shuffle: bool, batches_per_step: int = 1) -> InMemoryBatches:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        splits, pin = self._placed(device)
        images, labels = splits[split]
        batch_size = self.batch_size if shuffle else self.eval_batch_size
        return InMemoryBatches(
            images,
            labels,
            batch_size,
            shuffle=shuffle,
            seed=self.shuffle_seed,
            drop_last=shuffle,
            rank=rank,
            world_size=world,
            epoch_fn=lambda: trainer.current_epoch if trainer else 0,
            pin=pin,
            batches_per_step=batches_per_step,
        )

    def train_dataloader(self) -> InMemoryBatches:
        """Training batches, `batches_per_step` of them stacked in each item when the trained
        model takes that many optimizer steps a training step (`model.batches_per_step`)."""
        count = len(self.splits["train"][0])
        if count < self.batch_size:  # the last partial batch of an epoch is dropped
            raise ConfigValueError(
                f"{self.name}: {count} training images give no batch of "
                f"dataset.batch_size={self.batch_size}: lower dataset.batch_size"
            )
        model = getattr(self.trainer, "lightning_module", None)
        return self._loader("train", True, getattr(model, "batches_per_step", 1))

    def val_dataloader(self) -> InMemoryBatches:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> InMemoryBatches:
        return self._loader("test", shuffle=False)

    def to_float(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] -> float in `value_range`."""
        low, high = self.value_range
        return images.float() * ((high - low) / 255.0) + low

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        return self.to_float(images), labels
