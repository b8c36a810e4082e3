"""Datasets as uint8 image tensors in memory, served by one LightningDataModule."""

from waebench.data.datamodule import DATASETS, ImageDataModule
from waebench.data.errors import DatasetNotFoundError

__all__ = ["DATASETS", "DatasetNotFoundError", "ImageDataModule"]
