"""`waebench-train`: instantiate datamodule, model, callbacks, loggers and trainer
from the Hydra config, train, test, and write the run's record (`waebench.run.record`)."""

from __future__ import annotations

import logging
import netrc
import os
import sys
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar, Timer
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from waebench import __version__
from waebench.build import CONFIG_DIR, build_model, check_buildable, check_model_builds
from waebench.callbacks import AtomicCheckpointIO
from waebench.config_check import ConfigValueError, check_config
from waebench.errors import UserError
from waebench.evaluation import evaluate_into_metrics
from waebench.evaluation.settings import EvalSettings, fill_command
from waebench.fast import NullProfiler, device_problems
from waebench.launch.job import is_multirun, run_sweep_job
from waebench.model import DivergenceError, load_model
from waebench.run import record
from waebench.run.record import Evaluation, Status

log = logging.getLogger(__name__)


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


def build_trainer(cfg: DictConfig, extra_callbacks: list[L.Callback] = ()) -> L.Trainer:
    """The trainer with the config's callbacks and loggers (without its progress bar
    when `trainer.enable_progress_bar=false`), writing every checkpoint atomically, and with
    `NullProfiler` unless `trainer.profiler` names a profiler (e.g. `+trainer.profiler=simple`)."""
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values()]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = [instantiate(c) for c in cfg.get("logger", {}).values()]
    profiler = {} if cfg.trainer.get("profiler") else {"profiler": NullProfiler()}
    # The training's clock (train_seconds; its state rides in the checkpoints, so resumed
    # sittings sum) is the Timer that enforces `trainer.max_time`: Lightning ignores
    # max_time when the callbacks already hold a Timer.
    timer = Timer(duration=cfg.trainer.get("max_time"), interval="step")
    return instantiate(
        cfg.trainer,
        max_time=None,
        callbacks=[*callbacks, timer, *extra_callbacks],
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        **profiler,
    )


def eval_enabled(cfg: DictConfig) -> bool:
    return bool(cfg.get("eval", {}).get("enabled", False))


def epoch_means(metrics: dict[str, Any], stage: str) -> dict[str, float]:
    """{'loss': ..., 'rec': ...} from Lightning's `<stage>/<term>[_epoch]` metrics."""
    out = {}
    for key, value in metrics.items():
        if key.startswith(f"{stage}/") and not key.endswith("_step"):
            out[key[len(stage) + 1 :].removesuffix("_epoch")] = float(value)
    return out


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one model; returns (and writes) the record of the run. Bad values are
    refused first, and so is a folder in use or holding a run of another configuration, with
    nothing written: the run starts when `record.write_config` writes its config. The training
    process holds the run folder's lock throughout. A completed run is returned untouched,
    or, when its evaluation is pending or failed and `eval.enabled`, evaluated
    (`finish_evaluation`)."""
    check_buildable(cfg)  # first: the sampler check below imports the regularizer's class
    check_config(cfg)
    check_machine(cfg)
    check_model_builds(cfg)
    output_dir = Path(cfg.paths.output_dir)
    if rank_zero_only.rank != 0:  # a DDP rank > 0: rank 0 owns the folder
        return fit_and_test(cfg, output_dir, earlier=None)
    with record.run_lock(output_dir):
        record.check_same_job(output_dir, cfg)
        record.remove_temporaries(output_dir)
        earlier = record.read_metrics(output_dir)
        if earlier and earlier["status"] == Status.COMPLETED:
            return finish_evaluation(cfg, output_dir, earlier)
        record.write_config(output_dir, cfg)
        return fit_and_test(cfg, output_dir, earlier)


def check_machine(cfg: DictConfig) -> None:
    """Refuse what this machine cannot run of `trainer.accelerator` and `trainer.precision`
    (`waebench.fast.device_problems`), before anything is written. Here and not in
    `check_config`: a study planned on one machine is checked for the machine it runs on."""
    found = device_problems(cfg.trainer.get("accelerator", "auto"), cfg.trainer.get("precision"))
    if found:
        lines = "\n".join(f"  {p}" for p in found)
        raise ConfigValueError(f"invalid config value{'s' * (len(found) > 1)}:\n{lines}")


def finish_evaluation(cfg: DictConfig, output_dir: Path, earlier: dict[str, Any]) -> dict:
    """A run whose training an earlier launch completed: evaluated at its final weights (its
    newest readable checkpoint) when its evaluation is pending or failed and `eval.enabled`;
    else its record is returned untouched."""
    evaluation = earlier.get("evaluation")
    if evaluation == Evaluation.COMPLETED or not eval_enabled(cfg):
        gap = "" if evaluation == Evaluation.COMPLETED else f"; its evaluation is {evaluation}"
        log.info(
            "Skipping %s: completed by an earlier launch (its record is kept)%s", output_dir, gap
        )
        return earlier
    checkpoint = record.newest_readable_checkpoint(output_dir)
    if checkpoint is None:  # its evaluation failed: recorded so, the training stays completed
        return record.record_failure(
            output_dir,
            f"no readable checkpoint left in {output_dir / record.CHECKPOINTS} to evaluate "
            "the run from",
        )
    log.info(
        "%s: training completed by an earlier launch, evaluation %s: evaluating %s",
        output_dir, evaluation, checkpoint,
    )  # fmt: skip
    return evaluate_into_metrics(
        load_model(checkpoint),
        instantiate(cfg.dataset),
        EvalSettings.from_config(cfg.eval),
        earlier,
    )


def train_seconds(trainer: L.Trainer) -> dict[str, float]:
    """{"train_seconds": the training's wall time over every sitting} from the trainer's
    `Timer` (`build_trainer`); {} before training started."""
    for callback in trainer.callbacks:
        if isinstance(callback, Timer) and callback.start_time("train") is not None:
            return {"train_seconds": round(callback.time_elapsed("train"), 1)}
    return {}


def fit_and_test(cfg: DictConfig, output_dir: Path, earlier: dict[str, Any] | None) -> dict:
    metrics: dict[str, Any] = {
        "status": Status.RUNNING,
        "run_dir": str(output_dir),
        "waebench_version": __version__,
    }
    trainer = model = datamodule = None
    loggers: list = []
    try:
        L.seed_everything(cfg.seed, workers=True)
        use_wandb_offline_without_login(cfg)
        datamodule = instantiate(cfg.dataset)
        model = build_model(cfg)
        trainer = build_trainer(cfg)
        loggers = trainer.loggers
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        ckpt_path = record.resume_checkpoint(cfg.ckpt_path, output_dir)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics["train"] = epoch_means(trainer.callback_metrics, "train")
        metrics["val"] = epoch_means(
            trainer.validate(model, datamodule=datamodule, verbose=False)[0], "val"
        )
        metrics["test"] = epoch_means(
            trainer.test(model, datamodule=datamodule, verbose=False)[0], "test"
        )
        metrics["status"] = Status.COMPLETED
    except DivergenceError as error:
        metrics.update(status=Status.DIVERGED, error=str(error))
        raise
    except BaseException as error:
        metrics.update(status=Status.FAILED, error=f"{type(error).__name__}: {error}")
        metrics["traceback"] = "".join(traceback.format_exception(error))
        raise
    finally:
        if trainer is not None:
            metrics.update(epochs=trainer.current_epoch, global_step=trainer.global_step)
            metrics.update(train_seconds(trainer))
        metrics["checkpoints"] = sorted(map(str, record.checkpoints(output_dir)))
        completed = metrics["status"] == Status.COMPLETED
        if rank_zero_only.rank == 0:
            if completed:
                metrics["evaluation"] = Evaluation.PENDING  # until it ends: a kill leaves this
            else:
                metrics = record.attempt_record(earlier, metrics)
            try:
                record.write_metrics(output_dir, metrics)
            except OSError as error:  # e.g. a full disk: the error that ended the run goes on
                log.error("Could not write %s (%s)", output_dir / record.METRICS, error)
                if completed:
                    raise
            if completed and eval_enabled(cfg):
                evaluate_into_metrics(
                    model, datamodule, EvalSettings.from_config(cfg.eval), metrics, loggers
                )
        for logger in loggers:
            logger.finalize(metrics["status"])
        if "wandb" in cfg.get("logger", {}):
            import wandb

            wandb.finish(exit_code=0 if metrics["status"] == Status.COMPLETED else 1)
    return metrics


def summary(metrics: dict[str, Any]) -> str:
    """A run's record in a few lines for the terminal: status, loss terms, FIDs, latent MMD,
    and where the figures and the record are."""
    run_dir = Path(metrics["run_dir"])
    lines = [f"Run {metrics['status']}: {run_dir}"]
    if metrics.get("error"):
        lines.append(f"  error: {str(metrics['error']).splitlines()[0]}")
    for split in ("train", "val", "test"):
        terms = metrics.get(split) or {}
        if terms:
            lines.append(f"  {split:5s} " + "  ".join(f"{k} {v:.4g}" for k, v in terms.items()))
    for name, entry in (metrics.get("eval") or {}).items():
        if name.startswith(("fid/", "latent_mmd")):
            lines.append(f"  {name:45s} {entry['value']:.4g}")
    if metrics.get("evaluation") == Evaluation.FAILED:
        lines.append(f"  evaluation failed: {str(metrics.get('eval_error')).splitlines()[0]}")
    elif metrics.get("evaluation") == Evaluation.PENDING:
        lines.append(f"  evaluation pending; fill it with: {fill_command(run_dir)}")
    for finding in metrics.get("collapse") or []:
        lines.append(f"  collapsed? {finding}")
    figures = sorted(p.name for p in run_dir.glob("*.png"))
    if figures:
        lines.append(f"  figures: {', '.join(figures)}")
    lines.append(f"  record: {run_dir / record.METRICS}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> dict[str, Any] | None:
    if is_multirun():  # skip completed jobs, resume killed ones, record failures and go on
        metrics = run_sweep_job(train, cfg)
        if metrics.get("started") is not False:  # a job that never started has no log
            log.info("%s", summary(metrics))
        return metrics
    output_dir = Path(cfg.paths.output_dir)
    before = record.config_stamp(output_dir)
    try:
        metrics = train(cfg)
    except Exception as error:
        if record.config_stamp(output_dir) == before:  # refused before the run started:
            record.remove_if_empty(output_dir)  # no log, and no folder (Hydra made it empty)
            if isinstance(error, UserError):
                sys.exit(f"waebench-train: {error}")
            raise  # a bug: its traceback
        if isinstance(error, UserError):  # the message names the cause and the fix
            log.error("%s\nThe run's record: %s", error, output_dir / record.METRICS)
        else:  # into train.log too, not only onto stderr
            log.exception("Training failed; the run's record: %s", output_dir / record.METRICS)
        raise SystemExit(1) from None
    log.info("%s", summary(metrics))
    if metrics.get("evaluation") == Evaluation.FAILED:  # logged with the command that re-runs it
        raise SystemExit(1)


if __name__ == "__main__":
    main()
