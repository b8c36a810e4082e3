"""`waebench-train`: instantiate datamodule, model, callbacks, loggers and trainer
from the Hydra config, train, test, and write `metrics.json` in the run directory."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from waebench.config_check import ConfigValueError, check_config
from waebench.evaluation import evaluate_into_metrics
from waebench.fast import check_precision
from waebench.io import write_json_atomic
from waebench.launch.job import is_multirun, run_sweep_job
from waebench.model import DivergenceError

log = logging.getLogger(__name__)

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """`auto` -> this run's checkpoints/last.ckpt when it exists (else start fresh)."""
    if ckpt_path != "auto":
        if ckpt_path and not Path(ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist")
        return ckpt_path
    last = output_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.info("Resuming from %s", last)
        return str(last)
    log.info("ckpt_path=auto: no %s yet, starting fresh", last)
    return None


def wandb_login_found() -> bool:
    """An API key in WANDB_API_KEY or in ~/.netrc for the wandb host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def use_wandb_offline_without_login(cfg: DictConfig) -> None:
    if (
        "wandb" in cfg.get("logger", {})
        and not os.environ.get("WANDB_MODE")
        and not wandb_login_found()
    ):
        log.info("wandb: no login found, logging offline (upload later with `wandb sync`)")
        os.environ["WANDB_MODE"] = "offline"


def build_model(cfg: DictConfig):
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg["regularizer"] = OmegaConf.to_container(cfg.regularizer, resolve=True)
    return instantiate(model_cfg, _recursive_=False, _convert_="all")


def build_trainer(cfg: DictConfig, extra_callbacks: list[L.Callback] = ()) -> L.Trainer:
    """The trainer with the config's callbacks and loggers (without its progress bar
    when `trainer.enable_progress_bar=false`)."""
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values()]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = [instantiate(c) for c in cfg.get("logger", {}).values()]
    return instantiate(cfg.trainer, callbacks=callbacks + list(extra_callbacks), logger=loggers)


def epoch_means(metrics: dict[str, Any], stage: str) -> dict[str, float]:
    """{'loss': ..., 'rec': ...} from Lightning's `<stage>/<term>[_epoch]` metrics."""
    out = {}
    for key, value in metrics.items():
        if key.startswith(f"{stage}/") and not key.endswith("_step"):
            out[key[len(stage) + 1 :].removesuffix("_epoch")] = float(value)
    return out


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one model; returns (and writes) the metrics of the run."""
    check_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    L.seed_everything(cfg.seed, workers=True)
    use_wandb_offline_without_login(cfg)

    check_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    datamodule = instantiate(cfg.dataset)
    model = build_model(cfg)
    trainer = build_trainer(cfg)
    loggers = trainer.loggers
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict[str, Any] = {"status": "running", "run_dir": str(output_dir)}
    try:
        trainer.fit(
            model, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg.ckpt_path, output_dir)
        )
        metrics["train"] = epoch_means(trainer.callback_metrics, "train")
        metrics["val"] = epoch_means(
            trainer.validate(model, datamodule=datamodule, verbose=False)[0], "val"
        )
        metrics["test"] = epoch_means(
            trainer.test(model, datamodule=datamodule, verbose=False)[0], "test"
        )
        metrics["status"] = "completed"
    except DivergenceError as error:
        metrics.update(status="diverged", error=str(error))
        raise
    except BaseException as error:
        metrics.update(status="failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        metrics.update(epochs=trainer.current_epoch, global_step=trainer.global_step)
        checkpoints = output_dir / "checkpoints"
        metrics["checkpoints"] = (
            sorted(str(p) for p in checkpoints.glob("*.ckpt")) if checkpoints.is_dir() else []
        )
        if trainer.is_global_zero:
            write_json_atomic(output_dir / "metrics.json", metrics)
            if metrics["status"] == "completed" and cfg.get("eval", {}).get("enabled", False):
                evaluate_into_metrics(model, datamodule, cfg.eval, metrics, loggers)
        for logger in loggers:
            logger.finalize(metrics["status"])
        if "wandb" in cfg.get("logger", {}):
            import wandb

            wandb.finish(exit_code=0 if metrics["status"] == "completed" else 1)
    log.info("Run directory: %s", output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> dict[str, Any] | None:
    if is_multirun():  # skip completed jobs, resume killed ones, record failures and go on
        return run_sweep_job(train, cfg)
    try:
        train(cfg)
    except (DivergenceError, ConfigValueError) as error:
        log.error("%s", error)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
