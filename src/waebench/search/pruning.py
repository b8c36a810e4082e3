"""The pruning callback that runs inside a trial's job: at every epoch end it reports a
validation metric to the trial, and when the study's pruner (median by default) finds the
trial hopeless it stops it, after that epoch's `last.ckpt` is written. The sweeper adds it to
a trial's callbacks when `hydra.sweeper.pruning.monitor` is set."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import optuna
from hydra.utils import instantiate

from waebench.search.study import PRUNED_BY, load_study, read_search_file


class OptunaPruning(L.Callback):
    def __init__(self, sweep_dir: str, trial: int, monitor: str) -> None:
        self.sweep_dir, self.trial_number, self.monitor = Path(sweep_dir), trial, monitor
        self.trial: optuna.Trial | None = None

    def setup(self, trainer: L.Trainer, module, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero:
            return
        description = read_search_file(self.sweep_dir)
        if description is None:
            raise FileNotFoundError(f"{self.sweep_dir}/search.yaml: the sweeper writes it")
        study = load_study(description, pruner=instantiate(description["pruner"]))
        storage = study._storage
        study_id = storage.get_study_id_from_name(description["study_name"])
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.trial_number)
        self.trial = optuna.Trial(study, trial_id)

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
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
