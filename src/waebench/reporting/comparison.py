"""The page's side-by-side figures, recomputed from each model's checkpoint (the one its
evaluation scored: `eval.checkpoint`) with the evaluation code (so runs that finished before
the page existed get them too).

Every figure uses the same test images for every model, chosen by `seed`: reconstructions
of N images, interpolations between K pairs, 2-D maps of M codes, the samples of each of the
evaluation's samplers (the prior, the laws fitted to the training codes).
A model without a usable checkpoint keeps its row, which says why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from waebench import samplers  # noqa: E402
from waebench.evaluation import estimators, figures  # noqa: E402
from waebench.evaluation.evaluate import encode_images, generated_images  # noqa: E402
from waebench.evaluation.fid import to_uint8  # noqa: E402
from waebench.evaluation.settings import FidSettings  # noqa: E402
from waebench.model import load_model  # noqa: E402
from waebench.reporting.runs import Run  # noqa: E402
from waebench.reporting.table import Row  # noqa: E402

# Class names of the labelled datasets, for the latent maps' legends.
CLASS_NAMES = {
    "fashion_mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class FigureSettings:
    n_images: int = 8  # reconstructions and samples per row
    pairs: int = 3  # interpolation pairs
    steps: int = 10  # images per interpolation row
    points: int = 2000  # test codes in the latent maps
    prior_points: int = 500  # prior samples overlaid on each latent map
    tsne: bool = True
    seed: int = 0


@dataclass
class Entry:
    """One table row's model in the figures: the run drawn (its lowest completed seed whose
    checkpoint loads), or why there is none."""

    label: str
    run: Run | None = None
    model: torch.nn.Module | None = None
    why: str = ""


def load_entries(rows: list[Row]) -> list[Entry]:
    entries = []
    for row in rows:
        entry = Entry(row.model)
        if not row.completed:
            seeds = "; ".join(
                f"seed {r.seed}: {r.status} {r.error[:120]}".strip() for r in row.runs
            )
            entry.why = f"no completed run ({seeds})"
        for run in sorted(row.counted, key=lambda r: str(r.seed)):
            try:
                scored = run.eval_settings.checkpoint == "best"
                path = estimators.best_checkpoint(run.run_dir) if scored else run.run_dir
                entry.model = load_model(path).eval()
            except (FileNotFoundError, RuntimeError, KeyError) as error:
                entry.why = f"seed {run.seed}: checkpoint unreadable: {error}"
                continue
            entry.run, entry.label = run, f"{row.model} (seed {run.seed})"
            break
        if entry.model is None:
            entry.label = f"{row.model}: {entry.why}"
        entries.append(entry)
    return entries


def load_datamodule(run: Run):
    datamodule = instantiate(OmegaConf.create(run.config["dataset"]))
    datamodule.setup()
    return datamodule


def pick(count: int, total: int, seed: int) -> torch.Tensor:
    """`count` distinct indices of `total`, fixed by `seed`."""
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count]


def pick_pairs(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` pairs of distinct indices [count, 2], fixed by `seed`; where the data is
    labelled, the two of a pair are of different classes when such an image is left."""
    order = pick(len(labels), len(labels), seed).tolist()
    firsts, unused = order[:count], order[count:]
    seconds = []
    for a in firsts:
        b = next((i for i in unused if labels[i] >= 0 and labels[i] != labels[a]), unused[0])
        unused.remove(b)
        seconds.append(b)
    return torch.tensor([firsts, seconds]).T


@torch.no_grad()
def reconstructions(entries, datamodule, settings: FigureSettings, path: Path) -> Path:
    images = datamodule.splits["test"][0]
    chosen = images[pick(settings.n_images, len(images), settings.seed)]
    uint8 = partial(to_uint8, value_range=datamodule.value_range)
    x = datamodule.to_float(chosen)
    rows = [("test images", chosen)]
    for e in entries:
        recs = None if e.model is None else uint8(e.model.reconstruct(x.to(e.model.device)))
        rows.append((e.label, recs))
    return figures.labelled_rows(rows, path, settings.n_images)


@torch.no_grad()
def interpolations(entries, datamodule, settings: FigureSettings, out_dir: Path) -> list[Path]:
    """One figure per pair: the pixel cross-fade, then each model's latent interpolation."""
    images, labels = datamodule.splits["test"]
    x = datamodule.to_float(images)
    count = min(settings.pairs, len(x) // 2)
    pairs = x[pick_pairs(labels, count, settings.seed + 1)]
    uint8 = partial(to_uint8, value_range=datamodule.value_range)
    per_model, pixels = {}, None
    for e in entries:
        if e.model is None:
            continue
        rows = figures.interpolation_rows(e.model, pairs, settings.steps, uint8)
        rows = rows.view(count, 2, settings.steps, *rows.shape[1:])  # [pair, latent|pixel, t]
        per_model[e.label], pixels = rows[:, 0], rows[:, 1]
    paths = []
    for p in range(count):
        figure_rows = [("pixel cross-fade", None if pixels is None else pixels[p])]
        figure_rows += [(e.label, per_model[e.label][p] if e.model else None) for e in entries]
        title = f"pair {p + 1}: t = 0 … 1 in {settings.steps} steps"
        paths.append(
            figures.labelled_rows(
                figure_rows, out_dir / f"interpolation_{p + 1}.png", settings.steps, title
            )
        )
    return paths


@torch.no_grad()
def latent_maps(entries, datamodule, settings: FigureSettings, out_dir: Path) -> list[Path]:
    """PCA (and t-SNE) maps of the same test images: raw pixels, then each model's codes over
    its prior samples; one figure per method, one panel per model."""
    images, labels = datamodule.splits["test"]
    chosen = pick(settings.points, len(images), settings.seed + 2)
    x, y = datamodule.to_float(images[chosen]), labels[chosen].numpy()
    y = y if y.min() >= 0 else None
    panels = [("raw pixels", x.flatten(1).double().numpy(), None)]
    for e in entries:
        if e.model is None:
            panels.append((e.label, None, None))
            continue
        codes = encode_images(e.model, x, 500).double().numpy()
        prior = e.model.prior.sample(
            settings.prior_points, generator=torch.Generator().manual_seed(settings.seed + 1)
        )
        panels.append((e.label, codes, prior.double().numpy()))
    methods = ("pca", "tsne") if settings.tsne else ("pca",)
    return [
        map_figure(
            panels, y, method, datamodule.name, settings.seed, out_dir / f"latent_{method}.png"
        )
        for method in methods
    ]


def map_figure(panels, labels, method: str, dataset: str, seed: int, path: Path) -> Path:
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    height = 4.0 * rows + 0.8  # inches; the legend takes the bottom 0.8
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, height), dpi=90)
    axes = np.atleast_1d(axes).ravel()
    embedded = iter(  # one process per core: t-SNE is most of the page's time
        Parallel(n_jobs=-1)(
            delayed(figures.embed_2d)(codes, prior, method, seed)
            for _, codes, prior in panels
            if codes is not None
        )
    )
    for ax, (label, codes, prior) in zip(axes, panels, strict=False):
        ax.set_xticks([])
        ax.set_yticks([])
        if codes is None:
            ax.text(0.5, 0.5, label, ha="center", va="center", wrap=True, fontsize=8)
            continue
        codes_2d, prior_2d = next(embedded)
        figures.scatter_panel(ax, codes_2d, labels, prior_2d)
        ax.set_title(label if prior is None else f"{label}, d = {codes.shape[1]}", fontsize=9)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    names = CLASS_NAMES.get(dataset, tuple(str(i) for i in range(10)))
    cmap = plt.get_cmap("tab10")
    handles = [
        Line2D([], [], ls="", marker="o", color=cmap(i), label=n) for i, n in enumerate(names)
    ]
    handles.append(Line2D([], [], ls="", marker="o", color="lightgrey", label="prior samples"))
    figure.legend(handles=handles, loc="lower center", ncol=6, fontsize=9)
    figure.suptitle(
        f"{figures.METHOD_NAMES[method]} of the same test images, coloured by class", fontsize=12
    )
    figure.tight_layout(rect=(0, 0.8 / height, 1, 1 - 0.4 / height))
    figure.savefig(path)
    plt.close(figure)
    return path


@torch.no_grad()
def samples(entries, datamodule, settings: FigureSettings, path: Path) -> Path:
    """Each model's decoded samples of each sampler its evaluation ran (its prior, or for a
    model without one the Gaussian fitted to its codes, and the ex-post samplers): the
    evaluation's own samplers, settings and seed (`generated_images`), the first n images."""
    rows = []
    for e in entries:
        if e.model is None:
            rows.append((e.label, None))
            continue
        run_settings = e.run.eval_settings
        only_samples = replace(
            run_settings,
            samplers=run_settings.samplers or (samplers.AUTO,),
            fid=FidSettings(reconstructions=False, interpolations=False, real_splits=None),
        )
        made = generated_images(e.model, datamodule, only_samples, settings.n_images)
        for source, images in made.items():
            rows.append((f"{e.label}: {sampler_label(source.removeprefix('samples/'))}", images))
    return figures.labelled_rows(rows, path, settings.n_images)


def sampler_label(name: str) -> str:
    """A sampler as the tables head its column, with its name where that differs."""
    label = getattr(samplers.SAMPLERS[name], "label", name)
    return label if label.lower() == name else f"{label} ({name})"


def running_mean(values: list[float], window: int) -> np.ndarray:
    """Mean of the last `window` values at each point (fewer at the start)."""
    v = np.asarray(values, dtype=float)
    sums = np.concatenate([[0.0], np.cumsum(v)])
    ends = np.arange(1, len(v) + 1)
    counts = np.minimum(ends, window)
    return (sums[ends] - sums[ends - counts]) / counts


def training_curves(rows: list[Row], path: Path, window: int = 10) -> Path:
    """Train reconstruction and penalty per logged step, every completed seed, one colour per
    model: faint the logged values, bold their running mean over `window` logged points
    (penalties are different divergences: compare their trends, not their levels)."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2), dpi=90)
    cmap = plt.get_cmap("tab10")
    for i, row in enumerate(rows):
        for k, run in enumerate(row.counted):
            metrics_csv = run.run_dir / "csv" / "metrics.csv"
            if not metrics_csv.is_file():
                continue
            curves = figures.read_curves(metrics_csv, per="step")
            for ax, term in zip(axes, ("rec", "penalty"), strict=True):
                points = curves.get(f"train/{term}", {})
                steps = sorted(points)
                label = row.model if k == 0 else None
                values = [points[s] for s in steps]
                ax.plot(steps, values, color=cmap(i % 10), lw=0.5, alpha=0.25)
                smooth = running_mean(values, window)
                ax.plot(steps, smooth, color=cmap(i % 10), lw=1.5, label=label)
    axes[0].set_title(f"train reconstruction cost (bold: running mean of {window} logs)")
    axes[1].set_title("train penalty (symlog, linear within ±0.01)")
    axes[1].set_yscale("symlog", linthresh=1e-2)
    for ax in axes:
        ax.set_xlabel("step")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
