"""Hydra launcher `waebench_gpus` (config group `launcher=gpus`): the jobs of a multirun run in
parallel on one machine, one job per GPU at a time, each in a fresh process pinned to its GPU
(see `waebench.launch.gpus`).

No `from __future__ import annotations` here: Hydra imports plugins outside sys.modules,
where dataclasses cannot resolve string annotations."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class GpusLauncherConf:
    _target_: str = "hydra_plugins.waebench_gpus.gpus_launcher.GpusLauncher"
    devices: list[str] | None = None  # None: every visible GPU
    jobs_per_gpu: int = 1


ConfigStore.instance().store(
    group="hydra/launcher", name="waebench_gpus", node=GpusLauncherConf, provider="waebench"
)


class GpusLauncher(Launcher):
    def __init__(self, devices: list[Any] | None = None, jobs_per_gpu: int = 1) -> None:
        self.devices, self.jobs_per_gpu = devices, jobs_per_gpu
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        from waebench.launch.gpus import (
            DevicePool,
            NoGpuError,
            run_on_devices,
            run_pinned_process,
            visible_gpus,
        )
        from waebench.run.record import record_job_failure

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        devices = visible_gpus(self.devices)
        try:
            pool = DevicePool(devices, self.jobs_per_gpu)
        except NoGpuError as error:  # the message names the fix: no traceback
            raise SystemExit(f"waebench-train: {error}") from None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(
            "Launching %d jobs on GPUs %s (%d at a time), sweep output dir: %s",
            len(job_overrides),
            ",".join(devices),
            pool.size,
            sweep_dir,
        )
        jobs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            loader = self.hydra_context.config_loader
            config = loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config):
                config.hydra.job.id = f"{config.hydra.job.name}_{idx}"
                config.hydra.job.num = idx
            run_dir = sweep_dir / str(OmegaConf.select(config, "hydra.sweep.subdir"))
            payload = cloudpickle.dumps(
                (self.hydra_context, config, self.task_function, Singleton.get_state())
            )
            jobs.append((idx, list(overrides), config, run_dir, payload))

        def run(job: tuple, device: str) -> JobReturn:
            idx, overrides, config, run_dir, payload = job
            log.info("\t#%d on GPU %s: %s", idx, device, " ".join(filter_overrides(overrides)))
            result, record = run_pinned_process(payload, device, run_dir)
            seconds = record["ended"] - record["started"]
            if result is not None:
                log.info("\t#%d done in %.0f s", idx, seconds)
                return cloudpickle.loads(result)
            error = f"job process exited with code {record['exit_code']} (see launcher.log)"
            log.error("\t#%d failed after %.0f s: %s", idx, seconds, error)
            ret = JobReturn(overrides=overrides, cfg=config, working_dir=str(run_dir))
            ret.status = JobStatus.COMPLETED  # recorded (in metrics.json, or in the sweep's
            ret.return_value = record_job_failure(run_dir, error, overrides)  # not_started/)
            return ret

        return run_on_devices(jobs, pool, run)
