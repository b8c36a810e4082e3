"""`waebench-eval`: evaluate a trained model alone (the same outputs as the
evaluation at the end of training), or score images made elsewhere.

    waebench-eval ckpt_path=outputs/train/runs/<time>          # or .../checkpoints/best.ckpt
    waebench-eval images=samples.npz real=fashion_mnist:test   # or a folder of PNG files
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from waebench.build import CONFIG_DIR
from waebench.config_check import ConfigValueError, check_config
from waebench.errors import UserError
from waebench.evaluation import estimators, evaluate_into_metrics
from waebench.evaluation.definitions import definition_of
from waebench.evaluation.evaluate import score_images
from waebench.evaluation.images import load_images
from waebench.evaluation.settings import EvalSettings
from waebench.model import load_model
from waebench.run import record
from waebench.run.record import Evaluation, Status

log = logging.getLogger(__name__)


def checkpoint_of(ckpt_path: str, choice: str = "last") -> tuple[Path, Path, str]:
    """(run folder, checkpoint, its label) of `ckpt_path`: a run folder (its newest readable
    checkpoint, each unreadable one skipped and named; its best one for `choice=best`) or a
    checkpoint file in one (refused, named, when it is not readable)."""
    if str(ckpt_path) == "auto":
        raise record.CheckpointNotFoundError(
            "ckpt_path=auto means the run's own folder in waebench-train; waebench-eval has "
            "none: give the run folder, ckpt_path=<run folder> (its newest readable checkpoint "
            "is evaluated), or a checkpoint file"
        )
    run_dir = record.run_dir_of(ckpt_path)
    path = Path(ckpt_path).expanduser().resolve()
    if path.is_dir() and choice == "best":
        return run_dir, estimators.best_checkpoint(run_dir), "best"
    if path.is_dir():
        found = record.newest_readable_checkpoint(run_dir)
        if found is None:
            raise record.CheckpointNotFoundError(
                f"no readable checkpoint in {run_dir / record.CHECKPOINTS}"
            )
        log.info("Evaluating %s (its run folder's newest readable checkpoint)", found)
        return run_dir, found, "last"
    fix = f"Give another one, or the run folder (ckpt_path={run_dir}) for its newest readable one."
    record.check_checkpoint(path, f"ckpt_path={ckpt_path}", fix)
    return run_dir, path, path.stem


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    """Evaluate into the run folder (holding its lock): its record gains `eval`, figures are
    rewritten. A run folder is evaluated at its newest readable checkpoint, or with
    `eval.checkpoint=best` at its best one; a checkpoint file as it is."""
    settings = EvalSettings.from_config(cfg.eval)
    run_dir, ckpt_path, label = checkpoint_of(cfg.ckpt_path, settings.checkpoint or "last")
    with record.run_lock(run_dir):
        model = load_model(ckpt_path)
        datamodule = instantiate(record.read_config(run_dir)["dataset"])
        metrics = record.read_metrics(run_dir) or {}
        if metrics.get("status") == Status.UNREADABLE:
            raise UserError(metrics["error"])
        metrics["run_dir"] = str(run_dir)
        return evaluate_into_metrics(model, datamodule, settings, metrics, checkpoint=label)


def dataset_config(cfg: DictConfig, real: str) -> tuple[DictConfig, str]:
    """`<dataset>:<split>` -> the dataset's config (conf/dataset/<dataset>.yaml) and split."""
    names = sorted(p.stem for p in (Path(CONFIG_DIR) / "dataset").glob("*.yaml"))
    dataset, _, split = str(real).partition(":")
    if dataset not in names:
        raise ConfigValueError(f"real={real}: give <dataset>:<split> with a dataset in {names}")
    with open_dict(cfg):
        cfg.dataset = OmegaConf.load(Path(CONFIG_DIR) / "dataset" / f"{dataset}.yaml")
        cfg.eval.split = split or cfg.eval.split
    return cfg.dataset, cfg.eval.split


def score_image_files(cfg: DictConfig) -> dict:
    """FID of `images` against `real`, written to this command's run directory."""
    if not cfg.real:
        raise ConfigValueError(
            "images=... needs real=<dataset>:<split>, e.g. real=fashion_mnist:test"
        )
    images = load_images(cfg.images)
    dataset, _ = dataset_config(cfg, cfg.real)
    settings = EvalSettings.from_config(cfg.eval)
    results, notes = score_images(images, instantiate(dataset), settings)
    output_dir = Path(cfg.paths.output_dir)
    metrics = {"status": Status.COMPLETED, "images": str(cfg.images), "run_dir": str(output_dir)}
    metrics.update(evaluation=Evaluation.COMPLETED, eval=results)
    if notes:
        metrics["eval_notes"] = notes
    record.write_launch(output_dir, cfg)
    record.write_metrics(output_dir, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    output_dir = Path(cfg.paths.output_dir)
    try:
        if bool(cfg.ckpt_path) == bool(cfg.images):
            raise ConfigValueError(
                "give ckpt_path=<run directory or .ckpt>, or "
                "images=<folder or .npz> real=<dataset>:<split> (one of the two)"
            )
        check_config(cfg)
        metrics = evaluate_checkpoint(cfg) if cfg.ckpt_path else score_image_files(cfg)
    except UserError as error:  # the message names the cause and the fix: no traceback
        record.remove_if_empty(output_dir)  # refused: no folder of its own is left
        raise SystemExit(f"waebench-eval: {error}") from None
    for name, entry in metrics.get("eval", {}).items():
        settings = dict(definition_of(name).comparable_settings(entry))
        log.info("%-45s %12.6g  %s", name, entry["value"], settings or "")
    log.info("Results: %s", Path(metrics["run_dir"]) / "metrics.json")
    if metrics.get("evaluation") == Evaluation.FAILED:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
