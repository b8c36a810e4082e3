"""The run folder has one owner (`waebench.run.record`): each hole of issue 13 that it closes,
reproduced on real run folders written by real trainings."""

from __future__ import annotations

import json
import logging
import os
import shlex
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

from waebench.evaluation.settings import fill_command
from waebench.model import CheckpointMismatchError, load_model
from waebench.report import main as report_main
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
    assert metrics["evaluation"] == "failed" and "nosuchsplit" in metrics["eval_error"]
    assert (
        f"""waebench-eval 'ckpt_path="{tmp_path / "run"}"' eval.split="""
        in done.stdout + done.stderr
    )


def test_a_failure_after_the_start_is_recorded_and_logged_a_bug_with_its_traceback(tmp_path):
    """A user's error once the run started (its dataset is missing) ends with the message
    alone, also in train.log and the record; a bug (here a callback that raises) keeps its
    traceback."""
    none = tmp_path / "none"
    missing = run_train(tmp_path / "user", "dataset=image_folder", f"dataset.root={none}")
    output = missing.stdout + missing.stderr
    assert missing.returncode == 1 and "Traceback" not in output
    assert f"image_folder: {none} is not a folder. Fix: " in output
    metrics = read(tmp_path / "user" / "run")
    assert metrics["status"] == "failed" and "DatasetNotFoundError" in metrics["error"]
    assert f"{none} is not a folder" in (tmp_path / "user" / "run" / "train.log").read_text()
    bug = run_train(tmp_path / "bug", *crash_at(1))
    assert bug.returncode == 1 and "Traceback" in bug.stdout + bug.stderr
    assert "RuntimeError: crashed at step 1" in (tmp_path / "bug" / "run" / "train.log").read_text()


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


# ---- issue 32: an evaluation's state, atomic checkpoints --------------------------------------


def test_a_record_from_before_the_evaluation_state_gets_it(tmp_path):
    for name, extra, state in (
        ("evaluated", {"eval": {}}, "completed"),
        ("failed", {"eval_error": "ValueError: x"}, "failed"),
        ("neither", {}, "pending"),
    ):
        record.write_metrics(tmp_path / name, {"status": "completed", **extra})
        assert record.read_metrics(tmp_path / name)["evaluation"] == state
    record.write_metrics(tmp_path / "diverged", {"status": "diverged"})
    assert "evaluation" not in record.read_metrics(tmp_path / "diverged")


QUICK_EVAL = [
    "eval=quick", "eval.inception.enabled=false", "eval.classifier.num_samples=100",
    "eval.classifier.num_real=100", "eval.classifier.train_steps=10",
    "eval.figures.enabled=false", "eval.latent_mmd_codes=100",
]  # fmt: skip


@pytest.mark.slow
def test_a_kill_during_the_evaluation_leaves_it_pending_and_the_relaunch_finishes_it(tmp_path):
    """kill -9 while the evaluation computes its first FID: the record says the training
    completed and the evaluation is pending, the report shows the gap and the command that
    fills it, and that command evaluates the run without training it again."""
    evaluated = [o for o in TINY if not o.startswith("++eval")] + QUICK_EVAL
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-c", "import conftest; conftest.train_killed_during_fid()", *evaluated,
        f"paths.log_dir={tmp_path}", f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    killed = subprocess.run(command, env=SUBPROCESS_ENV, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    metrics = read(run_dir)
    assert metrics["status"] == "completed" and metrics["evaluation"] == "pending"
    assert "eval" not in metrics and "eval_error" not in metrics
    checkpoints = {p.name: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").iterdir()}
    fill = fill_command(run_dir)
    markdown = report([run_dir], tmp_path / "report").read_text()
    gaps = markdown.split("## Failed and unfinished runs")[1]
    assert "| completed, evaluation pending | fill it with: " in gaps and fill in gaps
    assert "All runs completed." not in gaps

    done = subprocess.run(
        [str(BIN / "waebench-train"), *shlex.split(fill)[1:]], env=SUBPROCESS_ENV,
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "training completed by an earlier launch, evaluation pending" in done.stdout + done.stderr
    )
    filled = read(run_dir)
    assert filled["evaluation"] == "completed" and filled["global_step"] == metrics["global_step"]
    assert "fid/samples/prior@classifier-digits" in filled["eval"]
    assert {
        p.name: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").iterdir()
    } == checkpoints
    markdown = report([run_dir], tmp_path / "report").read_text()
    assert "All runs completed." in markdown.split("## Failed and unfinished runs")[1]


def mount_tmpfs(folder: Path, size: str) -> bool:
    """A tmpfs of `size` mounted on `folder`; False where mounting is not allowed (not root,
    or a container without the capability)."""
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    try:
        return subprocess.run(mount, capture_output=True).returncode == 0
    except FileNotFoundError:  # no mount command
        return False


@pytest.mark.slow
def test_a_full_disk_keeps_the_previous_checkpoints_whole_and_the_relaunch_resumes(tmp_path):
    """The run folder on a real 8 MB tmpfs, filled at the start of the second epoch, so that
    the checkpoints of that epoch do not fit (where mounting is not allowed: a file size limit
    on the training process, whose writes past it fail the same way, EFBIG instead of ENOSPC).
    best.ckpt and last.ckpt stay those of the first epoch, whole, no temporary file is left,
    the command ends with the message alone; with space back, the same command resumes."""
    disk = tmp_path / "disk"
    how = "fill" if mount_tmpfs(disk, "8m") else "limit"
    try:
        common = [
            "trainer.max_epochs=2",
            "callbacks.best_checkpoint.monitor=null",
            "ckpt_path=auto",
        ]
        full = run_train(
            disk, *common, "+callbacks.starve._target_=conftest.StarveWrites",
            "+callbacks.starve.epoch=1", f"+callbacks.starve.how={how}",
        )  # fmt: skip
        output = full.stdout + full.stderr
        assert full.returncode == 1, output[-3000:]
        assert ("No space left on device" if how == "fill" else "File too large") in output
        assert f"writing the checkpoint {disk / 'run' / 'checkpoints'}" in output
        assert "the previous one (if any) is kept whole" in output and "Traceback" not in output
        for name in ("best.ckpt", "last.ckpt"):
            path = disk / "run" / "checkpoints" / name
            assert record.checkpoint_problem(path) is None, name
            assert torch.load(path, weights_only=False)["global_step"] == 3, name
        assert not list((disk / "run").rglob("*.tmp"))
        (disk / "run" / "filler").unlink(missing_ok=True)
        done = run_train(disk, *common)
        assert done.returncode == 0, done.stderr[-3000:]
        assert read(disk / "run")["status"] == "completed"
        assert read(disk / "run")["global_step"] == 6
    finally:
        if how == "fill":
            subprocess.run(["umount", str(disk)], check=True)


def test_load_model_falls_back_past_a_truncated_checkpoint_naming_it(train_config, caplog):
    cfg = train_config()
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        model = load_model(run_dir)
    assert f"skipping {last}, not a readable checkpoint" in caplog.text
    assert f"Loading {last.with_name('best.ckpt')}" in caplog.text
    assert not model.training
    with pytest.raises(record.CheckpointError, match=f"checkpoint {last} is not a readable"):
        load_model(last)


def test_a_resume_from_a_checkpoint_of_another_width_names_the_setting(train_config):
    first = train_config()
    train(first)
    last = Path(first.paths.output_dir, "checkpoints", "last.ckpt")
    with pytest.raises(CheckpointMismatchError) as error:
        train(train_config("model.width=8", f"ckpt_path={last}", run="wider"))
    message = str(error.value)
    assert message.startswith(f"{last} holds a model of another configuration")
    assert "Settings that differ: model.width: 4 in the checkpoint, 8 here." in message
    assert "size mismatch" not in message


def test_the_wall_times_are_recorded_the_training_summed_over_resumed_sittings(train_config):
    """`train_seconds` is Lightning's Timer, whose state the checkpoints carry: a run resumed
    from a checkpoint that had trained 1000 s records at least that; `eval_seconds` is the
    evaluation's wall time; the page shows both beside the run's command."""
    first = train_config()
    assert 0 <= train(first)["train_seconds"] < 1000  # 3 tiny steps: 0.0 s at the 0.1 s rounding
    last = Path(first.paths.output_dir, "checkpoints", "last.ckpt")
    checkpoint = torch.load(last, weights_only=False)
    (timer,) = [k for k in checkpoint["callbacks"] if k.startswith("Timer")]
    checkpoint["callbacks"][timer]["time_elapsed"]["train"] = 1000.0
    torch.save(checkpoint, last)
    resumed = train_config(
        "trainer.max_epochs=2", f"ckpt_path={last}", "++eval.enabled=true",
        "eval.inception.enabled=false", "eval.samplers=[prior]", run="resumed",
    )  # fmt: skip
    metrics = train(resumed)
    assert metrics["epochs"] == 2 and 1000 <= metrics["train_seconds"] < 2000
    assert metrics["evaluation"] == "completed" and metrics["eval_seconds"] > 0
    page = Path(first.paths.output_dir).parent / "page"
    report_main([resumed.paths.output_dir, "--page", "--out", str(page)])
    minutes = f"training {metrics['train_seconds'] / 60:.1f} min, evaluation"
    assert minutes in (page / "README.md").read_text()


def test_trainer_max_time_still_stops_the_training(train_config):
    """The clock of `train_seconds` is the Timer that enforces `trainer.max_time` (Lightning
    ignores max_time when the callbacks hold a Timer of their own)."""
    metrics = train(train_config("trainer.max_epochs=2000", '+trainer.max_time="00:00:00:02"'))
    assert metrics["status"] == "completed" and metrics["epochs"] < 2000
    assert 2 <= metrics["train_seconds"] < 60


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
    for seed in (0, 4, 5):  # completed; not evaluated (eval.enabled=false), and listed so
        (line,) = [row for row in failures.splitlines() if str(jobs[seed]) in row]
        assert "| completed, evaluation pending | fill it with: waebench-train " in line
    assert "3/6" in markdown or "3 of 6" in markdown, markdown[:2000]
