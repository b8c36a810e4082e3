"""The run folder has one owner (`waebench.run.record`): each hole of issue 13 that it closes,
reproduced on real run folders written by real trainings."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, crash_at

from waebench.report import report
from waebench.run import record
from waebench.run.record import RunFolderBusy, Status
from waebench.train import train

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO / 'tests'}"}


def read(run_dir) -> dict:
    return json.loads(Path(run_dir, "metrics.json").read_text())


def files(run_dir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(run_dir).glob("*") if p.is_file()}


# ---- hole 1: a later attempt never destroys the record ---------------------------------------


def test_a_completed_run_is_never_overwritten_and_another_config_is_refused(train_config):
    cfg = train_config()
    done = train(cfg)
    before = files(cfg.paths.output_dir)
    assert train(train_config()) == done  # the same run again: skipped, record kept
    with pytest.raises(ValueError, match=r"differs in: regularizer\.weight"):
        train(train_config("regularizer.weight=3"))
    assert files(cfg.paths.output_dir) == before


def test_a_failed_attempt_keeps_the_progress_of_an_earlier_one(train_config, tmp_path):
    overrides = ["trainer.limit_train_batches=6", "callbacks.last_checkpoint.every_n_train_steps=2"]
    cfg = train_config(*overrides)
    with pytest.raises(RuntimeError):
        train(train_config(*overrides, *crash_at(4)))
    first = read(cfg.paths.output_dir)
    assert first["status"] == "failed" and first["global_step"] == 4 and "traceback" in first
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.ckpt is not a readable checkpoint"):
        train(train_config(*overrides, f"ckpt_path={garbage}"))
    second = read(cfg.paths.output_dir)
    assert second["global_step"] == 4 and "garbage.ckpt" in second["error"]
    assert "earlier attempt" in second["progress_note"]


# ---- hole 2: one training per folder -----------------------------------------------------------


def test_a_second_training_in_a_held_folder_is_refused_and_a_stale_lock_taken_over(
    train_config, caplog
):
    cfg = train_config()
    run_dir = Path(cfg.paths.output_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from waebench.run.record import run_lock\n"
         f"with run_lock({str(run_dir)!r}):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=SUBPROCESS_ENV,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=f"pid {holder.pid} on host {socket.gethostname()}"):
            train(cfg)
        assert not (run_dir / "config.yaml").exists() and not (run_dir / "metrics.json").exists()
    finally:
        holder.kill()  # kill -9: the lock file still names it, the kernel dropped its lock
        holder.wait()
    assert f"pid {holder.pid}" in (run_dir / "run.lock").read_text()
    with caplog.at_level(logging.WARNING, logger="waebench.run.record"):
        assert train(cfg)["status"] == "completed"
    assert f"from pid {holder.pid}" in caplog.text
    assert (run_dir / "run.lock").read_text() == ""  # released


def test_temporary_files_have_unique_names_and_the_usual_permissions(tmp_path):
    target = tmp_path / "metrics.json"
    with record.atomic_path(target) as one, record.atomic_path(target) as two:
        assert one != two and one.parent == two.parent == tmp_path
        one.write_text("{}")
        two.write_text("{}")
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    record.write_json(tmp_path / "record.json", {})
    (tmp_path / "plain.txt").write_text("")
    mode = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert stat.S_IMODE((tmp_path / "record.json").stat().st_mode) == mode  # not 0600


# ---- hole 3: NaN and moved folders ---------------------------------------------------------


def test_nan_values_compare_equal_and_a_moved_folder_holds_the_same_job(train_config, tmp_path):
    nan = {"regularizer": {"weight": float("nan")}, "paths": {"output_dir": "/a/run"}}
    assert record.config_differences(nan, json.loads(json.dumps(nan))) == []
    cfg = train_config()
    done = train(cfg)
    moved = tmp_path / "moved"
    shutil.copytree(cfg.paths.output_dir, moved)
    again = train(train_config(run="moved"))
    assert again["status"] == "completed" and again["global_step"] == done["global_step"]
    assert read(moved) == done  # skipped as the completed job it is, not refused


# ---- hole 4 and 8: exit codes, train.log, the failure record -------------------------------


def run_train(root: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        str(BIN / "waebench-train"), *TINY, *overrides,
        f"paths.log_dir={root}", f"hydra.run.dir={root / 'run'}",
    ]  # fmt: skip
    return subprocess.run(command, env=SUBPROCESS_ENV, capture_output=True, text=True)


def test_a_failed_evaluation_fails_the_command_and_keeps_the_training(tmp_path):
    done = run_train(
        tmp_path, "eval.enabled=true", "eval.split=nosuchsplit", "eval.inception.enabled=false",
        "eval.classifier.enabled=false", "eval.figures.enabled=false",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    metrics = read(tmp_path / "run")
    assert metrics["status"] == "completed" and metrics["global_step"] == 3
    assert "nosuchsplit" in metrics["eval_error"]
    assert f"waebench-eval ckpt_path={tmp_path / 'run'}" in done.stdout + done.stderr


def test_a_failure_while_building_is_recorded_and_logged(tmp_path):
    done = run_train(tmp_path, "+model.no_such_option=1")
    assert done.returncode == 1
    metrics = read(tmp_path / "run")
    assert metrics["status"] == "failed" and "no_such_option" in metrics["error"]
    assert "no_such_option" in (tmp_path / "run" / "train.log").read_text()


def test_divergence_at_the_first_step_claims_no_good_checkpoint(train_config):
    cfg = train_config("+callbacks.poison._target_=conftest.NanWeights")
    with pytest.raises(Exception, match="diverged at step 0") as error:
        train(cfg)
    assert "no good checkpoint" in str(error.value) and "are kept" not in str(error.value)


def test_a_time_based_checkpoint_is_written_inside_an_epoch(train_config):
    cfg = train_config(
        "trainer.limit_train_batches=6", "callbacks.last_checkpoint.every_n_train_steps=null",
        "callbacks.last_checkpoint.every_n_minutes=1e-9", *crash_at(3),
    )  # fmt: skip
    with pytest.raises(RuntimeError):
        train(cfg)
    last = Path(cfg.paths.output_dir, "checkpoints", "last.ckpt")
    assert torch.load(last, weights_only=False)["global_step"] == 3


# ---- hole 6 (checkpoints): a truncated last.ckpt -------------------------------------------


def test_auto_resume_skips_a_truncated_checkpoint_and_says_so(train_config, caplog):
    overrides = ["trainer.max_epochs=2", "callbacks.last_checkpoint.every_n_train_steps=null"]
    cfg = train_config(*overrides, *crash_at(3))
    with pytest.raises(RuntimeError):
        train(cfg)
    last = Path(cfg.paths.output_dir, "checkpoints", "last.ckpt")
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    os.utime(last)  # the newest, and truncated
    with caplog.at_level(logging.INFO, logger="waebench.run.record"):
        metrics = train(train_config(*overrides, "ckpt_path=auto"))
    assert f"skipping {last}, not a readable checkpoint" in caplog.text
    assert "Resuming from " + str(last.with_name("best.ckpt")) in caplog.text
    assert metrics["status"] == "completed" and metrics["global_step"] == 6


# ---- hole 7: a corrupt metrics.json --------------------------------------------------------


def test_a_corrupt_record_is_reported_as_unreadable_and_a_failure_still_recorded(train_config):
    good, bad = train_config(run="good"), train_config(run="bad")
    train(good)
    train(bad)
    Path(bad.paths.output_dir, "metrics.json").write_text('{"status": "compl')
    path = report([Path(good.paths.output_dir).parent], Path(good.paths.output_dir).parent / "r")
    markdown = path.read_text()
    assert (
        "| unreadable |" in markdown and str(Path(bad.paths.output_dir, "metrics.json")) in markdown
    )
    assert "1 of 2" in markdown or "completed" in markdown
    metrics = record.record_failure(bad.paths.output_dir, "killed by signal 9")
    assert metrics["status"] == Status.FAILED and read(bad.paths.output_dir) == metrics


# ---- the kill -9 test ----------------------------------------------------------------------


def _final_weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(Path(run_dir, "checkpoints", "last.ckpt"), weights_only=False)["state_dict"]


@pytest.mark.slow
def test_a_recorded_failure_keeps_the_first_error_unless_told_to_replace_it(tmp_path):
    record.write_metrics(tmp_path, {"status": Status.FAILED, "error": "KeyboardInterrupt: SIGTERM"})
    kept = record.record_failure(tmp_path, "cancelled: SLURM job 7 ended without a result")
    assert kept["error"] == "KeyboardInterrupt: SIGTERM"
    replaced = record.record_failure(tmp_path, "cancelled: SLURM job 7", keep_earlier=False)
    assert replaced["status"] == Status.FAILED and replaced["error"] == "cancelled: SLURM job 7"
    assert record.read_metrics(tmp_path)["error"] == "cancelled: SLURM job 7"


def test_kill_9_at_ten_seeded_points_resumes_to_the_same_weights(tmp_path):
    """Ten kills (SIGKILL) of one training at seeded steps and moments (before a step, after
    it and its checkpoint, while a checkpoint is being made); each attempt resumes with
    ckpt_path=auto; the final weights equal those of an uninterrupted run."""
    import random

    rng = random.Random(13)
    common = [
        "trainer.max_epochs=3", "trainer.limit_train_batches=10",
        "callbacks.last_checkpoint.every_n_train_steps=4", "ckpt_path=auto",
    ]  # fmt: skip
    straight = run_train(tmp_path / "straight", *common)
    assert straight.returncode == 0, straight.stderr[-3000:]
    steps = sorted(rng.sample(range(1, 30), 10))
    hooks = ["on_train_batch_start", "on_train_batch_end", "on_save_checkpoint"]
    for step in steps:
        hook = rng.choice(hooks)
        killed = run_train(
            tmp_path / "killed", *common, "+callbacks.kill._target_=conftest.KillAt",
            f"+callbacks.kill.step={step}", f"+callbacks.kill.hook={hook}",
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    done = run_train(tmp_path / "killed", *common)
    assert done.returncode == 0, done.stderr[-3000:]
    assert read(tmp_path / "killed" / "run")["global_step"] == 30
    expected, got = (
        _final_weights(tmp_path / "straight" / "run"),
        _final_weights(tmp_path / "killed" / "run"),
    )
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)


# ---- a sweep of six jobs -------------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_with_a_killed_a_diverging_and_a_corrupt_job_is_reported_in_full(tmp_path):
    """Six jobs on two simulated GPUs (one process per job): seed 1 is killed (SIGKILL), seed 2
    diverges, seed 3 completes but its metrics.json is then corrupted. The other three
    complete, and waebench-report lists all six with what became of each."""
    command = [
        str(BIN / "waebench-train"), "-m", *TINY, "seed=0,1,2,3,4,5",
        "launcher=gpus", "hydra.launcher.devices=[0,1]",
        "+callbacks.sabotage._target_=conftest.Sabotage",
        "+callbacks.sabotage.kill_seed=1", "+callbacks.sabotage.nan_seed=2",
        f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    done = subprocess.run(command, env=SUBPROCESS_ENV, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 of 6 jobs did not complete" in done.stdout + done.stderr
    jobs = {int(d.name.split("seed=")[1].split(",")[0]): d for d in (tmp_path / "sweep").iterdir()
            if d.is_dir() and "seed=" in d.name}  # fmt: skip
    assert sorted(jobs) == [0, 1, 2, 3, 4, 5]
    statuses = {seed: read(run_dir)["status"] for seed, run_dir in jobs.items()}
    assert statuses == {0: "completed", 1: "failed", 2: "diverged", 3: "completed",
                        4: "completed", 5: "completed"}  # fmt: skip
    assert "signal 9" in read(jobs[1])["error"] or "-9" in read(jobs[1])["error"]
    (jobs[3] / "metrics.json").write_text(read(jobs[3]).__repr__()[:40])  # not JSON any more

    out = tmp_path / "report"
    listed = subprocess.run([str(BIN / "waebench-report"), str(tmp_path / "sweep"),
                             "--out", str(out)], env=SUBPROCESS_ENV, capture_output=True, text=True)  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-3000:]
    markdown = (out / "report.md").read_text()
    failures = markdown.split("## Failed and unfinished runs")[1]
    for seed, status in ((1, "failed"), (2, "diverged"), (3, "unreadable")):
        (line,) = [row for row in failures.splitlines() if str(jobs[seed]) in row]
        assert f"| {status} |" in line, line
    assert str(jobs[3] / "metrics.json") in failures
    for seed in (0, 4, 5):
        assert str(jobs[seed]) not in failures
    assert "3/6" in markdown or "3 of 6" in markdown, markdown[:2000]
