"""The training step reads device values only on Lightning's logging steps: the
divergence check, the step log and the progress bar; and what that costs no one."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from waebench import load_model
from waebench.callbacks import ProgressBar
from waebench.model import DivergenceError
from waebench.train import build_model, build_trainer, train


def _metrics_rows(cfg) -> list[dict[str, str]]:
    with open(Path(cfg.paths.output_dir, "csv", "metrics.csv"), newline="") as file:
        return list(csv.DictReader(file))


def test_step_values_are_logged_every_n_steps_and_epoch_means_over_all_steps(train_config):
    cfg = train_config("trainer.limit_train_batches=7", "trainer.log_every_n_steps=3")
    train(cfg)
    rows = _metrics_rows(cfg)
    assert [int(r["step"]) for r in rows if r["train/loss_step"]] == [2, 5]
    (epoch,) = [r for r in rows if r["train/loss_epoch"]]

    every = train_config("trainer.limit_train_batches=7", "trainer.log_every_n_steps=1", run="all")
    train(every)
    rows = _metrics_rows(every)
    steps = [float(r["train/loss_step"]) for r in rows if r["train/loss_step"]]
    assert len(steps) == 7
    (epoch_all,) = [float(r["train/loss_epoch"]) for r in rows if r["train/loss_epoch"]]
    assert epoch_all == pytest.approx(sum(steps) / 7, rel=1e-5)
    assert float(epoch["train/loss_epoch"]) == pytest.approx(epoch_all, rel=1e-5)


@pytest.mark.parametrize("checkpoint_every", [1, 1000])
def test_divergence_stops_within_log_every_n_steps_without_checkpointing_it(
    train_config, checkpoint_every
):
    """The loss turns non-finite within a few steps at lr 1e30; the check, read every 5
    steps and before any checkpoint, stops the run with the first non-finite step's terms."""
    cfg = train_config(
        "regularizer=none",
        "model.optimizer.lr=1e30",
        "trainer.limit_train_batches=20",
        "trainer.log_every_n_steps=5",
        f"callbacks.last_checkpoint.every_n_train_steps={checkpoint_every}",
    )
    with pytest.raises(DivergenceError, match=r"diverged at step \d+ \(epoch 0\)") as error:
        train(cfg)
    message = str(error.value)
    assert "loss=nan" in message or "loss=inf" in message, message
    assert "rec=" in message and "penalty=" in message
    diverged_at = int(re.search(r"at step (\d+)", message).group(1))
    metrics = json.loads(Path(cfg.paths.output_dir, "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["error"] == message
    assert diverged_at <= metrics["global_step"] < 5, "stopped at the first check"
    last = Path(cfg.paths.output_dir, "checkpoints", "last.ckpt")
    assert last.is_file() == (checkpoint_every == 1)
    if last.is_file():
        assert torch.load(last, weights_only=False)["global_step"] <= diverged_at
        state = load_model(last).state_dict()
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_progress_bar_comes_from_the_config_and_goes_with_enable_progress_bar(train_config):
    shown = build_trainer(train_config("trainer.enable_progress_bar=true"))
    assert isinstance(shown.progress_bar_callback, ProgressBar)
    assert (
        build_trainer(train_config("trainer.enable_progress_bar=false")).progress_bar_callback
        is None
    )


class SyncErrorWindow(L.Callback):
    """CUDA sync debug mode "error" from the start of batch `first` to the start of batch
    `last`: every hook, step and callback of the batches in between runs under it."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last, self.covered = first, last, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == self.first:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
        elif batch_idx == self.last:
            torch.cuda.set_sync_debug_mode("default")
            self.covered = self.last - self.first

    def on_exception(self, trainer, module, exception):
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("regularizer", ["mmd", "gan"])
def test_fifty_steady_state_steps_never_synchronise_the_gpu(train_config, regularizer):
    """The trainer as `waebench-train` builds it (callbacks, CSV log, progress bar), with
    `log_every_n_steps=60`: steps 5..54 raise on any host-device synchronisation."""
    cfg = train_config(
        f"regularizer={regularizer}",
        "trainer.accelerator=gpu",
        "trainer.enable_progress_bar=true",
        "trainer.log_every_n_steps=60",
        "trainer.limit_train_batches=56",
    )
    window = SyncErrorWindow(first=5, last=55)
    trainer = build_trainer(cfg, extra_callbacks=[window])
    trainer.fit(build_model(cfg), datamodule=instantiate(cfg.dataset))
    assert window.covered == 50
