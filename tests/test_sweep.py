"""Sweeps: job folders, GPU placement (logic on a simulated device list; for real where GPUs
exist), parallel jobs with one failing job, and the refusal to reuse another job's folder."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import CONFIG_DIR, TINY, compose_train_config
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from waebench.launch.gpus import DevicePool, run_on_devices, run_pinned_process, visible_gpus
from waebench.launch.job import MAX_DIRNAME, job_dirname, run_sweep_job
from waebench.launch.summary import SweepSummary
from waebench.report import report
from waebench.run.record import (
    NOT_STARTED,
    check_same_job,
    not_started_jobs,
    not_started_path,
    record_failure,
    write_metrics,
)
from waebench.train import train

BIN = Path(sys.executable).parent


def test_job_folder_names_come_from_the_overrides_alone():
    name = job_dirname(["seed=1", "model.width=8", "regularizer=mmd", "ckpt_path=auto"])
    assert name == "regularizer=mmd,seed=1,model.width=8"
    assert job_dirname(["regularizer=mmd", "model.width=8", "seed=1", "launcher=gpus"]) == name
    assert job_dirname(["experiment=wae_paper/mnist_ae"]) == "experiment=wae_paper-mnist_ae"
    long = [f"model.option_{i}={i}" for i in range(30)]
    other = [*long[:-1], "model.option_29=changed"]
    assert len(job_dirname(long)) == MAX_DIRNAME
    assert job_dirname(long) != job_dirname(other)  # same start, different hash


def test_a_folder_holding_another_configuration_is_refused(tmp_path):
    cfg = compose_train_config(tmp_path / "job", ["regularizer=mmd"])
    (tmp_path / "job").mkdir()
    OmegaConf.save(cfg, tmp_path / "job" / "config.yaml", resolve=True)
    check_same_job(tmp_path / "job", cfg)
    other = compose_train_config(tmp_path / "job", ["regularizer=mmd", "regularizer.weight=3"])
    with pytest.raises(ValueError, match="regularizer.weight"):
        check_same_job(tmp_path / "job", other)


@pytest.mark.parametrize("jobs_per_gpu", [1, 2])
def test_parallel_jobs_each_hold_their_own_device(jobs_per_gpu):
    devices = ["0", "1", "2"]
    pool = DevicePool(devices, jobs_per_gpu)
    holders: dict[str, int] = {}
    lock = threading.Lock()
    seen = []

    def run(job: int, device: str) -> str:
        with lock:
            holders[device] = holders.get(device, 0) + 1
            seen.append((job, device, holders[device], sum(holders.values())))
        time.sleep(0.05)
        with lock:
            holders[device] -= 1
        return device

    results = run_on_devices(list(range(12)), pool, run)
    assert len(results) == 12 and set(results) == set(devices)
    assert max(per_device for _, _, per_device, _ in seen) == jobs_per_gpu
    assert max(in_flight for *_, in_flight in seen) == len(devices) * jobs_per_gpu
    first = sorted(seen)[: len(devices)]
    assert {device for _, device, _, _ in first} == set(devices)  # first jobs spread out


def test_visible_gpus_and_a_clear_error_without_any(monkeypatch):
    assert visible_gpus([0, 2]) == ["0", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpus() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    with pytest.raises(ValueError, match="launcher=local"):
        DevicePool([])


def test_a_job_process_that_dies_is_reported_with_its_exit_code(tmp_path):
    result, record = run_pinned_process(b"not a pickled job", "1", tmp_path / "job")
    assert result is None and record["exit_code"] != 0
    assert record["cuda_visible_devices"] == "1" and record["ended"] >= record["started"]
    assert json.loads((tmp_path / "job" / "launcher.json").read_text()) == record
    assert "UnpicklingError" in (tmp_path / "job" / "launcher.log").read_text()


def sweep_run(root: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        str(BIN / "waebench-train"), "-m", *TINY, *overrides,
        f"paths.log_dir={root}", f"hydra.sweep.dir={root / 'sweep'}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run(command, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_gpus_launcher_runs_jobs_in_parallel_pinned_and_survives_a_failing_job(tmp_path):
    """Two simulated GPUs on this CPU machine: both jobs run at once, each in a process that
    sees only its device; the job with a huge learning rate diverges, the other completes, and
    the sweep and the report say so. Each job is its own wandb run (offline), named after its
    folder, grouped by the sweep, and finished, the diverged one too."""
    from wandb.proto.wandb_internal_pb2 import RunRecord

    done = sweep_run(
        tmp_path, "launcher=gpus", "hydra.launcher.devices=[0,1]", "logger=wandb",
        "model.optimizer.lr=1e-3,1e12",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 of 2 jobs did not complete" in done.stderr
    jobs, run_ids = {}, set()
    for config in (tmp_path / "sweep").glob("*/config.yaml"):
        run_dir = config.parent
        jobs[OmegaConf.load(config).model.optimizer.lr] = (
            json.loads((run_dir / "metrics.json").read_text()),
            json.loads((run_dir / "launcher.json").read_text()),
        )
        (wandb_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
        run_ids.add(wandb_file.stem)
        content = wandb_file.read_bytes()  # the run record's group and name, as protobuf bytes
        assert RunRecord(run_group="sweep").SerializeToString() in content
        assert RunRecord(display_name=run_dir.name).SerializeToString() in content
        debug_log = (wandb_file.parent / "logs" / "debug.log").read_text()
        assert f"finishing run waebench/{wandb_file.stem.removeprefix('run-')}" in debug_log
    assert len(run_ids) == 2
    (good, good_launch), (bad, bad_launch) = jobs[1e-3], jobs[1e12]
    assert good["status"] == "completed"
    assert bad["status"] == "diverged" and "traceback" in bad
    assert {good_launch["cuda_visible_devices"], bad_launch["cuda_visible_devices"]} == {"0", "1"}
    for launch in (good_launch, bad_launch):
        assert launch["seen_by_job"]["cuda_visible_devices"] == launch["cuda_visible_devices"]
    assert max(j["started"] for _, j in jobs.values()) < min(j["ended"] for _, j in jobs.values())

    subprocess.run([str(BIN / "waebench-report"), str(tmp_path / "sweep")], check=True,
                   capture_output=True)  # fmt: skip
    markdown = (tmp_path / "sweep" / "report" / "report.md").read_text()
    assert f"| diverged | {bad['error'].splitlines()[0][:300]} |" in markdown


def test_a_job_refused_by_its_config_check_is_listed_with_its_overrides_and_fails_the_sweep(
    tmp_path,
):
    """A multirun whose job regularizer.weight=-1 fails its config check: it gets no run
    folder; the sweep folder's not_started/ records it with its overrides and the error; the
    sweep's summary names it and exits 1, and waebench-report lists it. The other job runs."""
    done = sweep_run(tmp_path, "regularizer.weight=-1,10")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "1 of 2 jobs completed, 0 pruned, 1 never started" in output
    refusal = "regularizer.weight=-1: must be a finite number >= 0"
    assert f"failed, never started: ConfigValueError: invalid config value: {refusal}" in output
    assert "Traceback" not in output
    sweep = tmp_path / "sweep"
    (job,) = [d for d in sweep.iterdir() if (d / "config.yaml").is_file()]
    assert "regularizer.weight=10" in job.name
    assert sorted(d.name for d in sweep.iterdir() if d.is_dir()) == sorted([job.name, NOT_STARTED])
    (entry,) = (sweep / NOT_STARTED).glob("*.json")
    refused = json.loads(entry.read_text())
    assert refused["started"] is False and "regularizer.weight=-1" in refused["overrides"]
    assert not Path(refused["run_dir"]).exists()
    assert f"overrides: {' '.join(refused['overrides'])}" in output
    markdown = report([sweep], tmp_path / "report").read_text()
    gaps = markdown.split("## Failed and unfinished runs")[1]
    (line,) = [row for row in gaps.splitlines() if "never started" in row]
    assert refusal in line and line.endswith(f"| {' '.join(refused['overrides'])} |")


def test_a_job_whose_folder_holds_another_run_is_left_alone_and_recorded(train_config):
    """A sweep job into a folder that holds a run of another configuration: the folder is left
    byte for byte as it was (its .hydra/ included), the sweep records the job as never
    started; once the job starts in a free folder, that record goes."""
    first = train_config("regularizer.weight=3", run="sweep/job")
    train(first)
    job = Path(first.paths.output_dir)
    before = {p: p.read_bytes() for p in job.rglob("*") if p.is_file()}
    assert (job / ".hydra" / "overrides.yaml").is_file()
    metrics = run_sweep_job(train, train_config("regularizer.weight=5", run="sweep/job"))
    assert metrics["started"] is False and "differs in: regularizer.weight" in metrics["error"]
    assert {p: p.read_bytes() for p in job.rglob("*") if p.is_file()} == before
    assert not_started_jobs([job.parent]) == [json.loads(not_started_path(job).read_text())]
    shutil.rmtree(job)
    assert (
        run_sweep_job(train, train_config("regularizer.weight=5", run="sweep/job"))["status"]
        == "completed"
    )
    assert not_started_jobs([job.parent]) == []


def test_the_summary_fails_a_sweep_whose_evaluation_did_not_complete(tmp_path, caplog):
    """The sweep's summary reads the job folders: an evaluation that failed (here: its job
    process died during it, as a launcher records it) fails the sweep with the command that
    fills it; a job run with eval.enabled=false is only said to be not evaluated."""
    jobs = {}
    for name, enabled in (("evaluated_off", False), ("died", True)):
        jobs[name] = tmp_path / "sweep" / name
        cfg = compose_train_config(jobs[name], [f"++eval.enabled={enabled}"])
        jobs[name].mkdir(parents=True)
        OmegaConf.save(cfg, jobs[name] / "config.yaml", resolve=True)
        write_metrics(jobs[name], {"status": "completed", "evaluation": "pending"})
    died = record_failure(jobs["died"], "job process exited with code -9 (see launcher.log)")
    assert died["status"] == "completed" and died["evaluation"] == "failed"
    sweep_config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit, match="1 of 2 jobs did not"):
        SweepSummary().on_multirun_end(sweep_config)
    assert f"{jobs['evaluated_off']}: evaluation not run (eval.enabled=false)" in caplog.text
    assert (
        f"{jobs['died']}: training completed, evaluation failed: job process exited with code -9"
    ) in caplog.text
    # no .hydra/, no launch overrides: waebench-eval with the job's recorded eval settings
    assert f"""fill it with: waebench-eval 'ckpt_path="{jobs["died"].resolve()}"'""" in caplog.text


def test_an_exception_before_training_is_recorded_as_a_failure(tmp_path):
    try:
        raise ValueError("model.latent_dim=-1 must be positive")
    except ValueError as error:
        metrics = record_failure(tmp_path, error)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == metrics
    assert saved["status"] == "failed"
    assert saved["error"] == "ValueError: model.latent_dim=-1 must be positive"
    assert "Traceback" in saved["traceback"]


@pytest.mark.gpu
@pytest.mark.slow
def test_gpus_launcher_on_real_gpus(tmp_path):
    """Wherever GPUs exist: N jobs on N GPUs, each job sees exactly one GPU, the one it was
    given (matched by UUID with nvidia-smi), and jobs in flight together see different ones."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible")
    listing = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    uuids = dict(line.split(", ") for line in listing.strip().splitlines())
    seeds = ",".join(str(s) for s in range(max(2, len(uuids))))
    done = sweep_run(tmp_path, "launcher=gpus", "trainer.accelerator=gpu", f"seed={seeds}")
    assert done.returncode == 0, done.stderr[-3000:]
    launches = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob("*/launcher.json")]
    for launch in launches:
        seen = launch["seen_by_job"]
        print(f"job on CUDA_VISIBLE_DEVICES={launch['cuda_visible_devices']} saw {seen}")
        assert seen["cuda_device_count"] == 1
        assert seen["uuid"].removeprefix("GPU-") in uuids[launch["cuda_visible_devices"]]
    for a in launches:
        for b in launches:
            overlap = a is not b and a["started"] < b["ended"] and b["started"] < a["ended"]
            assert not overlap or a["seen_by_job"]["uuid"] != b["seen_by_job"]["uuid"]


def test_the_paper_table_sweep_covers_every_paper_model_with_three_seeds(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["sweep=wae_paper_table"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    params = cfg.hydra.sweeper.params
    experiments = {e.strip() for e in params.experiment.split(",")}
    expected = {
        f"wae_paper/{dataset}_{model}"
        for dataset in ("mnist", "celeba")
        for model in ("ae", "vae", "wae_mmd", "wae_gan")
    }
    assert experiments == expected
    assert all((CONFIG_DIR / "experiment" / f"{e}.yaml").is_file() for e in experiments)
    assert params.seed == "0,1,2"
    # A fixed folder: running the command again finishes the same sweep.
    assert (
        OmegaConf.to_container(cfg.hydra.sweep)["dir"] == "${paths.log_dir}/sweeps/wae_paper_table"
    )


def test_the_two_study_sweeps_differ_only_in_dataset_and_folder():
    """sweep=fmnist_study and sweep=mnist_study: the models and seed of conf/sweep/study.yaml."""
    composed = {}
    for study in ("fmnist_study", "mnist_study"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"sweep={study}"], return_hydra_config=True)
        composed[study] = OmegaConf.to_container(cfg)
    GlobalHydra.instance().clear()
    fmnist, mnist = composed["fmnist_study"], composed["mnist_study"]
    assert fmnist["dataset"]["name"] == "fashion_mnist" and mnist["dataset"]["name"] == "mnist"
    assert fmnist["hydra"]["sweep"]["dir"] == "${paths.log_dir}/sweeps/fmnist_study"
    assert mnist["hydra"]["sweep"]["dir"] == "${paths.log_dir}/sweeps/mnist_study"
    params = mnist["hydra"]["sweeper"]["params"]
    assert {"none", "kl", "mmd", "gan", "rae_gp", "cv_vae"} <= set(params["regularizer"].split(","))
    assert str(params["seed"]) == "0"
    for cfg in (fmnist, mnist):
        del cfg["dataset"], cfg["hydra"]["sweep"]["dir"], cfg["hydra"]["runtime"]
        del cfg["hydra"]["overrides"], cfg["hydra"]["job"]
    assert fmnist == mnist
