"""waebench: train, evaluate and compare Wasserstein auto-encoders and their relatives."""

from waebench.model import AutoEncoder, load_model

__all__ = ["AutoEncoder", "load_model"]
