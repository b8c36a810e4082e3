"""FID (and KID, precision/recall) computed by torch-fidelity on uint8 image tensors.

    FID = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))

with (mu, S) the mean and covariance (float64) of the feature vectors of each
image set. Images come in as uint8 [N, C, H, W] (`to_uint8` is the one place
where model outputs become pixels); grayscale is repeated to 3 channels here.

The real side's features and statistics are cached by torch-fidelity in
`cache_dir` under a name made of dataset, split, image count and size (the
extractor's name is added by torch-fidelity). A lock file per entry makes
concurrent jobs compute it once; torch-fidelity writes cache files atomically.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

from waebench import bundle
from waebench.errors import UserError
from waebench.evaluation.cache import file_lock

INCEPTION = "inception-v3-compat"
INCEPTION_WEIGHTS_ENV = "WAEBENCH_INCEPTION_WEIGHTS"


class InceptionWeightsError(UserError, RuntimeError):
    """The FID Inception weights are neither given nor downloadable."""


def to_uint8(images: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Floats in `value_range` -> uint8 pixels: round((x - low) / (high - low) * 255)."""
    low, high = value_range
    scaled = (images.detach().float().cpu() - low) * (255.0 / (high - low))
    return scaled.round().clamp(0, 255).to(torch.uint8)


class UInt8Images(Dataset):
    """uint8 images [N, C, H, W] as torch-fidelity reads them: uint8, 3 channels."""

    def __init__(self, images: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"expected uint8 images [N, 1 or 3, H, W], got {images.dtype} {tuple(images.shape)}"
                " (convert model outputs with waebench.evaluation.fid.to_uint8)"
            )
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image


def inception_weights_path(configured: str | None = None) -> Path | None:
    """The Inception weights file found locally: `configured`, else
    $WAEBENCH_INCEPTION_WEIGHTS, else the offline bundle's ($WAEBENCH_BUNDLE), else
    torch-fidelity's own download in the torch hub cache; None when there is none. A named file that does not exist, or a file that is
    not a readable state dict, is an error."""
    if configured:
        source, value = "eval.inception.weights", configured
    elif os.environ.get(INCEPTION_WEIGHTS_ENV):
        source, value = INCEPTION_WEIGHTS_ENV, os.environ[INCEPTION_WEIGHTS_ENV]
    elif bundle.inception_weights():
        source, value = bundle.BUNDLE_ENV, bundle.inception_weights()
    else:
        source, value = "torch-fidelity's download", hub_weights_path()
        if not value.is_file():
            return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise InceptionWeightsError(f"{source}={value}: no such file")
    check_weights_file(path, source)
    return path


def check_weights_file(path: Path, source: str) -> None:
    """Load `path` as a state dict (memory-mapped when it is a zip archive, so cheaply)."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:
        raise InceptionWeightsError(
            f"{path} ({source}) is not a readable weights file ({type(error).__name__} in "
            f"torch.load): it is truncated or not a torch state dict. Download it again "
            f"({URL_INCEPTION_V3}, or your converted copy), or delete it and let torch-fidelity "
            f"download it."
        ) from None


def hub_weights_path() -> Path:
    """Where torch-fidelity keeps the Inception weights it downloads."""
    return Path(torch.hub.get_dir()) / "checkpoints" / URL_INCEPTION_V3.rsplit("/", 1)[-1]


def require_inception_weights(configured: str | None = None) -> Path:
    """The weights file, downloading torch-fidelity's copy when none is found locally;
    without one and without network, an error that says how to provide it."""
    path = inception_weights_path(configured)
    if path is not None:
        return path
    target = hub_weights_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(URL_INCEPTION_V3, str(target), progress=False)
    except Exception as error:
        raise InceptionWeightsError(
            f"FID needs the Inception weights (torch-fidelity's inception-v3-compat) and "
            f"downloading them failed ({type(error).__name__}: {error}). Provide the file "
            f"weights-inception-2015-12-05-6726825d.pth (or a copy converted to a state "
            f"dict) with `export {INCEPTION_WEIGHTS_ENV}=/path/to/weights.pth` or "
            f"`eval.inception.weights=/path/to/weights.pth`, or place it at {target}; "
            f"or skip Inception with `eval.inception.enabled=false` (the classifier feature "
            f"space needs no download)."
        ) from error
    return target


@dataclass
class RealImages:
    """A dataset split as the real side of FID: `name` like "fashion_mnist:test"."""

    name: str
    images: torch.Tensor

    def cache_name(self, tag: str = "") -> str:
        n, (c, h, w) = len(self.images), self.images.shape[1:]
        name = f"{self.name}-n{n}-{c}x{h}x{w}" + (f"-{tag}" if tag else "")
        return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


@dataclass
class FeatureSpace:
    """A torch-fidelity feature extractor: its registered name, weights file, and a tag
    that tells cache entries of different weights apart (empty for the standard network)."""

    extractor: str
    weights_path: str | None = None
    cache_tag: str = ""


def fidelity_metrics(
    fake: torch.Tensor,
    real: RealImages,
    space: FeatureSpace,
    cache_dir: str | Path,
    *,
    kid: bool = False,
    prc: bool = False,
    batch_size: int = 100,
    cuda: bool = False,
    seed: int = 0,
) -> dict[str, float]:
    """FID (+ KID mean/std, precision/recall when asked) of uint8 `fake` against `real`.
    Returns torch-fidelity's result dict (keys `frechet_inception_distance`, ...)."""
    n = min(len(fake), len(real.images))
    options = dict(
        fid=True,
        kid=kid,
        prc=prc,
        feature_extractor=space.extractor,
        feature_extractor_weights_path=space.weights_path,
        cache=True,
        cache_root=str(cache_dir),
        input2=UInt8Images(real.images),
        input2_cache_name=real.cache_name(space.cache_tag),
        batch_size=batch_size,
        cuda=cuda,
        rng_seed=seed,
        kid_subset_size=min(1000, n),
        save_cpu_ram=True,
        verbose=False,
    )
    lock = Path(cache_dir) / f"{real.cache_name(space.cache_tag)}-{space.extractor}.lock"
    with file_lock(lock):
        # FID(real, real) computes and caches the real side's features and statistics
        # once; later calls (and the other jobs waiting on the lock) find them cached.
        warm = {**options, "kid": False, "prc": False}
        torch_fidelity.calculate_metrics(
            input1=UInt8Images(real.images), input1_cache_name=options["input2_cache_name"], **warm
        )
    return torch_fidelity.calculate_metrics(input1=UInt8Images(fake), **options)
