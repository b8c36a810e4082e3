"""A second FID feature space that needs no download, for MNIST-family data.

A small CNN is trained once on a dataset's labelled training split, cached in
`<cache_dir>/classifiers/`, and registered with torch-fidelity as the feature
extractor `classifier-<dataset>`; its 128-d penultimate layer plays the role of
Inception's 2048-d pool features. Numbers in this space are comparable only
with numbers from the same classifier (the cache key names its settings).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity import register_feature_extractor
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from waebench.evaluation.cache import file_lock, save_atomic

log = logging.getLogger(__name__)

LABELLED_DATASETS = ("digits", "mnist", "fashion_mnist")
INPUT_SIZE = 28
FEATURES = "128"
NUM_CLASSES = 10


class SmallCNN(nn.Module):
    """Conv16-ReLU-MaxPool, Conv32-ReLU-MaxPool, FC128-ReLU (the features), FC10."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, NUM_CLASSES)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 1 or 3, H, W] -> float [B, 1, 28, 28] in [0, 1] (channel mean)."""
        x = images.float().mean(dim=1, keepdim=True) / 255.0
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True)
        return x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(self.preprocess(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class ClassifierFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity's view of a trained SmallCNN: uint8 [B, 3, H, W] -> 128-d features.
    Weights come from `feature_extractor_weights_path` (a `train_classifier` file)."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"feature extractor {name} needs feature_extractor_weights_path")
        checkpoint = torch.load(feature_extractor_weights_path, map_location="cpu")
        self.network = SmallCNN()
        self.network.load_state_dict(checkpoint["state_dict"])
        self.network.eval()

    @staticmethod
    def get_provided_features_list():
        return (FEATURES, "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return FEATURES

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)

    def forward(self, x):
        features = self.network.features(x)
        provided = {FEATURES: features, "logits": self.network.head(features)}
        return tuple(provided[name].double() for name in self.features_list)


def extractor_name(dataset: str) -> str:
    """Registers (once) and returns the torch-fidelity extractor name for `dataset`."""
    name = f"classifier-{dataset}"
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, ClassifierFeatureExtractor)
    return name


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int = 1500,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
) -> SmallCNN:
    """Adam on cross-entropy for `steps` minibatches of the uint8 `images`."""
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"the classifier needs labels in 0..{NUM_CLASSES - 1}")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        network = SmallCNN()
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    network.train()
    for _ in range(steps):
        batch = torch.randint(len(images), (batch_size,), generator=generator)
        loss = F.cross_entropy(network(images[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return network.eval()


@torch.no_grad()
def accuracy(network: SmallCNN, images: torch.Tensor, labels: torch.Tensor) -> float:
    predictions = torch.cat([network(batch).argmax(1) for batch in images.split(1000)])
    return (predictions == labels).float().mean().item()


def classifier_weights(
    datamodule, cache_dir: str | Path, steps: int = 1500, seed: int = 0
) -> tuple[Path, dict]:
    """The cached classifier for `datamodule`'s dataset (trained on its training split,
    accuracy measured on its test split), training it on first use. Returns the
    weights file and its metadata."""
    if datamodule.name not in LABELLED_DATASETS:
        raise ValueError(
            f"the classifier feature space needs a labelled MNIST-family dataset "
            f"({', '.join(LABELLED_DATASETS)}), not {datamodule.name!r}; use Inception FID "
            f"(eval.classifier.enabled=false)"
        )
    datamodule.setup()
    size = datamodule.image_size
    path = (
        Path(cache_dir) / "classifiers" / f"{datamodule.name}-{size}px-steps{steps}-seed{seed}.pt"
    )
    with file_lock(path.with_suffix(".lock")):
        if not path.is_file():
            log.info(
                "Training the %s classifier for FID features (%d steps)", datamodule.name, steps
            )
            train_images, train_labels = datamodule.splits["train"]
            network = train_classifier(train_images, train_labels, steps=steps, seed=seed)
            test_images, test_labels = datamodule.splits["test"]
            meta = {
                "dataset": datamodule.name,
                "image_size": size,
                "steps": steps,
                "seed": seed,
                "test_accuracy": accuracy(network, test_images, test_labels),
            }
            save_atomic({"state_dict": network.state_dict(), "meta": meta}, path)
            log.info("Classifier test accuracy %.4f, cached in %s", meta["test_accuracy"], path)
    return path, torch.load(path, map_location="cpu")["meta"]
