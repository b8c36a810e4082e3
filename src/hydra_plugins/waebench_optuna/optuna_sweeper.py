"""Hydra sweeper `waebench_optuna` (config group `sweeper=optuna`, or `hparams_search=...`):
an Optuna study whose trials are ordinary sweep jobs, launched through the configured launcher
(`launcher=local|gpus|slurm`), `n_jobs` at a time. The objective is read from each trial's
`metrics.json`; the study is stored in a database (see `waebench.search.study`), so that a
killed search resumes with the same command and several sweepers can share one study.

No `from __future__ import annotations` here: Hydra imports plugins outside sys.modules,
where dataclasses cannot resolve string annotations."""

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from waebench.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.waebench_optuna.optuna_sweeper.OptunaSweeper"
    # Metric names of metrics.json (an `eval` key such as `fid/samples/prior@classifier-mnist`,
    # or `<stage>/<term>` such as `val/rec`) and, one each, minimize | maximize.
    objective: list[str] = field(default_factory=lambda: ["val/loss"])
    direction: list[str] = field(default_factory=lambda: ["minimize"])
    n_trials: int = 20  # new trials in the study (re-runs of interrupted ones not counted)
    n_jobs: int = 1  # trials launched at once, as one batch of the launcher
    study_name: str | None = None  # null: the sweep folder's name
    storage: str | None = None  # null: SQLite in the sweep folder; `journal`; or a URL
    sampler: dict[str, Any] = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0}
    )
    pruner: dict[str, Any] = field(
        default_factory=lambda: {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 5}
    )
    # Pruning is opt-in: the validation metric to report every epoch (e.g. val/rec).
    pruning: dict[str, Any] = field(default_factory=lambda: {"monitor": None})
    heartbeat_interval: float = 30.0  # seconds between "this sweeper is alive" for its trials
    grace_period: float = 120.0  # a RUNNING trial silent this long lost its sweeper: re-run it
    max_retries: int = 2  # re-runs of an interrupted trial
    params: dict[str, str] | None = None  # the search space, e.g. {model.optimizer.lr: ...}


ConfigStore.instance().store(
    group="hydra/sweeper", name="waebench_optuna", node=OptunaSweeperConf, provider="waebench"
)


class SearchError(UserError, RuntimeError):
    """A search that cannot go on; the message says why and what to do."""


class OptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, pruner: Any, **settings: Any) -> None:
        self.sampler = sampler  # instantiated by Hydra; the pruner runs in the trials' jobs
        self.settings = OmegaConf.create(settings)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        """Run the search; a `UserError` (a bad setting, search space, study or storage) ends
        the command with its message alone."""
        try:
            self.search(arguments)
        except UserError as error:
            raise SystemExit(f"waebench-train: {error}") from None

    def search(self, arguments: list[str]) -> None:
        import optuna

        from waebench.search import study as bookkeeping
        from waebench.search.space import check_space, parse_space

        assert self.config is not None and self.launcher is not None
        s = self.settings
        objectives, directions = list(s.objective), list(s.direction)
        if len(objectives) != len(directions) or not objectives:
            raise SearchError(
                f"hydra.sweeper.objective {objectives} and direction {directions} must be lists "
                "of the same length, one direction (minimize | maximize) per metric"
            )
        if s.pruning.monitor and len(objectives) > 1:
            raise SearchError(
                "pruning needs a single objective (Optuna cannot prune multi-objective)"
            )
        params = OmegaConf.to_container(s.params, resolve=True) if s.params else {}
        space, fixed = parse_space(params, arguments)
        if not space:
            raise SearchError("empty search space: set hydra.sweeper.params (see docs/search.md)")
        check_space(space, self.config)

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        url = bookkeeping.storage_url(s.storage, sweep_dir)
        study_name = s.study_name or sweep_dir.resolve().name
        storage = bookkeeping.open_storage(url)
        try:
            study = optuna.create_study(
                storage=storage, study_name=study_name, directions=directions,
                sampler=self.sampler, load_if_exists=True,
            )  # fmt: skip
        except ValueError as error:
            raise SearchError(f"study {study_name} in {bookkeeping.shown(url)}: {error}") from error
        if [d.name.lower() for d in study.directions] != [d.lower() for d in directions]:
            raise SearchError(
                f"study {study_name} in {bookkeeping.shown(url)} was made with directions "
                f"{[d.name.lower() for d in study.directions]}, not {directions}: use another "
                "hydra.sweeper.study_name or hydra.sweep.dir"
            )
        bookkeeping.write_search_file(
            sweep_dir,
            {
                "study_name": study_name, "storage": url, "objective": objectives,
                "direction": directions, "n_trials": s.n_trials,
                "pruner": OmegaConf.to_container(self.config.hydra.sweeper.pruner),
                "monitor": s.pruning.monitor,
            },
        )  # fmt: skip
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info(
            "Study %s in %s: %d trials, %d at a time, %s %s",
            study_name, bookkeeping.shown(url), s.n_trials, s.n_jobs, directions, objectives,
        )  # fmt: skip

        job_idx, idle = 0, threading.Event()
        while True:
            bookkeeping.take_back_stale(study, sweep_dir, objectives, s.grace_period, s.max_retries)
            new, waiting, running = bookkeeping.progress(study, s.n_trials)
            size = min(s.n_jobs, new + waiting)
            if size == 0:
                if running == 0:
                    break
                idle.wait(s.heartbeat_interval)  # trials of other sweepers: wait for them
                continue
            batch = []
            for _ in range(size):
                trial = study.ask(space)
                study._storage.set_trial_system_attr(
                    trial._trial_id, bookkeeping.HEARTBEAT, time.time()
                )
                if bookkeeping.claim(study, trial, s.n_trials):
                    batch.append(trial)
            if not batch:
                continue
            overrides = [self.trial_overrides(study, t, fixed, sweep_dir) for t in batch]
            with bookkeeping.heartbeat(study, batch, s.heartbeat_interval):
                try:
                    self.launcher.launch(overrides, initial_job_idx=job_idx)
                except Exception as error:  # e.g. submitit: a SLURM job cancelled (scancel)
                    raise SearchError(
                        f"trials {[t.number for t in batch]}: the launcher lost a job "
                        f"({type(error).__name__}: {error}). Run the same command again: the "
                        "trials whose jobs still run count as they end; one whose job died is "
                        f"re-run from its last.ckpt once silent for grace_period ({s.grace_period} s)"
                    ) from error
            job_idx += len(batch)
            for trial in batch:
                self.tell(study, trial, sweep_dir, objectives)
        self.log_result(study, objectives)

    def trial_overrides(self, study, trial, fixed: list[str], sweep_dir: Path) -> list[str]:
        from waebench.search.space import trial_overrides
        from waebench.search.study import FOLDER

        folder = study._storage.get_trial(trial._trial_id).user_attrs[FOLDER]
        overrides = [*fixed, *trial_overrides(trial.params), f"hydra.sweep.subdir='{folder}'"]
        callback = "+callbacks.optuna_trial"
        overrides += [
            f"{callback}._target_=waebench.search.callback.OptunaTrial",
            f"{callback}.sweep_dir='{sweep_dir.resolve()}'",
            f"{callback}.trial={trial.number}",
            f"{callback}.heartbeat_interval={self.settings.heartbeat_interval}",
        ]
        if self.settings.pruning.monitor:
            overrides.append(f"{callback}.monitor={self.settings.pruning.monitor}")
        return overrides

    def tell(self, study, trial, sweep_dir: Path, objectives: list[str]) -> None:
        from waebench.search import study as bookkeeping
        from waebench.search.outcome import COMPLETED, FAILED

        frozen = study._storage.get_trial(trial._trial_id)
        outcome = bookkeeping.conclude(
            study, frozen, sweep_dir, objectives, self.settings.max_retries
        )
        if outcome is None:  # another sweeper took it back first (this one was stalled)
            return
        folder = bookkeeping.folder_of(frozen)
        if outcome.state == COMPLETED:
            log.info("Trial %d: %s = %s", trial.number, objectives, outcome.values)
            return
        log.warning("Trial %d (%s) %s: %s", trial.number, folder, outcome.state, outcome.reason)
        if outcome.state == FAILED and outcome.reason.startswith("objective"):
            raise SearchError(outcome.reason)

    def log_result(self, study, objectives: list[str]) -> None:
        from optuna.trial import TrialState

        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            log.error("No trial completed")
            return
        for best in study.best_trials:
            log.info(
                "Best trial %d: %s = %s, %s", best.number, objectives, best.values, best.params
            )
