"""A sweep through a real SLURM cluster (hydra-submitit-launcher): the jobs run under SLURM, a
job cancelled mid-way finishes on re-launch without redoing the completed one, a requeued job
resumes by itself, and the report collects the runs.

The cluster: `../shared/tools/local-slurm.sh start` (as root; `.ci/run` does it)."""

from __future__ import annotations

import csv
import json
import os
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
# The job that is cancelled and requeued (3 steps per epoch): long enough to outlive
# SLURM's KillWait (30 s) after the requeue, since submitit ignores the SIGTERM.
LONG_EPOCHS = 1200


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
        f"trainer.max_epochs=1,{LONG_EPOCHS}", f"paths.log_dir={sweep_dir.parent}",
        f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip


def wait_for(condition, timeout: float, what: str) -> None:
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


@pytest.fixture
def sweep_dir(tmp_path):
    """The sweep folder; every SLURM job submitted from it is cancelled at the end."""
    yield tmp_path / "sweep"
    for folder in (tmp_path / "sweep").glob(".submitit/*_*"):
        subprocess.run(["scancel", folder.name], capture_output=True)


def test_sweep_on_slurm_cancel_requeue_relaunch_report(sweep_dir):
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    env = {**os.environ, "WANDB_MODE": "offline"}

    # 1. Launch; once the short job is done and the long one has a checkpoint, cancel it.
    first = subprocess.Popen(sweep_command(sweep_dir), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for(lambda: len(run_dirs(sweep_dir)) == 2, 180, "both jobs to start")
    short, long = run_dirs(sweep_dir)[1], run_dirs(sweep_dir)[LONG_EPOCHS]
    wait_for(lambda: (long / "checkpoints" / "last.ckpt").is_file(), 180, "a checkpoint")
    cancelled = slurm_job_of(sweep_dir, long)
    subprocess.run(["scancel", cancelled], check=True)
    wait_for(lambda: slurm_state(cancelled) == "", 60, "the cancelled job to leave the queue")
    wait_for(lambda: status(short) == "completed", 180, "the short job to complete")
    # Without SLURM accounting (as here) submitit cannot tell a cancelled job from a running
    # one and waits on: stop the launcher, as a user would.
    first.terminate()
    first.wait(timeout=60)
    assert status(long) != "completed"  # SIGTERM: recorded as failed, or nothing written
    short_metrics = (short / "metrics.json").read_text()
    short_mtime = (short / "metrics.json").stat().st_mtime_ns

    # 2. Re-launch: the completed job is skipped, the cancelled one resumes; requeue it mid-way.
    second = subprocess.Popen(sweep_command(sweep_dir), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    wait_for(lambda: (long / "train.log").read_text().count("Resuming from") >= 1, 180, "resume")
    resumed = slurm_job_of(sweep_dir, long)
    wait_for(lambda: slurm_state(resumed) == "RUNNING", 60, "the resumed job to run")
    subprocess.run(["scontrol", "requeue", resumed], check=True)
    # SLURM holds a requeued job for a while (BeginTime); let it start again at once.
    wait_for(lambda: slurm_state(resumed) == "PENDING", 60, "the requeued job to pend")
    subprocess.run(["scontrol", "update", f"JobId={resumed}", "StartTime=now"], check=True)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output[-3000:]

    assert (short / "metrics.json").stat().st_mtime_ns == short_mtime
    assert (short / "metrics.json").read_text() == short_metrics
    assert "Skipping" in (short / "train.log").read_text()
    log = (long / "train.log").read_text()
    assert log.count("Resuming from") >= 2, log  # re-launch, then the requeue
    long_metrics = json.loads((long / "metrics.json").read_text())
    assert long_metrics["status"] == "completed"
    assert long_metrics["epochs"] == LONG_EPOCHS
    assert long_metrics["global_step"] >= 3 * LONG_EPOCHS
    # Both ran as SLURM array tasks: submitit's per-task logs name their run folders.
    slurm_logs = "".join(p.read_text() for p in sweep_dir.glob(".submitit/*/*_log.out"))
    assert str(short) in slurm_logs and str(long) in slurm_logs

    # 3. The report collects both runs.
    subprocess.run([str(BIN / "waebench-report"), str(sweep_dir)], check=True, capture_output=True)
    with open(sweep_dir / "report" / "digits.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["runs_completed"], r["runs_total"]) for r in rows) == [("1", "1")] * 2
    assert "All runs completed." in (sweep_dir / "report" / "report.md").read_text()
