"""The papers' figures as PNG files: image grids (torchvision) and plots (matplotlib).

Image grids take uint8 images [N, C, H, W]; a grid of `nrow` columns and r rows
of H x W images is (r (H + 2) + 2) x (nrow (W + 2) + 2) pixels.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from torchvision.utils import make_grid, save_image  # noqa: E402


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """uint8 images -> one PNG grid with 2-pixel padding."""
    grid = make_grid(images.float() / 255.0, nrow=nrow, padding=2, pad_value=1.0)
    save_image(grid, path)
    return Path(path)


def originals_above_reconstructions(
    originals: torch.Tensor, reconstructions: torch.Tensor, nrow: int = 8
) -> torch.Tensor:
    """Rows alternate: `nrow` test images, then their reconstructions."""
    rows = []
    for start in range(0, len(originals) - nrow + 1, nrow):
        rows += [originals[start : start + nrow], reconstructions[start : start + nrow]]
    return torch.cat(rows)


@torch.no_grad()
def interpolation_rows(model, pairs: torch.Tensor, steps: int, to_uint8) -> torch.Tensor:
    """For each pair (a, b) of images [P, 2, C, H, W]: a row decoding
    (1 - t) enc(a) + t enc(b), then a row of pixel blends (1 - t) a + t b,
    t = 0, 1/(steps-1), ..., 1."""
    t = torch.linspace(0, 1, steps, device=model.device).view(-1, 1)
    rows = []
    for a, b in pairs.to(model.device):
        codes = model.encode(torch.stack([a, b]))
        latent = model.decode((1 - t) * codes[0] + t * codes[1])
        pixels = (1 - t.view(-1, 1, 1, 1)) * a + t.view(-1, 1, 1, 1) * b
        rows += [to_uint8(latent), to_uint8(pixels)]
    return torch.cat(rows)


def latent_scatter(
    codes: torch.Tensor,
    labels: torch.Tensor,
    prior_samples: torch.Tensor,
    path: str | Path,
    method: str = "pca",
    seed: int = 0,
) -> Path:
    """Test codes in 2-D, coloured by label, over prior samples (grey). `pca` projects
    onto the codes' first two principal axes; `tsne` embeds codes and prior samples
    together (scikit-learn's t-SNE)."""
    codes_np, prior_np = codes.double().cpu().numpy(), prior_samples.double().cpu().numpy()
    if method == "pca":
        projection = PCA(n_components=2, random_state=seed).fit(codes_np)
        codes_2d, prior_2d = projection.transform(codes_np), projection.transform(prior_np)
    elif method == "tsne":
        joint = TSNE(n_components=2, random_state=seed, init="pca").fit_transform(
            np.concatenate([codes_np, prior_np])
        )
        codes_2d, prior_2d = joint[: len(codes_np)], joint[len(codes_np) :]
    else:
        raise ValueError(f"unknown projection {method!r}; valid: pca, tsne")
    figure, axes = plt.subplots(figsize=(6, 6), dpi=100)
    axes.scatter(*prior_2d.T, s=3, c="lightgrey", label="prior samples")
    labelled = labels.min() >= 0
    points = axes.scatter(
        *codes_2d.T,
        s=3,
        c=labels.numpy() if labelled else "tab:blue",
        cmap="tab10",
        label="test codes",
    )
    if labelled:
        figure.colorbar(points, ax=axes, label="label")
    axes.set_title(f"test codes ({method.upper()}), d = {codes.shape[1]}")
    axes.legend(loc="upper right", markerscale=4)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return Path(path)


def training_curves(metrics_csv: str | Path, path: str | Path) -> Path:
    """Per-epoch train and validation loss terms from Lightning's CSV log, one panel
    per term."""
    curves: dict[str, dict[int, float]] = {}
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                stage = key.split("/", 1)[0]
                if stage in ("train", "val") and not key.endswith("_step") and value:
                    curves.setdefault(key.removesuffix("_epoch"), {})[int(row["epoch"])] = float(
                        value
                    )
    terms = sorted({key.split("/", 1)[1] for key in curves})
    if not terms:
        raise ValueError(f"{metrics_csv} holds no train/ or val/ epoch metrics")
    figure, axes = plt.subplots(
        1, len(terms), figsize=(4 * len(terms), 3.5), dpi=100, squeeze=False
    )
    for ax, term in zip(axes[0], terms, strict=True):
        for stage in ("train", "val"):
            points = curves.get(f"{stage}/{term}")
            if points:
                epochs = sorted(points)
                ax.plot(epochs, [points[e] for e in epochs], marker=".", label=stage)
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return Path(path)
