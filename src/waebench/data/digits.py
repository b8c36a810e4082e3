"""scikit-learn's bundled handwritten digits (1,797 real 8x8 images, no download).

Pixel values 0..16 are scaled to 0..255 and the images upsampled (bilinear) to
the configured size, so the MNIST networks run on them unchanged. There is no
official split: a fixed 20 % test set is drawn with seed 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

TEST_FRACTION = 0.2


def load_splits(image_size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(
        images, size=(image_size, image_size), mode="bilinear", align_corners=False
    )
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_test = int(len(images) * TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    return {"train": (images[train], labels[train]), "test": (images[test], labels[test])}
