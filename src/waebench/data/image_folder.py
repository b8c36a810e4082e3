"""Any folder of images (`dataset=image_folder dataset.root=...`): a user's own dataset.

Every PNG and JPEG file under the root is read (recursively; files and folders whose names
start with '.' are skipped), decoded with PIL, converted to grey (channels 1) or RGB
(channels 3), center-cropped to the largest square and resized to image_size (Lanczos),
into one uint8 tensor, like the other datasets. Labels are the immediate subfolder names,
as torchvision's ImageFolder has them (root/<class>/.../<image>), numbered in sorted order;
images lying in the root itself, or every image when there are no subfolders, get -1.

There is no official split: the sorted files are permuted with `split_seed` and cut into
test (`test_fraction`), validation (`val_fraction`) and training sets (the rest).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from waebench.config_check import ConfigValueError
from waebench.data.decode import decode_files
from waebench.data.errors import CorruptFileError, DatasetNotFoundError

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = {1: "L", 3: "RGB"}
FIX = (
    "give dataset.root=/path/to/images: a folder of .png/.jpg/.jpeg files, optionally one "
    "subfolder per class (root/<class>/<image>)"
)

Split = tuple[torch.Tensor, torch.Tensor]


def image_files(root: Path) -> list[Path]:
    """The PNG and JPEG files under `root`, sorted by their path relative to it."""
    found = [
        path.relative_to(root)
        for path in root.rglob("*")
        if path.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and path.is_file()
    ]
    return [root / p for p in sorted(found, key=lambda p: p.as_posix())]


def locate(root: str | Path | None) -> tuple[Path, list[Path]]:
    """The root folder and its image files; a missing or imageless folder raises
    DatasetNotFoundError naming it and the fix."""
    if root is None:
        raise DatasetNotFoundError(f"image_folder: dataset.root is not set. Fix: {FIX}.")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetNotFoundError(f"image_folder: {root} is not a folder. Fix: {FIX}.")
    files = image_files(root)
    if not files:
        others = sorted(p.name for p in root.rglob("*") if p.is_file())
        seen = (
            f"; it holds {len(others)} other file(s), e.g. {', '.join(others[:3])}"
            if others
            else ""
        )
        raise DatasetNotFoundError(
            f"image_folder: no PNG or JPEG images under {root} (searched recursively for "
            f"{', '.join(SUFFIXES)}){seen}. Fix: {FIX}."
        )
    return root, files


def decode(path: Path, image_size: int, channels: int) -> np.ndarray:
    """One image as uint8 [image_size, image_size, channels]."""
    try:
        with Image.open(path) as image:
            image = image.convert(MODES[channels])
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as error:
        raise CorruptFileError.of(
            path, f"cannot decode ({error})", "replace it or delete it from the folder"
        ) from None
    if image.size != (image_size, image_size):
        image = ImageOps.fit(image, (image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).reshape(image_size, image_size, channels)


def labels_of(root: Path, files: list[Path]) -> tuple[torch.Tensor, list[str]]:
    """Each file's class index (its immediate subfolder, sorted) or -1, and the class names."""
    folders = [f.relative_to(root).parts[0] if f.parent != root else None for f in files]
    classes = sorted({c for c in folders if c is not None})
    index = {name: i for i, name in enumerate(classes)}
    labels = [index[c] if c is not None else -1 for c in folders]
    return torch.tensor(labels, dtype=torch.int64), classes


def split_sizes(count: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(validation, test) image counts: at least one each, at least one training image left."""
    n_val, n_test = max(1, round(count * val_fraction)), max(1, round(count * test_fraction))
    if n_val + n_test >= count:
        raise ConfigValueError(
            f"image_folder: {count} images cannot be split into training, validation "
            f"(dataset.val_fraction={val_fraction}) and test (dataset.test_fraction="
            f"{test_fraction}) sets with at least one image each: add images or lower the "
            "fractions"
        )
    return n_val, n_test


def load_splits(
    root: str | Path | None,
    image_size: int,
    channels: int,
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
    workers: int = 0,
) -> dict[str, Split]:
    """{'train', 'val', 'test'}: (uint8 images [N, C, S, S], int64 labels [N])."""
    if channels not in MODES:
        raise ConfigValueError(
            f"image_folder: dataset.channels={channels}: must be 1 (grey) or 3 (RGB)"
        )
    root, files = locate(root)
    n_val, n_test = split_sizes(len(files), val_fraction, test_fraction)
    images = decode_files(decode, files, image_size, channels, workers=workers)
    labels, classes = labels_of(root, files)
    log.info(
        "image_folder: %d images from %s, %s",
        len(files), root, f"{len(classes)} classes ({', '.join(classes[:10])})" if classes
        else "no class subfolders (labels -1)",
    )  # fmt: skip
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(split_seed))
    parts_of = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    return {split: (images[idx], labels[idx]) for split, idx in parts_of.items()}
