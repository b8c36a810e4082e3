"""Hydra launcher `waebench_slurm` (config group `launcher=slurm`): hydra-submitit-launcher's
SLURM launcher, which also ends on a cluster without accounting when a job is cancelled
(and records it in the job's metrics.json), see `waebench.launch.slurm`.

No `from __future__ import annotations` here: Hydra imports plugins outside sys.modules,
where dataclasses cannot resolve string annotations."""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


@dataclass
class WaebenchSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.waebench_slurm.WaebenchSlurmLauncher"


ConfigStore.instance().store(
    group="hydra/launcher", name="waebench_slurm", node=WaebenchSlurmConf, provider="waebench"
)
if "SLURM_JOB_ID" in os.environ:  # in a job, loading its pickle: the class comes first
    from waebench.launch.slurm import hold_early_signal

    hold_early_signal()


class WaebenchSlurmLauncher(SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
        """hydra-submitit-launcher's `launch`, waiting through `QueueInfoWatcher` and
        returning a failed JobReturn (recorded in metrics.json) for a job that ended
        without a result, instead of waiting on it forever or raising before the others."""
        import submitit
        from submitit.slurm.slurm import SlurmJob

        from waebench.launch.slurm import QueueInfoWatcher

        SlurmJob.watcher = QueueInfoWatcher(delay_s=30)  # the class-wide watcher of SLURM jobs
        params = dict(self.params)
        executor = submitit.AutoExecutor(
            cluster="slurm",
            folder=params.pop("submitit_folder"),
            slurm_max_num_timeout=params.pop("max_num_timeout"),
        )
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{k if k in generic else f"slurm_{k}": v for k, v in params.items()}
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        job_params = []
        for idx, overrides in enumerate(job_overrides, initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append(
                (
                    list(overrides),
                    "hydra.sweep.dir",
                    idx,
                    f"job_id_for_{idx}",
                    Singleton.get_state(),
                )
            )
        jobs = executor.map_array(self, *zip(*job_params, strict=True))
        return [
            self._result(job, overrides) for job, overrides in zip(jobs, job_overrides, strict=True)
        ]

    def _result(self, job: Any, overrides: Sequence[str]) -> JobReturn:
        from submitit.core.utils import UncompletedJobError

        from waebench.run import record

        try:
            return job.results()[0]
        except UncompletedJobError:
            state = job.state
            config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            run_dir = Path(config.hydra.sweep.dir) / str(config.hydra.sweep.subdir)
            what = "cancelled" if state.startswith("CANCELLED") else f"ended ({state})"
            message = (
                f"{what}: SLURM job {job.job_id} ended without a result; re-launch the sweep "
                "to resume it"
            )
            log.error("%s: %s", run_dir, message)
            # the job's own record of the signal that ended it gives way to the reason (a
            # completed training stays completed; a job that never started is recorded so)
            record.record_job_failure(run_dir, message, list(overrides), keep_earlier=False)
            result = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
            result._return_value = RuntimeError(f"{run_dir}: {message}")
            return result
