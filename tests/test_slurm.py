"""A sweep through a real SLURM cluster (hydra-submitit-launcher): the jobs run under SLURM, a
cancelled job ends the launcher's wait (no accounting here) and is recorded as cancelled, it
finishes on re-launch without redoing the completed one, a requeued job resumes by itself, a
job at its time limit checkpoints, requeues and resumes at the same step, and the report
collects the runs.

Every wait is on a state (files, job states) with a generous bound: these tests pass on a
machine loaded far beyond its cores. They look only at their own jobs (others may share
the cluster). The cluster: `../shared/tools/local-slurm.sh start` (as root; `.ci/run` does it)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY
from omegaconf import OmegaConf

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

BIN = Path(sys.executable).parent
SLURM_TINY = [o for o in TINY if not o.startswith("trainer.max_epochs")] + [
    "callbacks.last_checkpoint.every_n_train_steps=3",  # last.ckpt once per epoch
]
# The job that is cancelled and requeued (3 steps per epoch) stops after 90 s of training
# (trainer.max_time; its clock is saved in the checkpoints), however fast the machine: long
# enough to outlive SLURM's KillWait (30 s) after the requeue, since submitit ignores the
# SIGTERM, and short on a loaded machine too (a count of epochs is either).
LONG_EPOCHS = 100000
LONG_TRAINING = '+trainer.max_time="00:00:01:30"'
WAIT = 1200  # s: the bound of every wait; states, not times, decide when a wait ends


def cluster_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return (
            "no SLURM here (sbatch not found); start one with ../shared/tools/local-slurm.sh start"
        )
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or not {"idle", "mixed", "allocated"} & set(state.stdout.split()):
        return f"the SLURM cluster does not answer (sinfo: {state.stdout or state.stderr!r})"
    return None


def sweep_command(sweep_dir: Path) -> list[str]:
    return [
        str(BIN / "waebench-train"), "-m", *SLURM_TINY,
        "launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10",
        f"trainer.max_epochs=1,{LONG_EPOCHS}", LONG_TRAINING, f"paths.log_dir={sweep_dir.parent}",
        f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip


def wait_for(condition, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def run_dirs(sweep_dir: Path) -> dict[int, Path]:
    """{max_epochs: run folder} of the sweep's jobs."""
    dirs = {}
    for config in sweep_dir.glob("*/config.yaml"):
        dirs[OmegaConf.load(config).trainer.max_epochs] = config.parent
    return dirs


def status(run_dir: Path) -> str | None:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text())["status"] if path.is_file() else None


def slurm_job_of(sweep_dir: Path, run_dir: Path) -> str:
    """The id (`<array>_<index>`) of the latest SLURM job whose submitit log names `run_dir`."""
    ids = [
        log.parent.name
        for log in sweep_dir.glob(".submitit/*_*/*_log.out")
        if str(run_dir) in log.read_text()
    ]
    assert ids, f"no SLURM job ran {run_dir}"
    return max(ids, key=lambda i: tuple(map(int, i.split("_"))))


def slurm_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def start_held_requeued_jobs(sweep_dir: Path) -> None:
    """SLURM holds a requeued job for a while (BeginTime); start this sweep's at once."""
    for folder in sweep_dir.glob(".submitit/*"):
        out = subprocess.run(
            ["squeue", "-h", "-j", folder.name, "-o", "%T %r"], capture_output=True, text=True
        )
        if out.stdout.split() == ["PENDING", "BeginTime"]:
            subprocess.run(["scontrol", "update", f"JobId={folder.name}", "StartTime=now"])


@pytest.fixture
def sweep_dir(tmp_path):
    """The sweep folder; every SLURM job submitted from it is cancelled at the end."""
    yield tmp_path / "sweep"
    for folder in (tmp_path / "sweep").glob(".submitit/*"):
        subprocess.run(["scancel", folder.name], capture_output=True)


def test_sweep_on_slurm_cancel_requeue_relaunch_report(sweep_dir):
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    env = {**os.environ, "WANDB_MODE": "offline"}

    # 1. Launch; once the short job is done and the long one has a checkpoint, cancel it.
    first = subprocess.Popen(sweep_command(sweep_dir), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for(lambda: len(run_dirs(sweep_dir)) == 2, "both jobs to start")
    short, long = run_dirs(sweep_dir)[1], run_dirs(sweep_dir)[LONG_EPOCHS]
    wait_for(lambda: (long / "checkpoints" / "last.ckpt").is_file(), "a checkpoint")
    cancelled = slurm_job_of(sweep_dir, long)
    subprocess.run(["scancel", cancelled], check=True)
    # Without SLURM accounting (as here) the launcher learns the end from squeue: it returns
    # once the short job is done, failing, with the cancelled job recorded as such.
    wait_for(lambda: first.poll() is not None, "the launcher to end")
    assert first.returncode != 0
    assert status(short) == "completed"
    cancelled_metrics = json.loads((long / "metrics.json").read_text())
    assert cancelled_metrics["status"] == "failed"
    assert cancelled_metrics["error"].startswith(f"cancelled: SLURM job {cancelled} ended")
    short_metrics = (short / "metrics.json").read_text()
    short_mtime = (short / "metrics.json").stat().st_mtime_ns

    # 2. Re-launch: the completed job is skipped, the cancelled one resumes; requeue it mid-way.
    second = subprocess.Popen(sweep_command(sweep_dir), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    wait_for(lambda: (long / "train.log").read_text().count("Resuming from") >= 1, "resume")
    resumed = slurm_job_of(sweep_dir, long)
    wait_for(lambda: slurm_state(resumed) == "RUNNING", "the resumed job to run")
    subprocess.run(["scontrol", "requeue", resumed], check=True)
    wait_for(lambda: slurm_state(resumed) == "PENDING", "the requeued job to pend")
    start_held_requeued_jobs(sweep_dir)
    output, _ = second.communicate(timeout=WAIT)
    assert second.returncode == 0, output[-3000:]

    assert (short / "metrics.json").stat().st_mtime_ns == short_mtime
    assert (short / "metrics.json").read_text() == short_metrics
    assert "Skipping" in (short / "train.log").read_text()
    log = (long / "train.log").read_text()
    assert log.count("Resuming from") >= 2, log  # re-launch, then the requeue
    long_metrics = json.loads((long / "metrics.json").read_text())
    assert long_metrics["status"] == "completed"
    assert 3 <= long_metrics["global_step"] < 3 * LONG_EPOCHS  # stopped by max_time
    # Both ran as SLURM array tasks: submitit's per-task logs name their run folders.
    slurm_logs = "".join(p.read_text() for p in sweep_dir.glob(".submitit/*/*_log.out"))
    assert str(short) in slurm_logs and str(long) in slurm_logs

    # 3. The report collects both runs.
    subprocess.run([str(BIN / "waebench-report"), str(sweep_dir)], check=True, capture_output=True)
    with open(sweep_dir / "report" / "digits.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["runs_completed"], r["runs_total"]) for r in rows) == [("1", "1")] * 2
    gaps = (sweep_dir / "report" / "report.md").read_text().split("## Failed and unfinished")[1]
    statuses = [
        row.split(" | ")[4] for row in gaps.splitlines() if row.startswith(f"| {sweep_dir}")
    ]
    assert statuses == ["completed, evaluation pending"] * 2  # eval.enabled=false: not evaluated


def test_a_job_at_its_time_limit_checkpoints_requeues_and_resumes_at_the_same_step(sweep_dir):
    """A 2-minute SLURM time limit and two minutes of training (trainer.max_time, whose
    clock is saved in the checkpoints), so at least two slots: the job is requeued and ends
    completed, each attempt starting at the step the previous one saved, and the CSV log
    holds every step exactly once."""
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    command = [
        str(BIN / "waebench-train"), "-m", *SLURM_TINY, "trainer.limit_train_batches=null",
        "trainer.max_epochs=-1", "+trainer.max_time=\"00:00:02:00\"",
        "callbacks.last_checkpoint.every_n_train_steps=1000000",  # only epoch ends, requeues
        "launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
        # SLURM may send the warning up to a minute early, and a job under load needs ~40 s
        # to start: with a 1-minute limit the signal can come before Python handles it.
        "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=2",
        "hydra.launcher.signal_delay_s=10", "hydra.launcher.max_num_timeout=100",
        "seed=0", f"paths.log_dir={sweep_dir.parent}", f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline"}
    launcher_log = sweep_dir.parent / "launcher.log"
    with open(launcher_log, "w") as out:
        launcher = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    def done() -> bool:
        start_held_requeued_jobs(sweep_dir)
        return launcher.poll() is not None

    wait_for(done, "the job to complete", timeout=3 * WAIT)
    assert launcher.returncode == 0, launcher_log.read_text()[-3000:]

    (run_dir,) = run_dirs(sweep_dir).values()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    log = (run_dir / "train.log").read_text()
    saved = [int(s) for s in re.findall(r"at step (\d+) for the requeue", log)]
    assert len(saved) >= 1, log  # two minutes of training never fit in one slot
    assert len(re.findall(r"Training from step", log)) >= 2, log  # resumed after a requeue
    starts = re.findall(r"Training from step (\d+)|at step (\d+) for the requeue", log)
    last_saved = 0
    for start, save in starts:  # every attempt starts where the one before saved
        if save:
            last_saved = int(save)
        else:
            assert int(start) == last_saved, log
    with open(run_dir / "csv" / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss_step")]
    assert steps == list(range(steps[0], steps[0] + len(steps)))  # none lost, none repeated
    assert steps[-1] + 1 == metrics["global_step"]
