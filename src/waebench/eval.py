"""`waebench-eval`: evaluate a trained model alone (the same outputs as the
evaluation at the end of training), or score images made elsewhere.

    waebench-eval ckpt_path=outputs/train/runs/<time>          # or .../checkpoints/best.ckpt
    waebench-eval images=samples.npz real=fashion_mnist:test   # or a folder of PNG files
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from waebench.config_check import ConfigValueError, check_config
from waebench.evaluation import evaluate_into_metrics
from waebench.evaluation.evaluate import score_images
from waebench.evaluation.images import load_images
from waebench.io import write_json_atomic
from waebench.model import load_model
from waebench.train import CONFIG_DIR

log = logging.getLogger(__name__)


def run_directory(ckpt_path: Path) -> Path:
    """The run directory of a checkpoint: itself, or the folder above `checkpoints/`."""
    if not ckpt_path.exists():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path}: no such run folder or checkpoint file; give a run "
            "directory of waebench-train (it holds config.yaml) or a checkpoint in its "
            "checkpoints/ folder"
        )
    run_dir = ckpt_path if ckpt_path.is_dir() else ckpt_path.parent.parent
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path}: no config.yaml in {run_dir}; give a run directory of "
            f"waebench-train or a checkpoint in its checkpoints/ folder"
        )
    return run_dir


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    """Evaluate into the run directory: metrics.json gains `eval`, figures are rewritten."""
    ckpt_path = Path(cfg.ckpt_path).expanduser()
    run_dir = run_directory(ckpt_path)
    model = load_model(ckpt_path)
    datamodule = instantiate(OmegaConf.load(run_dir / "config.yaml").dataset)
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    metrics["run_dir"] = str(run_dir)
    return evaluate_into_metrics(model, datamodule, cfg.eval, metrics)


def dataset_config(cfg: DictConfig, real: str) -> tuple[DictConfig, str]:
    """`<dataset>:<split>` -> the dataset's config (conf/dataset/<dataset>.yaml) and split."""
    names = sorted(p.stem for p in (Path(CONFIG_DIR) / "dataset").glob("*.yaml"))
    dataset, _, split = str(real).partition(":")
    if dataset not in names:
        raise ValueError(f"real={real}: give <dataset>:<split> with a dataset in {names}")
    with open_dict(cfg):
        cfg.dataset = OmegaConf.load(Path(CONFIG_DIR) / "dataset" / f"{dataset}.yaml")
        cfg.eval.split = split or cfg.eval.split
    return cfg.dataset, cfg.eval.split


def score_image_files(cfg: DictConfig) -> dict:
    """FID of `images` against `real`, written to this command's run directory."""
    if not cfg.real:
        raise ValueError("images=... needs real=<dataset>:<split>, e.g. real=fashion_mnist:test")
    images = load_images(cfg.images)
    dataset, _ = dataset_config(cfg, cfg.real)
    results, notes = score_images(images, instantiate(dataset), cfg.eval)
    output_dir = Path(cfg.paths.output_dir)
    metrics = {"status": "completed", "images": str(cfg.images), "run_dir": str(output_dir)}
    metrics["eval"] = results
    if notes:
        metrics["eval_notes"] = notes
    write_json_atomic(output_dir / "metrics.json", metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    if bool(cfg.ckpt_path) == bool(cfg.images):
        raise SystemExit(
            "waebench-eval: give ckpt_path=<run directory or .ckpt>, or "
            "images=<folder or .npz> real=<dataset>:<split> (one of the two)"
        )
    try:
        check_config(cfg)
    except ConfigValueError as error:
        raise SystemExit(f"waebench-eval: {error}") from None
    metrics = evaluate_checkpoint(cfg) if cfg.ckpt_path else score_image_files(cfg)
    for name, entry in metrics.get("eval", {}).items():
        settings = {k: v for k, v in entry.items() if k in ("extractor", "num_fake", "num_real")}
        log.info("%-45s %12.6g  %s", name, entry["value"], settings or "")
    log.info("Results: %s", Path(metrics["run_dir"]) / "metrics.json")
    if "eval_error" in metrics:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
