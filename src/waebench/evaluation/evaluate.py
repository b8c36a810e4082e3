"""Evaluate a trained model: FID of the decoded samples of each sampler (the prior,
laws fitted to the training codes), of test reconstructions and of decoded
interpolations in each feature space, test reconstruction error, latent MMD,
Mardia's skewness and kurtosis of the codes, KL (VAEs), and the figures. Settings are the
`eval` config group (conf/eval/default.yaml); results are the flat `eval` dict of metrics.json:

    {"fid/samples/prior": {"value": 41.2, "extractor": "inception-v3-compat",
                           "num_fake": 10000, "num_real": 10000,
                           "real": "fashion_mnist:test", "seed": 0}, ...}

Keys are metric names; a metric in a feature space other than Inception's gets
`@<extractor>` appended (e.g. `fid/samples/prior@classifier-mnist`).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import torch

from waebench import samplers
from waebench.evaluation import classifier, figures
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
from waebench.run.record import write_metrics
from waebench.samplers import PriorSampler

log = logging.getLogger(__name__)

SWITCH_VALUES = (True, False, "auto")


def switch(settings, name: str) -> bool | str:
    value = settings[name]["enabled"]
    if value not in SWITCH_VALUES:
        raise ValueError(f"eval.{name}.enabled={value!r}; valid values: true, false, auto")
    return value


def feature_spaces(settings, datamodule, notes: list[str]) -> list[tuple[FeatureSpace, Any]]:
    """The feature spaces to compute FID in, each with its settings section."""
    spaces = []
    inception = switch(settings, "inception")
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
    use_classifier = switch(settings, "classifier")
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


@torch.no_grad()
def encode_split(model, datamodule, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Codes (means for Gaussian encoders) of uint8 `images`, made floats 10,000 at a time
    (CelebA's training split is 8 GB as floats)."""
    return torch.cat(
        [encode_images(model, datamodule.to_float(b), batch_size) for b in images.split(10_000)]
    )


def configured_samplers(settings) -> list[str]:
    """`eval.samplers` of an evaluation config (a mapping); one from before that list
    (switches `fid.prior`, `fid.gmm`) gives the samplers it ran."""
    if "samplers" in settings:
        return list(settings["samplers"])
    fid = settings.get("fid") or {}
    return [name for name in ("prior", "gmm") if fid.get(name, name == "prior")]


def sampler_settings(settings) -> dict:
    """`eval.sampler` of an evaluation config; an older one's `gmm_components` for the GMM."""
    if "sampler" in settings:
        return settings["sampler"]
    return {"gmm": {"n_components": settings.get("gmm_components", 10)}}


def check_samplers(model, settings) -> None:
    """Refuse `eval.samplers` that this model cannot run (see `waebench.samplers.problems`)."""
    regularizer = type(model.regularizer)
    found = samplers.problems(
        configured_samplers(settings),
        regularizer.uses_prior,
        f"`{regularizer.name}` ({regularizer.__name__})",
    )
    if found:
        raise ValueError("\n".join(found))


def midpoints(codes: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """(z_a + z_b) / 2 for `count` random pairs a != b of `codes`: the Interp column of Ghosh
    et al. 2020 (their code: the midpoints of 10,000 random pairs of held-out codes)."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randint(len(codes), (count,), generator=generator)
    b = (a + torch.randint(1, len(codes), (count,), generator=generator)) % len(codes)
    return (codes[a] + codes[b]) / 2


def generated_images(model, datamodule, settings, count: int) -> dict[str, torch.Tensor]:
    """uint8 images per FID input: `samples/<sampler>` for each of `eval.samplers`,
    `reconstructions` and `interpolations` (when on)."""
    decode = partial(
        decode_codes, batch_size=settings.batch_size, value_range=datamodule.value_range
    )
    batch, seed, images = settings.batch_size, settings.seed, {}
    train_codes: list[torch.Tensor] = []  # encoded once, for the first sampler fitted to them

    def codes() -> torch.Tensor:
        if not train_codes:
            train_codes.append(
                encode_split(model, datamodule, datamodule.splits["train"][0], batch)
            )
        return train_codes[0]

    names = samplers.resolve(configured_samplers(settings), model.regularizer.uses_prior)
    for name in names:
        sampler = samplers.build(name, sampler_settings(settings), model.prior, codes, seed)
        images[f"samples/{name}"] = decode(model, sampler.sample(count, seed))
    fid = settings.get("fid", {})
    test = datamodule.splits[settings.split][0]
    if fid.get("reconstructions", False):
        images["reconstructions"] = reconstruct_images(model, datamodule, test[:count], batch)
    if fid.get("interpolations", False):
        test_codes = encode_split(model, datamodule, test, batch)
        images["interpolations"] = decode(model, midpoints(test_codes, count, seed))
    return images


def fidelity_entries(source: str, fake, real: RealImages, space: FeatureSpace, settings, cuda):
    """The `eval` entries of one image set in one feature space: fid/<source>, and
    kid/<source>, prc/<source>/{precision,recall} when on."""
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
        "seed": settings.seed,
    }
    entries = {f"fid/{source}{suffix}": {"value": out["frechet_inception_distance"], **common}}
    if settings.kid:
        entries[f"kid/{source}{suffix}"] = {
            "value": out["kernel_inception_distance_mean"],
            "std": out["kernel_inception_distance_std"],
            **common,
        }
    if settings.prc:
        for name in ("precision", "recall"):
            entries[f"prc/{source}/{name}{suffix}"] = {"value": out[name], **common}
    return entries


def real_set(datamodule, settings) -> tuple[torch.Tensor, str]:
    """FID's real images, the splits of `eval.fid.real_splits` (null: `eval.split`) joined,
    and their name, e.g. `mnist:train+test` (it names their cached statistics too)."""
    splits = list((settings.get("fid") or {}).get("real_splits") or [settings.split])
    unknown = [s for s in splits if s not in datamodule.splits]
    if unknown:
        raise ValueError(
            f"eval.fid.real_splits={splits}: {datamodule.name} has no split {unknown[0]!r}; "
            f"valid: {', '.join(datamodule.splits)}"
        )
    images = [datamodule.splits[s][0] for s in splits]
    joined = torch.cat(images) if len(images) > 1 else images[0]
    return joined, f"{datamodule.name}:{'+'.join(splits)}"


def fid_results(model, datamodule, settings, notes: list[str]) -> dict[str, dict]:
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


def test_results(model, datamodule, settings) -> dict[str, dict]:
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
    return results


def write_figures(model, datamodule, settings, run_dir: Path, notes: list[str]) -> list[Path]:
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
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"eval.device={name!r}; valid values: auto, cpu, cuda")
    return torch.device(name)


def evaluate(model, datamodule, settings, run_dir: str | Path, loggers=()) -> tuple[dict, list]:
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


def evaluate_into_metrics(model, datamodule, settings, metrics: dict, loggers=()) -> dict:
    """Evaluate and write `metrics.json` in `metrics["run_dir"]` with `eval` (and
    `eval_notes`) added. A failure is recorded as `eval_error`, with the command that
    re-runs the evaluation alone; the training results (and an earlier `eval`) stay.
    Samplers this model cannot run raise ValueError before anything is written (training
    refuses them before it starts: `config_check`)."""
    run_dir = Path(metrics["run_dir"])
    check_samplers(model, settings)  # before anything is computed or written
    try:
        results, notes = evaluate(model, datamodule, settings, run_dir, loggers)
    except Exception as error:
        metrics["eval_error"] = f"{type(error).__name__}: {error}"
        log.error(
            "Evaluation failed: %s\nThe training results and checkpoints in %s are saved. "
            "Fix the cause, then evaluate alone with: waebench-eval ckpt_path=%s",
            metrics["eval_error"], run_dir, run_dir,
        )  # fmt: skip
    else:
        metrics.pop("eval_error", None)
        metrics.pop("eval_notes", None)
        metrics["eval"] = results
        if notes:
            metrics["eval_notes"] = notes
    write_metrics(run_dir, metrics)
    return metrics


def score_images(images: torch.Tensor, datamodule, settings) -> tuple[dict, list]:
    """FID (`fid/images`, plus KID / precision-recall when on) of uint8 `images` made
    elsewhere against the real split, in each enabled feature space."""
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
