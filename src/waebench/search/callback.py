"""The trial's side of a search, a callback that runs inside the trial's job (the sweeper adds
it to every trial):

- it says the trial is alive every `heartbeat_interval` seconds, from the moment training
  starts until the study records the trial as finished (or the job's process ends), so that a
  search whose sweeper was killed while this job runs (a SLURM job, a `launcher=gpus` process)
  counts the trial as its job ends instead of re-running it next to itself;
- with `monitor` (`hydra.sweeper.pruning.monitor`), at every epoch end it reports that
  validation metric to the trial and stops a trial that the study's pruner (median by default)
  finds hopeless; the job's checkpoints stay."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import optuna
from hydra.utils import instantiate

from waebench.search.study import PRUNED_BY, beat, load_study, read_search_file


class OptunaTrial(L.Callback):
    def __init__(
        self, sweep_dir: str, trial: int, heartbeat_interval: float, monitor: str | None = None
    ) -> None:
        self.sweep_dir, self.trial_number, self.monitor = Path(sweep_dir), trial, monitor
        self.heartbeat_interval = heartbeat_interval
        self.trial: optuna.Trial | None = None

    def setup(self, trainer: L.Trainer, module, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero or self.trial is not None:
            return
        description = read_search_file(self.sweep_dir)
        if description is None:
            raise FileNotFoundError(f"{self.sweep_dir}/search.yaml: the sweeper writes it")
        study = load_study(description, pruner=instantiate(description["pruner"]))
        storage = study._storage
        study_id = storage.get_study_id_from_name(description["study_name"])
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.trial_number)
        self.trial = optuna.Trial(study, trial_id)
        beat(study, [self.trial], self.heartbeat_interval)  # a daemon thread: no stop needed

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        if self.monitor is None:
            return
        reason = None
        if trainer.is_global_zero and self.trial is not None:
            value = trainer.callback_metrics.get(self.monitor)
            if value is None:
                raise KeyError(
                    f"hydra.sweeper.pruning.monitor={self.monitor} is not a logged metric; "
                    f"logged: {', '.join(sorted(trainer.callback_metrics))}"
                )
            epoch = trainer.current_epoch
            self.trial.report(float(value), step=epoch)
            if self.trial.should_prune():
                reason = f"pruned after epoch {epoch}: {self.monitor}={float(value):.5g}"
                self.trial.set_user_attr(PRUNED_BY, reason)
        reason = trainer.strategy.broadcast(reason, src=0)
        if reason is not None:
            raise optuna.TrialPruned(reason)
