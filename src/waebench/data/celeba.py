"""CelebA: the aligned-and-cropped JPEGs with the official train/val/test partition.

Preprocessing as in the WAE paper: center crop 140x140 of the 178x218 aligned
images, resize to 64x64 (Lanczos). Decoding 200k JPEGs is slow, so the result
is cached once per split as one uint8 tensor file next to the images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from waebench.data.decode import decode_files
from waebench.data.errors import CorruptFileError, DatasetNotFoundError
from waebench.run.record import atomic_path

IMAGE_FOLDER = "img_align_celeba"
PARTITION_FILE = "list_eval_partition.txt"
PARTITION_CODES = {"train": 0, "val": 1, "test": 2}
CROP = 140
REEXTRACT = f"extract it again from img_align_celeba.zip into {IMAGE_FOLDER}/"


def locate(roots: list[Path]) -> Path:
    """The first of `roots` (or its `celeba/` subfolder, torchvision's layout) holding the files."""
    for root in roots:
        for folder in (root, root / "celeba"):
            if (folder / PARTITION_FILE).is_file() and (folder / IMAGE_FOLDER).is_dir():
                return folder
    searched = "\n".join(f"  {r}" for root in roots for r in (root, root / "celeba"))
    raise DatasetNotFoundError(
        "celeba: the aligned images and the partition file were not found. Searched:\n"
        f"{searched}\n"
        "Expected layout:\n"
        f"  <root>/{IMAGE_FOLDER}/000001.jpg ... 202599.jpg   (from img_align_celeba.zip)\n"
        f"  <root>/{PARTITION_FILE}                          (lines '000001.jpg 0'; 0/1/2 = train/val/test)\n"
        "torchvision's download usually fails on Google Drive quotas: download\n"
        "'Align&Cropped Images' (img_align_celeba.zip) and 'Eval/list_eval_partition.txt' by hand from\n"
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive or Baidu links), unzip the\n"
        "images there, then pass dataset.root=/path/to/root."
    )


def read_partition(folder: Path) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {split: [] for split in PARTITION_CODES}
    code_to_split = {code: split for split, code in PARTITION_CODES.items()}
    for line_number, line in enumerate((folder / PARTITION_FILE).read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) not in code_to_split:
            raise ValueError(
                f"{folder / PARTITION_FILE}:{line_number}: expected '<name>.jpg <0|1|2>', got {line!r}"
            )
        names[code_to_split[int(fields[1])]].append(fields[0])
    return names


def jpeg_problem(path: Path) -> str | None:
    """Why `path` is not a whole JPEG file (no start-of-image marker FFD8, or no end-of-image
    marker FFD9 near its end: truncated), or None. Reads 2 bytes and the last kilobyte, so
    the whole split is checked in seconds before hours of decoding."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return "not a JPEG file (no FFD8 start marker)"
        f.seek(max(f.seek(0, os.SEEK_END) - 1024, 2))
        if b"\xff\xd9" not in f.read():
            return "truncated JPEG (no FFD9 end marker)"
    return None


def check_jpegs(paths: list[Path]) -> None:
    """Refuse a split with damaged JPEG files, listing them, before any decoding."""
    damaged = [(p, problem) for p in paths if (problem := jpeg_problem(p))]
    if damaged:
        listed = "\n".join(f"  {p}: {problem}" for p, problem in damaged[:20])
        more = f"\n  ... and {len(damaged) - 20} more" if len(damaged) > 20 else ""
        raise CorruptFileError(
            f"celeba: {len(damaged)} damaged image file(s):\n{listed}{more}\n"
            f"Extract them again from img_align_celeba.zip into {paths[0].parent}."
        )


def preprocess(path: Path, image_size: int) -> np.ndarray:
    """Center crop 140x140 and resize to image_size, as uint8 HWC."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise CorruptFileError.of(path, f"cannot decode ({error})", REEXTRACT) from None
    width, height = image.size
    left, top = (width - CROP) // 2, (height - CROP) // 2
    image = image.crop((left, top, left + CROP, top + CROP))
    image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def load_split(folder: Path, split: str, image_size: int, workers: int = 0) -> torch.Tensor:
    """Images uint8 [N, 3, S, S] of one split, from the cache when present."""
    cache = folder / "cache" / f"{split}_{image_size}px_crop{CROP}.pt"
    if cache.is_file():
        return torch.load(cache)
    names = read_partition(folder)[split]
    missing = [n for n in names if not (folder / IMAGE_FOLDER / n).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"celeba: {len(missing)} images of the {split} split listed in {PARTITION_FILE} are missing "
            f"from {folder / IMAGE_FOLDER} (first: {missing[0]}). Unzip all of img_align_celeba.zip there."
        )
    paths = [folder / IMAGE_FOLDER / n for n in names]
    check_jpegs(paths)
    images = decode_files(preprocess, paths, image_size, workers=workers)
    with atomic_path(cache) as tmp:
        torch.save(images, tmp)
    return images
