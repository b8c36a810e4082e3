"""MNIST and Fashion-MNIST in their original IDX files (gzip-compressed or not).

Expected layout (the files as distributed by LeCun / Zalando, or Debian's
`dataset-fashion-mnist`)::

    <root>/train-images-idx3-ubyte.gz   <root>/train-labels-idx1-ubyte.gz
    <root>/t10k-images-idx3-ubyte.gz    <root>/t10k-labels-idx1-ubyte.gz

torchvision's layout (``<root>/MNIST/raw/...`` or ``<root>/FashionMNIST/raw/...``)
is found as well.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from waebench.data.errors import CorruptFileError, DatasetNotFoundError

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}

DOWNLOAD_HINTS = {
    "mnist": "MNIST: https://yann.lecun.com/exdb/mnist/ (or any mirror of the four files)",
    "fashion_mnist": "Fashion-MNIST: https://github.com/zalandoresearch/fashion-mnist, "
    "or on Debian/Ubuntu `apt-get install dataset-fashion-mnist`",
}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file: 2 zero bytes, a type code, the number of dimensions,
    one big-endian uint32 per dimension, then the data. A damaged file raises
    CorruptFileError naming it."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise CorruptFileError.of(path, f"truncated or not gzip data ({error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise CorruptFileError.of(path, f"not an IDX file (bad magic number {data[:4]!r})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[data[2]])
    body = len(data) - (4 + 4 * ndim)
    if body < 0 or body != int(np.prod(shape)) * dtype.itemsize:
        raise CorruptFileError.of(
            path, f"the header says shape {shape} but the file holds {max(body, 0)} data bytes"
        )
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _candidate_folders(name: str, root: Path) -> list[Path]:
    return [root, root / TORCHVISION_FOLDERS[name] / "raw"]


def locate(name: str, roots: list[Path]) -> Path:
    """The first folder among `roots` that holds all four IDX files of `name`."""
    stems = [
        f"{p}-{kind}"
        for p in SPLIT_PREFIX.values()
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
    ]
    for root in roots:
        for folder in _candidate_folders(name, root):
            if all(_find(folder, stem) for stem in stems):
                return folder
    searched = "\n".join(f"  {folder}" for r in roots for folder in _candidate_folders(name, r))
    files = "\n".join(f"  {stem}.gz" for stem in stems)
    raise DatasetNotFoundError(
        f"{name}: the IDX files were not found. Searched:\n{searched}\n"
        f"Expected these four files in one of those folders (gzip-compressed or not):\n{files}\n"
        f"Get them from {DOWNLOAD_HINTS[name]}, then pass dataset.root=/path/to/folder."
    )


def load_idx_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 1, 28, 28], labels int64 [N]) of the `train` or `test` split."""
    prefix = SPLIT_PREFIX[split]
    images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match"
        )
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))
