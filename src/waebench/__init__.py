"""waebench: train, evaluate and compare Wasserstein auto-encoders and their relatives.

The public API (docs/extending.md) is importable from here; each name is imported on first
use, so `import waebench` (and `waebench --version`) stays light:

    from waebench import LatentRegularizer, Codes, GaussianPrior   # write a regularizer
    from waebench import ImageDataModule                           # the datamodule
    from waebench import AutoEncoder, load_model                   # the model, a trained one
"""

from __future__ import annotations

import importlib

__version__ = "0.5.0"

_PUBLIC = {
    "AutoEncoder": "waebench.model",
    "load_model": "waebench.model",
    "LatentRegularizer": "waebench.regularizers",
    "Codes": "waebench.regularizers",
    "GaussianPrior": "waebench.prior",
    "ImageDataModule": "waebench.data",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'waebench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
