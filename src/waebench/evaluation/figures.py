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
    """Rows alternate: `nrow` test images, then their reconstructions (one row of each when
    there are fewer images)."""
    nrow = min(nrow, len(originals))
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


METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE"}  # embed_2d's methods, as figures name them


def embed_2d(
    codes: np.ndarray, prior_samples: np.ndarray | None, method: str = "pca", seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes (and prior samples) in 2-D. `pca` projects onto the codes' first two principal
    axes; `tsne` embeds codes and prior samples together (scikit-learn's t-SNE)."""
    if method == "pca":
        projection = PCA(n_components=2, random_state=seed).fit(codes)
        prior_2d = None if prior_samples is None else projection.transform(prior_samples)
        return projection.transform(codes), prior_2d
    if method == "tsne":
        joint = codes if prior_samples is None else np.concatenate([codes, prior_samples])
        points = TSNE(n_components=2, random_state=seed, init="pca").fit_transform(joint)
        return points[: len(codes)], None if prior_samples is None else points[len(codes) :]
    raise ValueError(f"unknown projection {method!r}; valid: {', '.join(METHOD_NAMES)}")


def scatter_panel(
    axes, codes_2d: np.ndarray, labels: np.ndarray | None, prior_2d: np.ndarray | None = None
):
    """Codes coloured by label (tab10; blue without labels) over prior samples (grey)."""
    if prior_2d is not None:
        axes.scatter(*prior_2d.T, s=3, c="lightgrey", label="prior samples")
    colours = labels if labels is not None else "tab:blue"
    return axes.scatter(*codes_2d.T, s=3, c=colours, cmap="tab10", vmin=-0.5, vmax=9.5)


def latent_scatter(
    codes: torch.Tensor,
    labels: torch.Tensor,
    prior_samples: torch.Tensor,
    path: str | Path,
    method: str = "pca",
    seed: int = 0,
) -> Path:
    """Test codes in 2-D (`embed_2d`), coloured by label, over prior samples (grey)."""
    codes_np, prior_np = codes.double().cpu().numpy(), prior_samples.double().cpu().numpy()
    codes_2d, prior_2d = embed_2d(codes_np, prior_np, method, seed)
    figure, axes = plt.subplots(figsize=(6, 6), dpi=100)
    labelled = bool(labels.min() >= 0)
    points = scatter_panel(axes, codes_2d, labels.numpy() if labelled else None, prior_2d)
    if labelled:
        figure.colorbar(points, ax=axes, label="label")
    axes.set_title(f"test codes ({METHOD_NAMES[method]}), d = {codes.shape[1]}")
    axes.legend(["prior samples", "test codes"], loc="upper right", markerscale=4)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return Path(path)


def labelled_rows(
    rows: list[tuple[str, torch.Tensor | None]], path: str | Path, columns: int, title: str = ""
) -> Path:
    """One figure of labelled image rows: each row a label on the left and up to `columns`
    uint8 images [n, C, H, W] beside it, or, where the images are None, the label alone
    (e.g. why a model has none)."""
    shapes = [images.shape[-2:] for _, images in rows if images is not None]
    h, w = shapes[0] if shapes else (1, 1)
    strip_width, label_width = 0.9 * columns, 2.4  # inches
    row_height = strip_width * (h + 4) / (columns * (w + 2) + 2) + 0.08
    title_height = 0.4 if title else 0.0
    height = row_height * len(rows) + title_height
    figure = plt.figure(figsize=(label_width + strip_width, height), dpi=100)
    grid = figure.add_gridspec(
        len(rows), 2, width_ratios=[label_width, strip_width], wspace=0.02, hspace=0.06,
        left=0.0, right=1.0, bottom=0.0, top=1.0 - title_height / height,
    )  # fmt: skip
    for i, (label, images) in enumerate(rows):
        text = figure.add_subplot(grid[i, 0])
        text.axis("off")
        text.text(1.0, 0.5, label, ha="right", va="center", fontsize=10, wrap=True)
        axes = figure.add_subplot(grid[i, 1])
        axes.axis("off")
        if images is None:
            continue
        strip = make_grid(images.float() / 255.0, nrow=columns, padding=2, pad_value=1.0)
        axes.imshow(strip.permute(1, 2, 0).numpy(), interpolation="nearest", aspect="equal")
    if title:
        figure.suptitle(title, fontsize=11)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return Path(path)


def read_curves(metrics_csv: str | Path, per: str = "epoch") -> dict[str, dict[int, float]]:
    """{`train/rec`: {epoch or step: value}, ...} from Lightning's CSV log: the `_epoch`
    means (per="epoch") or the logged `_step` values (per="step"; train only)."""
    other = "_step" if per == "epoch" else "_epoch"
    curves: dict[str, dict[int, float]] = {}
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                stage = key.split("/", 1)[0]
                if stage in ("train", "val") and not key.endswith(other) and value:
                    if per == "step" and not key.endswith("_step"):
                        continue
                    name = key.removesuffix("_epoch").removesuffix("_step")
                    curves.setdefault(name, {})[int(row[per])] = float(value)
    return curves


def training_curves(metrics_csv: str | Path, path: str | Path) -> Path:
    """Per-epoch train and validation loss terms from Lightning's CSV log, one panel
    per term."""
    curves = read_curves(metrics_csv)
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
