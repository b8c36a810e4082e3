"""What a job of a sweep does around `train()`.

- Its run folder is named after its overrides (`job_dirname`), so re-launching the same sweep
  maps every job to the folder it had before.
- A job whose `metrics.json` says `completed` is skipped (by `train()`; its evaluation is
  finished when pending or failed); any other job resumes from its newest readable checkpoint
  (`ckpt_path=auto`).
- A job refused before its run starts (a bad config value, its folder in use or holding
  another run) writes nothing in its folder: the sweep folder records it in
  `not_started/<job folder name>.json`, with its overrides and the error.
- An exception once the run started is recorded in the job's `metrics.json` (status, error,
  traceback); the sweep goes on with the next job, and the wandb run is finished either way.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from waebench.errors import UserError
from waebench.run.record import NOT_JOB_KEYS, config_stamp, record_failure, record_not_started

log = logging.getLogger(__name__)

MAX_DIRNAME = 120


def job_dirname(overrides: list[str]) -> str:
    """A job's overrides -> its folder name, e.g. `regularizer=mmd,seed=1,model.width=8`.

    Top-level choices (regularizer, dataset, seed, ...) come first, dotted keys after, each
    part sorted; '/' becomes '-'. A name longer than MAX_DIRNAME characters keeps its start
    and ends with a hash of the whole, so it stays unique."""
    kept = [o for o in overrides if override_key(o).split(".")[0] not in NOT_JOB_KEYS]
    kept.sort(key=lambda o: ("." in override_key(o), override_key(o), o))
    name = ",".join(kept).replace("/", "-") or "default"
    if len(name) <= MAX_DIRNAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: MAX_DIRNAME - 11]}-{digest}"


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


OmegaConf.register_new_resolver("waebench_job_dir", job_dirname, replace=True)


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def finish_wandb_run() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1)


@contextmanager
def ddp_children_rerun_this_job(run_dir: Path, ckpt_path: str | None) -> Iterator[None]:
    """Lightning's DDP launcher starts ranks > 0 as `sys.argv + hydra.run.dir=<run dir>`.
    In a multirun that command would start the whole sweep again in another folder, so for
    this job `sys.argv` becomes this job's overrides alone, and the run dir this job's folder."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")]
    hydra_cfg = HydraConfig.get()
    argv, run_dir_before = sys.argv, hydra_cfg.run.dir
    sys.argv = [argv[0], *overrides, f"ckpt_path={ckpt_path if ckpt_path else 'null'}"]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = str(run_dir)
    try:
        yield
    finally:
        sys.argv = argv
        with read_write(hydra_cfg):
            hydra_cfg.run.dir = run_dir_before


def run_sweep_job(train: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any]:
    """Run one job of a multirun: skip it when completed, resume it when started, and record
    an exception instead of raising it (so the launcher goes on with the other jobs): in the
    sweep's `not_started/` when the job never started its run (its folder is left as it was,
    its log included), else in its run's record."""
    run_dir = Path(cfg.paths.output_dir)
    overrides = [str(o) for o in HydraConfig.get().overrides.task]
    before = config_stamp(run_dir)
    try:
        with open_dict(cfg):
            if cfg.get("ckpt_path") is None:
                cfg.ckpt_path = "auto"
            if "wandb" in cfg.get("logger", {}):
                sweep_dir = Path(HydraConfig.get().sweep.dir)
                cfg.logger.wandb.group = cfg.logger.wandb.group or sweep_dir.name
                cfg.logger.wandb.name = cfg.logger.wandb.name or run_dir.name
        with ddp_children_rerun_this_job(run_dir, cfg.ckpt_path):
            return train(cfg)
    except Exception as error:
        if config_stamp(run_dir) == before:  # never started: nothing goes into its folder
            if not isinstance(error, UserError):
                traceback.print_exc()
            print(f"Job {run_dir} not started: {error}", file=sys.stderr, flush=True)
            return record_not_started(run_dir, error, overrides)
        if isinstance(error, UserError):  # the message names the cause and the fix
            log.error("Job in %s failed: %s", run_dir, error)
        else:
            log.exception("Job in %s failed; recorded, the sweep goes on", run_dir)
        finish_wandb_run()
        return record_failure(run_dir, error)
