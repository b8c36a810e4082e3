"""`benchmarks/gpu_study.py`'s parts that decide what the one GPU call does: the study's jobs
from the real sweep config, the epoch plan from measured timings, the lr milestones scaled
to the epochs used, the hard deadline, and the archives that come back."""

from __future__ import annotations

import json
import os
import sys
import tarfile
import time
from argparse import Namespace
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_study  # noqa: E402

PAPER_MODELS = ["none", "kl", "mmd", "gan", "sliced", "sinkhorn", "w2_gaussian"]


def test_the_study_is_the_sweep_configs_first_eight_models_with_the_paper_protocol():
    sweep = gpu_study.read_sweep("fmnist_study", "8")
    assert sweep.dataset == "fashion_mnist"
    assert sweep.models == [*PAPER_MODELS, "w2_gaussian_per_sample"]
    assert sweep.seeds == [0, 1, 2]
    assert (sweep.protocol_epochs, sweep.milestones) == (100, [30, 50])
    assert gpu_study.read_sweep("fmnist_study", "mmd,gan").models == ["mmd", "gan"]
    with pytest.raises(SystemExit, match="not in sweep=fmnist_study"):
        gpu_study.read_sweep("fmnist_study", "mmd,nonsense")


def test_the_jobs_get_the_paper_networks_protocol_and_the_tested_gpu_options(tmp_path):
    sweep = gpu_study.read_sweep("fmnist_study", "8")
    args = Namespace(tiny=False, compile=False)
    overrides = gpu_study.study_overrides(sweep, args, tmp_path)
    assert "hydra.launcher.jobs_per_gpu=8" in overrides and "launcher=gpus" in overrides
    cfg = gpu_study.compose([*gpu_study.one_job(overrides, "gan"), "trainer.max_epochs=13"])
    assert cfg.regularizer._target_.endswith("GANPenalty")
    assert cfg.model.width == 128 and cfg.model.latent_dim == 8
    assert cfg.dataset.name == "fashion_mnist" and cfg.dataset.batch_size == 100
    assert cfg.model.optimizer.lr == 1e-3 and list(cfg.model.optimizer.betas) == [0.5, 0.999]
    assert (cfg.trainer.precision, cfg.trainer.benchmark) == ("bf16-mixed", True)
    assert cfg.model.channels_last is True and cfg.dataset.on_device is True
    assert cfg.model.compile is False
    assert cfg.eval.inception.enabled is True and cfg.eval.inception.num_samples == 10000
    assert list(cfg.eval.samplers) == ["auto", "gmm", "two_stage"]
    assert cfg.eval.fid.interpolations and cfg.eval.fid.reconstructions
    assert "best_checkpoint" not in cfg.callbacks
    assert cfg.callbacks.step_timer._target_ == "step_timer.StepTimer"


def test_the_plan_counts_every_fid_image_set_of_a_job():
    sweep = gpu_study.read_sweep("fmnist_study", "8")
    assert gpu_study.fid_sets_per_job(sweep) == 5  # N, GMM, two-stage, reconstructions, Interp


def test_lr_milestones_keep_their_fraction_of_the_epochs():
    assert gpu_study.scaled_milestones([30, 50], 100, 100) == [30, 50]
    assert gpu_study.scaled_milestones([30, 50], 13, 100) == [4, 7]
    assert gpu_study.scaled_milestones([30, 50], 1, 100) == [1, 1]


TIMING = {"startup_s": 30.0, "epoch_s": 20.0, "eval_s": 40.0}


def test_the_plan_takes_the_most_epochs_that_fit_and_never_more_than_the_protocols():
    waves = [("fmnist_study", 0), ("mnist_study", 0), ("fmnist_study", 1), ("mnist_study", 1)]
    plan = gpu_study.make_plan(480, TIMING, page_s=50, extra_fid_s=60, max_epochs=100,
                               candidates=waves, n_pages=1)  # fmt: skip
    reserve = 50 + gpu_study.PACK_S + gpu_study.MARGIN_S
    assert plan.epochs == (480 - reserve - 30 - 40 - 60) // 20
    assert plan.waves == waves[:1]  # later waves only once the first has the 100 epochs
    assert plan.estimate["fits"]
    fast = {**TIMING, "epoch_s": 0.5}
    plan = gpu_study.make_plan(480, fast, 50, 0, 100, waves, 1)
    # 330 s of room: the first wave's 100 epochs (50 s), then two more of 70 + 50 s, not three
    assert plan.epochs == 100 and plan.waves == waves[:3]
    assert gpu_study.make_plan(60, TIMING, 50, 60, 100, waves, 1).epochs == 1  # at least one


def test_waves_take_seed_zero_of_every_sweep_first():
    sweeps = [
        gpu_study.Sweep("a", "fashion_mnist", ["mmd"], [0, 1, 2], 100, [30, 50]),
        gpu_study.Sweep("b", "mnist", ["mmd"], [0, 1], 100, [30, 50]),
    ]
    assert gpu_study.candidate_waves(sweeps, 3) == [
        ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)
    ]  # fmt: skip
    assert gpu_study.candidate_waves(sweeps, 1) == [("a", 0), ("b", 0)]


def test_an_epoch_timed_while_jobs_were_missing_is_scaled_to_all_of_them_sharing():
    # Two jobs; job b started late, so only during half of a's last epoch were both running.
    a = {"startup_s": 5, "epoch_s": [12, 10], "train_span": [0, 22], "last_epoch": [12, 22],
         "eval_s": 30, "steps_per_epoch": 550}  # fmt: skip
    b = {"startup_s": 22, "epoch_s": [14, 20], "train_span": [17, 51], "last_epoch": [31, 51],
         "eval_s": 35, "steps_per_epoch": 550}  # fmt: skip
    timing = gpu_study.wave_timing([a, b], n_jobs=2)
    assert gpu_study.concurrency([12, 22], [a["train_span"], b["train_span"]]) == 1.5
    assert timing["epoch_s"] == pytest.approx(max(10 * 2 / 1.5, 20 * 2 / 1.0))
    assert (timing["startup_s"], timing["eval_s"]) == (22, 35)
    assert timing["jobs_training_during_timed_epoch"] == 1.0


def test_a_jobs_timing_comes_from_its_timer_and_launcher_records(tmp_path):
    run = tmp_path / "regularizer=mmd"
    run.mkdir()
    (run / "launcher.json").write_text(json.dumps({"started": 100.0, "ended": 190.0}))
    timer = {"epoch_starts": [110.0, 130.0], "train_end": 148.0, "steps_per_epoch": 550}
    (run / "step_times.json").write_text(json.dumps(timer))
    timing = gpu_study.job_timing(run, launched=99.0)
    assert timing["startup_s"] == 11.0 and timing["epoch_s"] == [20.0, 18.0]
    assert timing["last_epoch"] == [130.0, 148.0] and timing["eval_s"] == 42.0
    # Stopped by the deadline in its third epoch: the two finished epochs, no evaluation.
    del timer["train_end"]
    (run / "step_times.json").write_text(json.dumps({**timer, "epoch_starts": [110, 130, 150]}))
    stopped = gpu_study.job_timing(run, launched=99.0)
    assert stopped["epoch_s"] == [20, 20] and "eval_s" not in stopped
    (run / "step_times.json").write_text(json.dumps({**timer, "epoch_starts": [110]}))
    assert gpu_study.job_timing(run, launched=99.0) is None  # not one epoch finished


def test_the_deadline_stops_the_whole_process_group_in_time(tmp_path):
    # A parent that starts a child: both must be gone when run_until returns.
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"
    )
    began = time.time()
    result = gpu_study.run_until(
        [sys.executable, "-c", script], time.time() + 3, tmp_path / "log", {}
    )
    assert result["killed_at_deadline"] and time.time() - began < 3 + gpu_study.KILL_GRACE_S + 5
    child = int(pid_file.read_text())
    deadline = time.time() + 10
    while running(child) and time.time() < deadline:  # SIGTERM is delivered asynchronously
        time.sleep(0.05)
    assert not running(child)
    quick = gpu_study.run_until([sys.executable, "-c", "print(1)"], time.time() + 30,
                                tmp_path / "log2", {})  # fmt: skip
    assert quick["exit_code"] == 0 and not quick["killed_at_deadline"]


def running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_an_archive_over_the_limit_leaves_out_its_largest_files(tmp_path):
    files = []
    for name, size in (("small.txt", 1000), ("big.png", 300_000), ("mid.png", 100_000)):
        path = tmp_path / name
        path.write_bytes(os.urandom(size))  # incompressible: the archive keeps the sizes
        files.append((path, f"page/{name}"))
    archive = tmp_path / "out" / "page.tar.gz"
    archive.parent.mkdir()
    left_out = gpu_study.pack(archive, files, limit=200_000)
    assert left_out == ["page/big.png"]
    assert archive.stat().st_size <= 200_000
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["page/mid.png", "page/small.txt"]
    for i in range(8):
        (archive.parent / f"f{i}").write_text("x")
    assert gpu_study.check_returned(archive.parent) == ["9 files (at most 8)"]
