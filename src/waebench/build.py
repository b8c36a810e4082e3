"""Build a run's objects from its composed config: where the configs live, and the model."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def build_model(cfg: DictConfig):
    """The `AutoEncoder` of `cfg.model`, with `cfg.regularizer` as its regularizer."""
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg["regularizer"] = OmegaConf.to_container(cfg.regularizer, resolve=True)
    return instantiate(model_cfg, _recursive_=False, _convert_="all")
