"""`dataset.download=true`: MNIST and Fashion-MNIST fetched by torchvision's own downloaders
(`torchvision.datasets.MNIST` / `FashionMNIST` with `download=True`: their mirrors, their md5
checks of the .gz files, their progress bars) into the folder waebench reads, `dataset.root`.

torchvision downloads into a fresh temporary folder inside `dataset.root`; the decompressed
files are checked there against the originals' checksums (`idx.mismatch`) and only then
moved in, one atomic rename each. A download that fails half-way or brings a wrong file raises
DownloadError and leaves nothing that a later run would take for the dataset, so the next try
starts clean (a killed process leaves a `.download-*` folder, which no loader reads: delete
it). Files already in `dataset.root` are kept; only the missing ones are moved in.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from torchvision import datasets

from waebench.data import idx
from waebench.data.errors import DatasetNotFoundError, DownloadError

DOWNLOADERS = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}


def ensure(name: str, root: Path) -> None:
    """Download dataset `name` into `root` unless `idx.locate` finds it already."""
    try:
        idx.locate(name, idx.search_roots(name, root))
    except DatasetNotFoundError:
        download(name, root)


def download(name: str, root: Path) -> None:
    downloader = DOWNLOADERS[name]
    urls = ", ".join(f"{mirror}<file>.gz" for mirror in downloader.mirrors)
    retry = (
        f"Nothing was written to {root}: run again to retry (the download starts over), or put "
        f"the four files there yourself (README, 'Datasets')."
    )
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=root) as tmp:
        try:
            downloader(tmp, train=True, download=True)
        except Exception as error:  # torchvision's errors name the file and each mirror tried
            raise DownloadError(
                f"{name}: torchvision's download from {urls} failed:\n{error}\n{retry}"
            ) from error
        raw = Path(tmp) / downloader.__name__ / "raw"
        for stem in idx.STEMS:
            if problem := idx.mismatch(name, stem, (raw / stem).read_bytes()):
                raise DownloadError(
                    f"{name}: {stem}.gz, downloaded from {urls}, passed torchvision's check "
                    f"but is not the original: {problem}.\n{retry}"
                )
        for stem in idx.STEMS:
            if idx.find(root, stem) is None:
                os.replace(raw / stem, root / stem)
