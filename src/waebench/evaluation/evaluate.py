"""Evaluate a trained model: FID of the decoded samples of each sampler (the prior,
laws fitted to the training codes), of test reconstructions and of decoded
interpolations in each feature space, test reconstruction error, latent MMD,
Mardia's skewness and kurtosis of the codes, KL (VAEs), and the figures. Settings are the
typed `eval` settings (`EvalSettings`, built from conf/eval/default.yaml by the entry point);
results are the flat `eval` dict of metrics.json, one entry per metric of
`waebench.evaluation.definitions`:

    {"fid/samples/prior": {"value": 41.2, "extractor": "inception-v3-compat",
                           "num_fake": 10000, "num_real": 10000,
                           "real": "fashion_mnist:test", "seed": 0,
                           "checkpoint": "last"}, ...}

Keys are metric names; a metric in a feature space other than Inception's gets
`@<extractor>` appended (e.g. `fid/samples/prior@classifier-mnist`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

from waebench import samplers
from waebench.evaluation import classifier, estimators, figures
from waebench.evaluation.collapse import collapse_findings
from waebench.evaluation.fid import (
    INCEPTION,
    FeatureSpace,
    RealImages,
    fidelity_metrics,
    inception_weights_path,
    require_inception_weights,
    to_uint8,
)
from waebench.evaluation.metrics import latent_mmd_entries, mean_kl, reconstruction_errors
from waebench.evaluation.normality import normality_entries
from waebench.evaluation.settings import EvalSettings, FeatureSpaceSettings
from waebench.run.record import Evaluation, write_metrics
from waebench.samplers import PriorSampler

log = logging.getLogger(__name__)


def feature_spaces(
    settings: EvalSettings, datamodule, notes: list[str]
) -> list[tuple[FeatureSpace, FeatureSpaceSettings]]:
    """The feature spaces to compute FID in, each with its settings section."""
    spaces = []
    inception = settings.inception.enabled
    if inception is True:
        weights = require_inception_weights(settings.inception.weights)
        spaces.append((FeatureSpace(INCEPTION, str(weights)), settings.inception))
    elif inception == "auto":
        weights = inception_weights_path(settings.inception.weights)
        if weights is None:
            notes.append(
                "Inception FID skipped: no weights found (eval.inception.enabled=auto). Provide "
                "them with WAEBENCH_INCEPTION_WEIGHTS=/path/to/weights.pth or "
                "eval.inception.weights=..., or let torch-fidelity download them with "
                "eval.inception.enabled=true (see docs/evaluation.md)."
            )
        else:
            spaces.append((FeatureSpace(INCEPTION, str(weights)), settings.inception))
    use_classifier = settings.classifier.enabled
    labelled = datamodule.name in classifier.LABELLED_DATASETS
    if use_classifier is True or (use_classifier == "auto" and labelled):
        weights, meta = classifier.classifier_weights(
            datamodule, settings.cache_dir, settings.classifier.train_steps, settings.seed
        )
        name = classifier.extractor_name(datamodule.name)
        notes.append(f"{name}: test accuracy {meta['test_accuracy']:.4f} ({weights})")
        spaces.append(
            (FeatureSpace(name, str(weights), cache_tag=weights.stem), settings.classifier)
        )
    if not spaces:
        notes.append("FID skipped: no feature space enabled (eval.inception, eval.classifier)")
    return spaces


@torch.no_grad()
def decode_codes(model, codes: torch.Tensor, batch_size: int, value_range) -> torch.Tensor:
    """uint8 images of `codes`, decoded batch by batch on the model's device: only uint8
    pixels come back to host memory (10,000 CelebA images: 123 MB, not 492 MB of floats)."""
    return torch.cat(
        [to_uint8(model.decode(z.to(model.device)), value_range) for z in codes.split(batch_size)]
    )


@torch.no_grad()
def reconstruct_images(model, datamodule, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """uint8 reconstructions of uint8 `images`, batch by batch on the model's device."""
    return torch.cat(
        [
            to_uint8(
                model.reconstruct(datamodule.to_float(b.to(model.device))), datamodule.value_range
            )
            for b in images.split(batch_size)
        ]
    )


@torch.no_grad()
def encode_images(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model.encode(b.to(model.device)).cpu() for b in x.split(batch_size)])


def check_samplers(model, settings: EvalSettings) -> None:
    """Refuse `eval.samplers` that this model cannot run (see `waebench.samplers.problems`)."""
    regularizer = type(model.regularizer)
    found = samplers.problems(
        list(settings.samplers),
        regularizer.uses_prior,
        f"`{regularizer.name}` ({regularizer.__name__})",
    )
    if found:
        raise ValueError("\n".join(found))


def generated_images(
    model, datamodule, settings: EvalSettings, count: int
) -> dict[str, torch.Tensor]:
    """uint8 images per FID input: `samples/<sampler>` for each of `eval.samplers`,
    `reconstructions` and `interpolations` (when on)."""
    decode = partial(
        decode_codes, batch_size=settings.batch_size, value_range=datamodule.value_range
    )
    batch, seed, images = settings.batch_size, settings.seed, {}
    train_codes: list = []  # encoded once, for the first sampler fitted to them

    def posterior():
        if not train_codes:
            train = datamodule.splits["train"][0]
            train_codes.extend(estimators.posterior(model, datamodule, train, batch))
        return train_codes

    names = samplers.resolve(list(settings.samplers), model.regularizer.uses_prior)
    for name in names:
        sampler = samplers.build(
            name, settings.sampler or {}, model.prior, lambda: posterior()[0], seed,
            stds=lambda: posterior()[1], device=model.device,
        )  # fmt: skip
        images[f"samples/{name}"] = decode(model, sampler.sample(count, seed))
    test = datamodule.splits[settings.split][0]
    if settings.fid.reconstructions:
        images["reconstructions"] = estimators.reconstruct_images(
            model, datamodule, test[:count], batch, settings.reconstruction, seed
        )
    if settings.fid.interpolations:
        codes = estimators.interpolation_codes(model, datamodule, settings, count)
        images["interpolations"] = decode(model, codes)
    return images


def fidelity_entries(
    source: str, fake, real: RealImages, space: FeatureSpace, settings: EvalSettings, cuda
) -> dict[str, dict]:
    """The `eval` entries of one image set in one feature space: fid/<source>, and
    kid/<source>, prc/<source>/{precision,recall} when on. Samples record their sampler's
    options (`sampler`, `samplers.recorded_options`) when it has any; every entry the
    settings recorded in it (`EvalSettings.recorded`: the seed, the checkpoint, the
    reconstructions' codes, the interpolation pairs)."""
    out = fidelity_metrics(
        fake, real, space, settings.cache_dir, kid=settings.kid, prc=settings.prc,
        batch_size=settings.batch_size, cuda=cuda, seed=settings.seed,
    )  # fmt: skip
    suffix = "" if space.extractor == INCEPTION else f"@{space.extractor}"
    common = {
        "extractor": space.extractor,
        "num_fake": len(fake),
        "num_real": len(real.images),
        "real": real.name,
    }
    sampler = source.removeprefix("samples/") if source.startswith("samples/") else None
    options = samplers.recorded_options(sampler, settings.sampler) if sampler else {}
    if options:
        common["sampler"] = options
    values = {f"fid/{source}": {"value": out["frechet_inception_distance"]}}
    if settings.kid:
        values[f"kid/{source}"] = {
            "value": out["kernel_inception_distance_mean"],
            "std": out["kernel_inception_distance_std"],
        }
    if settings.prc:
        for name in ("precision", "recall"):
            values[f"prc/{source}/{name}"] = {"value": out[name]}
    return {
        key + suffix: {**value, **common, **settings.recorded(key)} for key, value in values.items()
    }


def real_set(datamodule, settings: EvalSettings) -> tuple[torch.Tensor, str]:
    """FID's real images, the splits of `eval.fid.real_splits` (null: `eval.split`) joined,
    and their name, e.g. `mnist:train+test` (it names their cached statistics too)."""
    splits = list(settings.fid.real_splits or [settings.split])
    unknown = [s for s in splits if s not in datamodule.splits]
    if unknown:
        raise ValueError(
            f"eval.fid.real_splits={splits}: {datamodule.name} has no split {unknown[0]!r}; "
            f"valid: {', '.join(datamodule.splits)}"
        )
    images = [datamodule.splits[s][0] for s in splits]
    joined = torch.cat(images) if len(images) > 1 else images[0]
    return joined, f"{datamodule.name}:{'+'.join(splits)}"


def fid_results(model, datamodule, settings: EvalSettings, notes: list[str]) -> dict[str, dict]:
    spaces = feature_spaces(settings, datamodule, notes)
    if not spaces:
        return {}
    real_images, real_name = real_set(datamodule, settings)
    count = max(section.num_samples for _, section in spaces)
    fakes = generated_images(model, datamodule, settings, count)
    cuda = model.device.type == "cuda"
    results = {}
    for space, section in spaces:
        real = RealImages(real_name, real_images[: section.num_real or len(real_images)])
        for source, fake in fakes.items():
            fake = fake[: section.num_samples]
            log.info("FID %s: %d images, %s features", source, len(fake), space.extractor)
            results.update(fidelity_entries(source, fake, real, space, settings, cuda))
    return results


def test_results(model, datamodule, settings: EvalSettings) -> dict[str, dict]:
    """rec/test, mse/test, latent_mmd/test, mardia_skewness/test, mardia_kurtosis/test and
    (Gaussian encoders) latent_mmd_means/test and kl/test."""
    images = datamodule.splits[settings.split][0]
    x = datamodule.to_float(images)
    split = f"{datamodule.name}:{settings.split}"
    errors = reconstruction_errors(model, x, settings.batch_size)
    common = {"num_images": len(x), "real": split}
    results = {
        "rec/test": {"value": errors["rec"], "cost": model.reconstruction.name, **common},
        "mse/test": {"value": errors["mse"], **common},
    }
    x_codes = x[: settings.latent_mmd_codes]
    results.update(latent_mmd_entries(model, x_codes, settings.batch_size, settings.seed, split))
    if model.regularizer.gaussian_encoder:
        results["kl/test"] = {"value": mean_kl(model, x, settings.batch_size), **common}
    results.update(normality_entries(model, x, settings.batch_size, settings.seed, split))
    return {key: {**entry, **settings.recorded(key)} for key, entry in results.items()}


def write_figures(
    model, datamodule, settings: EvalSettings, run_dir: Path, notes: list[str]
) -> list[Path]:
    """The PNG figures in `run_dir` (see docs/evaluation.md for the list)."""
    uint8 = partial(to_uint8, value_range=datamodule.value_range)
    n, seed = settings.figures.n_images, settings.seed
    images, labels = datamodule.splits[settings.split]
    x = datamodule.to_float(images)
    originals = images[:n]
    recs = reconstruct_images(model, datamodule, images[:n], n)
    paths = [
        figures.save_grid(
            figures.originals_above_reconstructions(originals, recs),
            run_dir / "test_reconstructions.png",
            nrow=min(8, len(originals)),
        ),
        figures.save_grid(
            decode_codes(
                model, PriorSampler(model.prior).sample(n, seed), n, datamodule.value_range
            ),
            run_dir / "prior_samples.png",
        ),
    ]
    pairs_count = min(settings.figures.interpolation_pairs, len(x) // 2)
    steps = settings.figures.interpolation_steps
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[: 2 * pairs_count]
    pairs = x[order].view(pairs_count, 2, *x.shape[1:])
    rows = figures.interpolation_rows(model, pairs, steps, uint8)
    paths.append(figures.save_grid(rows, run_dir / "interpolations.png", nrow=steps))
    codes = encode_images(model, x[: settings.figures.scatter_points], settings.batch_size)
    prior = PriorSampler(model.prior).sample(len(codes), seed + 1)
    used = labels[: len(codes)]
    paths.append(
        figures.latent_scatter(codes, used, prior, run_dir / "latent_pca.png", "pca", seed)
    )
    if settings.figures.tsne:
        paths.append(
            figures.latent_scatter(codes, used, prior, run_dir / "latent_tsne.png", "tsne", seed)
        )
    metrics_csv = run_dir / "csv" / "metrics.csv"
    if metrics_csv.is_file():
        paths.append(figures.training_curves(metrics_csv, run_dir / "training_curves.png"))
    else:
        notes.append(f"training_curves.png skipped: no {metrics_csv}")
    return paths


def resolve_device(name: str) -> torch.device:
    """`eval.device` (auto, cpu or cuda: checked by `EvalSettings`) as a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluate(
    model, datamodule, settings: EvalSettings, run_dir: str | Path, loggers=()
) -> tuple[dict, list]:
    """All metrics (the `eval` dict) and notes on what was skipped; figures go to `run_dir`
    and, with their values, to the loggers that take images (wandb)."""
    run_dir = Path(run_dir)
    check_samplers(model, settings)
    model = model.to(resolve_device(settings.device)).eval()
    datamodule.setup()
    if settings.split not in datamodule.splits:
        raise ValueError(f"eval.split={settings.split!r}; valid: {', '.join(datamodule.splits)}")
    notes: list[str] = []
    results = fid_results(model, datamodule, settings, notes)
    results.update(test_results(model, datamodule, settings))
    paths = (
        write_figures(model, datamodule, settings, run_dir, notes)
        if settings.figures.enabled
        else []
    )
    for logger in loggers:
        if hasattr(logger, "log_image"):
            logger.log_metrics({f"eval/{key}": entry["value"] for key, entry in results.items()})
            for path in paths:
                logger.log_image(key=f"eval/{path.stem}", images=[str(path)])
    for note in notes:
        log.info("%s", note)
    return results, notes


def evaluate_into_metrics(
    model,
    datamodule,
    settings: EvalSettings,
    metrics: dict,
    loggers=(),
    checkpoint: str | None = None,
) -> dict:
    """Evaluate and write `metrics.json` in `metrics["run_dir"]` with `eval` (and
    `eval_notes`), `collapse` (`waebench.evaluation.collapse`) and `evaluation: completed`
    added. `checkpoint` names the weights `model` holds (e.g. loaded from a file); None: the
    trained model, scored as `eval.checkpoint` says (`best`: the run's best checkpoint). A
    failure is recorded as `eval_error` and `evaluation: failed`, with the command that
    re-runs the evaluation alone; the training results (and an earlier `eval`) stay.
    Samplers this model cannot run raise ValueError before anything is written (training
    refuses them before it starts: `config_check`)."""
    run_dir = Path(metrics["run_dir"])
    check_samplers(model, settings)  # before anything is computed or written
    started = time.monotonic()
    try:
        if checkpoint is None:
            model, checkpoint = estimators.weights_to_score(model, run_dir, settings.checkpoint)
        scored = replace(settings, checkpoint=checkpoint)  # what the entries record
        results, notes = evaluate(model, datamodule, scored, run_dir, loggers)
        collapse = collapse_findings(
            model, datamodule, settings.split, settings.batch_size, settings.seed
        )
    except Exception as error:
        metrics["evaluation"] = Evaluation.FAILED
        metrics["eval_error"] = f"{type(error).__name__}: {error}"
        log.error(
            "Evaluation failed: %s\nThe training results and checkpoints in %s are saved. "
            "Fix the cause, then evaluate alone with: %s",
            metrics["eval_error"], run_dir, settings.command(run_dir),
        )  # fmt: skip
    else:
        metrics.pop("eval_error", None)
        metrics.pop("eval_notes", None)
        metrics.update(evaluation=Evaluation.COMPLETED, eval=results, collapse=collapse)
        metrics["eval_seconds"] = round(time.monotonic() - started, 1)
        if notes:
            metrics["eval_notes"] = notes
        for finding in collapse:
            log.warning("Collapsed? %s", finding)
    write_metrics(run_dir, metrics)
    return metrics


def score_images(images: torch.Tensor, datamodule, settings: EvalSettings) -> tuple[dict, list]:
    """FID (`fid/images`, plus KID / precision-recall when on) of uint8 `images` made
    elsewhere against the real split, in each enabled feature space (no checkpoint: the
    entries record none)."""
    settings = replace(settings, checkpoint=None)
    datamodule.setup()
    notes: list[str] = []
    real_images, real_name = real_set(datamodule, settings)
    cuda = resolve_device(settings.device).type == "cuda"
    results = {}
    for space, section in feature_spaces(settings, datamodule, notes):
        real = RealImages(real_name, real_images[: section.num_real or len(real_images)])
        fake = images[: section.num_samples]
        results.update(fidelity_entries("images", fake, real, space, settings, cuda))
    return results, notes
