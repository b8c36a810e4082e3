"""DDP with two CPU processes (trainer=ddp_cpu), inside a multirun, where Lightning's re-launch
of rank 1 must run this one job in this job's folder: one run folder, one metrics.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, crash_at
from hydra.utils import instantiate
from omegaconf import OmegaConf

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_one_run_folder(tmp_path):
    command = [
        str(BIN / "waebench-train"), "-m", *TINY, "trainer=ddp_cpu", "seed=3",
        "trainer.limit_train_batches=null", "trainer.limit_val_batches=2",
        f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    (run_dir,) = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]  # no folder of rank 1
    assert (run_dir / "train_ddp_process_1.log").is_file()  # rank 1 ran, in this folder
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    # Each rank trains on its half of the training set: half the steps of one process.
    config = OmegaConf.load(run_dir / "config.yaml")
    data = instantiate(config.dataset)
    data.setup()
    half = -(-len(data.splits["train"][0]) // 2)
    assert metrics["global_step"] == half // config.dataset.batch_size
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}


def _ddp_run(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        str(BIN / "waebench-train"), "-m", *TINY, "trainer=ddp_cpu", "seed=5",
        "regularizer=mmd", "trainer.limit_train_batches=null", "trainer.max_steps=8",
        "callbacks.last_checkpoint.every_n_train_steps=4", f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(Path(__file__).parent)}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_ddp_resume_gives_each_rank_back_its_own_random_stream(tmp_path):
    """WAE-MMD draws prior samples every step on each rank. The ranks draw different ones, and
    a run crashed at step 4 and resumed ends with the weights of an uninterrupted run: each
    rank continues its own generator, not rank 0's."""
    straight = _ddp_run(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    crashed = _ddp_run(tmp_path / "resumed", *crash_at(4))
    assert crashed.returncode != 0
    assert json.loads(next((tmp_path / "resumed").glob("*/metrics.json")).read_text())["error"] == (
        "RuntimeError: crashed at step 4"
    )
    resumed = _ddp_run(tmp_path / "resumed", "ckpt_path=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def last_checkpoint(sweep_dir: Path) -> dict:
        (path,) = sweep_dir.glob("*/checkpoints/last.ckpt")
        return torch.load(path, weights_only=True)

    expected, got = last_checkpoint(tmp_path / "straight"), last_checkpoint(tmp_path / "resumed")
    assert got["global_step"] == expected["global_step"] == 8
    rank_0, rank_1 = (states["torch"] for states in got["rng_states"])
    assert not torch.equal(rank_0, rank_1), "both ranks drew the same random numbers"
    for name, weight in expected["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][name], weight, msg=name)
