"""DDP with two CPU processes (trainer=ddp_cpu), inside a multirun, where Lightning's re-launch
of rank 1 must run this one job in this job's folder: one run folder, one metrics.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY
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
