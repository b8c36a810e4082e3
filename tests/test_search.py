"""Hyper-parameter search (Optuna sweeper): the search space and its checks, the study
bookkeeping that keeps racing and killed sweepers from losing or doubling trials, and real
studies on digits with tiny networks: a finished study against its job folders, kill -9 of the
sweeper and of a trial, two sweepers on one study (SQLite, journal file, PostgreSQL), pruning,
SLURM, and the report."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import TINY, compose_train_config
from hydra.core.global_hydra import GlobalHydra
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from waebench.reporting.search import study_section
from waebench.search.outcome import read_outcome
from waebench.search.space import SearchSpaceError, check_space, parse_space
from waebench.search.study import (
    CANCELLED,
    FOLDER,
    HEARTBEAT,
    PRUNED_BY,
    REASON,
    RETRY_OF,
    StorageError,
    claim,
    open_storage,
    read_search_file,
    take_back_stale,
    write_search_file,
)

BIN = Path(sys.executable).parent
POSTGRES_URL = os.environ.get(
    "WAEBENCH_TEST_POSTGRES_URL", "postgresql://waebench:waebench@localhost/waebench"
)
# Trials: 3 steps per epoch, a resume checkpoint every 2 steps; the sweeper says it is alive
# every second and takes back a trial that was silent for 3 s.
SEARCH = [
    *TINY,
    "callbacks.last_checkpoint.every_n_train_steps=2",
    "hydra.sweeper.heartbeat_interval=1",
    "hydra.sweeper.grace_period=3",
    "model.optimizer.lr=tag(log, interval(1e-4, 1e-2))",
    "regularizer.weight=choice(1.0, 3.0, 10.0)",
]


def search_command(sweep_dir: Path, *overrides: str) -> list[str]:
    return [
        str(BIN / "waebench-train"), "-m", "sweeper=optuna", *SEARCH, *overrides,
        f"paths.log_dir={sweep_dir.parent}", f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip


def run_search(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run(
        search_command(sweep_dir, *overrides), env=env, capture_output=True, text=True
    )


def start_search(sweep_dir: Path, *overrides: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline"}
    with open(log, "w") as out:
        return subprocess.Popen(
            search_command(sweep_dir, *overrides), env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
    return result


def load(sweep_dir: Path, url: str | None = None) -> optuna.Study:
    url = url or f"sqlite:///{sweep_dir}/optuna.db"
    return optuna.load_study(study_name=sweep_dir.name, storage=open_storage(url))


def check_study(
    sweep_dir: Path, study: optuna.Study, n_trials: int
) -> list[optuna.trial.FrozenTrial]:
    """n_trials completed trials, each in its own folder, whose metrics.json holds its value
    and config.yaml its parameters; every folder on disk belongs to a completed trial."""
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == n_trials, [(t.number, t.state, t.user_attrs) for t in study.trials]
    folders = [t.user_attrs[FOLDER] for t in complete]
    assert len(set(folders)) == n_trials, folders
    assert {p.parent.name for p in sweep_dir.glob("*/config.yaml")} == set(folders)
    for trial in complete:
        run_dir = sweep_dir / trial.user_attrs[FOLDER]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["status"] == "completed"
        assert trial.values == [metrics["val"]["loss"]]
        config = (run_dir / "config.yaml").read_text()
        assert f"lr: {trial.params['model.optimizer.lr']}" in config
        assert f"weight: {trial.params['regularizer.weight']}" in config
    return complete


def runs_per_folder(outputs: str) -> dict[str, int]:
    """How many times each job folder was trained from scratch, from the sweepers' logs."""
    counts: dict[str, int] = {}
    for folder in re.findall(r"no (.*)/checkpoints/last\.ckpt yet, starting fresh", outputs):
        counts[Path(folder).name] = counts.get(Path(folder).name, 0) + 1
    return counts


# --- the search space and bad input -------------------------------------------------------


def test_the_search_space_is_read_from_hydra_sweep_syntax():
    space, fixed = parse_space(
        {"model.optimizer.lr": "tag(log, interval(1e-4, 1e-2))", "regularizer": "mmd,gan"},
        ["model.latent_dim=range(4, 17, 4)", "model.width=choice(8, 16)", "seed=3"],
    )
    assert space == {
        "model.optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "regularizer": CategoricalDistribution(["mmd", "gan"]),
        "model.latent_dim": IntDistribution(4, 16, step=4),
        "model.width": CategoricalDistribution([8, 16]),
    }
    assert fixed == ["seed=3"]


def test_a_search_space_of_the_wrong_type_or_key_names_the_parameter(tmp_path):
    cfg = compose_train_config(tmp_path / "run", [])
    check_space(
        {
            "model.latent_dim": IntDistribution(2, 16),
            "regularizer": CategoricalDistribution(["gan"]),
        },
        cfg,
    )
    with pytest.raises(SearchSpaceError, match=r"model\.latent_dim is int .*tag\(int"):
        check_space(parse_space({"model.latent_dim": "interval(2, 16)"}, [])[0], cfg)
    with pytest.raises(SearchSpaceError, match=r"regularizer\.weight is float .* str values"):
        check_space(parse_space({"regularizer.weight": "choice(a, b)"}, [])[0], cfg)
    with pytest.raises(SearchSpaceError, match=r"model\.latnet_dim is not a key"):
        check_space(parse_space({"model.latnet_dim": "choice(2, 4)"}, [])[0], cfg)
    with pytest.raises(SearchSpaceError, match=r"model\.optimizer\.lr: .*log"):
        parse_space({"model.optimizer.lr": "tag(log, interval(0, 1))"}, [])
    GlobalHydra.instance().clear()


def test_an_objective_no_trial_writes_names_the_metrics_that_exist(tmp_path):
    metrics = {
        "status": "completed", "val": {"loss": 2.0, "rec": 1.5},
        "eval": {"fid/samples/prior@classifier-mnist": {"value": 7.0}},
    }  # fmt: skip
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    assert read_outcome(tmp_path, ["val/rec", "fid/samples/prior@classifier-mnist"]).values == [
        1.5,
        7.0,
    ]
    outcome = read_outcome(tmp_path, ["val/fid"])
    assert outcome.state == "failed"
    assert "val/fid not in" in outcome.reason
    assert "fid/samples/prior@classifier-mnist, val/loss, val/rec" in outcome.reason
    metrics["eval_error"] = "FileNotFoundError: no Inception weights"
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    reason = read_outcome(tmp_path, ["fid/samples/prior"]).reason
    assert "(its evaluation failed: FileNotFoundError: no Inception weights)" in reason


def test_an_unreachable_storage_says_which_url_and_what_failed():
    with pytest.raises(
        StorageError, match=r"postgresql://waebench:\*\*\*@127\.0\.0\.1:9/x.*refused"
    ):
        open_storage("postgresql://waebench:secret@127.0.0.1:9/x")


def test_an_unreachable_storage_stops_the_search_before_any_trial(tmp_path):
    done = run_search(tmp_path / "sweep", "hydra.sweeper.storage=postgresql://nobody@127.0.0.1:9/x")
    assert done.returncode != 0
    assert "cannot open the study storage postgresql://nobody@127.0.0.1:9/x" in done.stderr
    assert not list((tmp_path / "sweep").glob("trial=*"))


# --- bookkeeping: racing and killed sweepers -------------------------------------------------


def test_racing_sweepers_ask_exactly_n_trials_and_rerun_a_stale_trial_once(tmp_path):
    """Two "sweepers" (two Study objects on one SQLite file) ask trials in turn: the trials past
    n_trials are cancelled. A trial whose sweeper stopped beating is failed and re-run once, in
    its folder, however many sweepers look at it."""
    url = f"sqlite:///{tmp_path}/optuna.db"
    space = {"x": FloatDistribution(0, 1)}
    a = optuna.create_study(storage=open_storage(url), study_name="s")
    b = optuna.load_study(storage=open_storage(url), study_name="s")
    kept = [t for _ in range(4) for s in (a, b) if claim(s, t := s.ask(space), 6)]
    assert [t.number for t in kept] == [0, 1, 2, 3, 4, 5]
    assert all(t.user_attrs.get(CANCELLED) for t in a.trials[6:])
    for trial in kept[1:]:
        a.tell(trial, 0.5)
    stale = kept[0]
    a._storage.set_trial_system_attr(stale._trial_id, HEARTBEAT, time.time() - 100)
    take_back_stale(a, tmp_path, ["val/loss"], grace_period=10, max_retries=2)
    take_back_stale(b, tmp_path, ["val/loss"], grace_period=10, max_retries=2)
    assert a.trials[0].state == TrialState.FAIL and "interrupted" in a.trials[0].user_attrs[REASON]
    (rerun,) = a.get_trials(states=(TrialState.WAITING,))
    assert rerun.user_attrs == {FOLDER: stale.user_attrs[FOLDER], RETRY_OF: 0}
    asked = b.ask(space)
    assert claim(b, asked, 6) and asked.params == stale.params


def test_a_stale_trial_whose_job_ended_counts_as_its_job_ended(tmp_path):
    """The sweeper died after its trials' jobs ended but before it told the study: the next
    sweeper concludes them from their folders (completed: the value in its metrics.json;
    stopped by the pruner: pruned, and its metrics.json says so) and re-runs neither."""
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/optuna.db"))
    done, pruned = (
        study.ask({"x": FloatDistribution(0, 1)}),
        study.ask({"x": FloatDistribution(0, 1)}),
    )
    for trial in (done, pruned):
        assert claim(study, trial, 2)
        study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT, time.time() - 100)
    pruned.set_user_attr(PRUNED_BY, "pruned after epoch 0: val/rec=9")
    written = [
        {"status": "completed", "val": {"loss": 0.25}},
        {"status": "failed", "error": "TrialPruned: pruned", "traceback": "..."},
    ]
    for trial, metrics in zip(study.trials, written, strict=True):
        (tmp_path / trial.user_attrs[FOLDER]).mkdir()
        (tmp_path / trial.user_attrs[FOLDER] / "metrics.json").write_text(json.dumps(metrics))
    take_back_stale(study, tmp_path, ["val/loss"], grace_period=10, max_retries=2)
    first, second = study.trials  # nothing re-run
    assert first.state == TrialState.COMPLETE and first.values == [0.25]
    assert second.state == TrialState.PRUNED
    metrics = json.loads((tmp_path / second.user_attrs[FOLDER] / "metrics.json").read_text())
    assert metrics["status"] == "pruned" and "traceback" not in metrics


def test_the_report_of_a_multi_objective_study_shows_its_pareto_front(tmp_path):
    """Two objectives: the best-trials table is the Pareto front (a dominated trial is left out)
    beside Optuna's Pareto front plot; a failed trial is listed with why."""
    sweep, url = tmp_path / "sweep", f"sqlite:///{tmp_path}/sweep/optuna.db"
    objectives, directions = ["rec/test", "fid/samples/prior"], ["minimize", "minimize"]
    write_search_file(
        sweep,
        {"study_name": "s", "storage": url, "objective": objectives, "direction": directions,
         "n_trials": 4, "pruner": None, "monitor": None},
    )  # fmt: skip
    study = optuna.create_study(storage=open_storage(url), study_name="s", directions=directions)
    for values in ([1.0, 9.0], [2.0, 2.0], [3.0, 3.0], None):  # trial 2 is dominated by 1
        trial = study.ask({"x": FloatDistribution(0, 1)})
        assert claim(study, trial, 4)
        if values is None:
            trial.set_user_attr(REASON, "diverged: loss is nan")
        study.tell(trial, values, state=None if values else TrialState.FAIL)
    text = study_section(sweep, read_search_file(sweep), tmp_path / "report")
    front = text.split("### Pareto front")[1].split("###")[0]
    assert [row.split("|")[1].strip() for row in front.splitlines() if re.match(r"\| \d", row)] == [
        "0",
        "1",
    ]
    assert (tmp_path / "report" / "search-s-pareto.png").stat().st_size > 1000
    assert re.search(r"\| 3 \| fail \| trial=3,x=.* \| diverged: loss is nan \|", text)


# --- real studies ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_study_finishes_with_its_best_trial_in_its_job_folder_and_the_report(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_search(sweep, "hydra.sweeper.n_trials=6")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = load(sweep)
    complete = check_study(sweep, study, 6)
    assert sorted(t.number for t in complete) == list(range(6))
    best = study.best_trial
    metrics = json.loads((sweep / best.user_attrs[FOLDER] / "metrics.json").read_text())
    assert best.value == metrics["val"]["loss"] == min(t.value for t in complete)

    again = run_search(sweep, "hydra.sweeper.n_trials=6")  # the same command: nothing to do
    assert again.returncode == 0 and len(load(sweep).trials) == 6
    assert not runs_per_folder(again.stdout + again.stderr)

    report = subprocess.run(
        [str(BIN / "waebench-report"), str(sweep), "--out", str(tmp_path / "report")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Search: sweep" in text and "6 complete of 6 trials" in text
    best_row = next(line for line in text.splitlines() if line.startswith(f"| {best.number} |"))
    assert f"{best.value:.5g}" in best_row and best.user_attrs[FOLDER] in best_row
    for plot in ("history-val_loss", "importances-val_loss"):
        assert (tmp_path / "report" / f"search-sweep-{plot}.png").stat().st_size > 1000
    assert "Report written" in report.stdout


@contextlib.contextmanager
def search_with_a_checkpoint(sweep: Path, args: list[str], trial: int, log: Path):
    """A search started in its own process group, yielded as (sweeper process, `last.ckpt`)
    once trial `trial` has written its last.ckpt; the whole group is killed on the way out."""
    sweeper = start_search(sweep, *args, log=log)
    try:
        ckpt = wait_for(
            lambda: next(iter(sweep.glob(f"trial={trial},*/checkpoints/last.ckpt")), None),
            600, f"trial {trial}'s last.ckpt",
        )  # fmt: skip
        yield sweeper, ckpt
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group may be gone already
            os.killpg(sweeper.pid, signal.SIGKILL)
        sweeper.wait()


@pytest.mark.slow
def test_kill_9_of_the_sweeper_then_the_same_command_resumes_the_study(tmp_path):
    """The sweeper (and with it the trial running in its process) is killed while trial 1
    trains; the same command takes trial 1 back (it resumes from its last.ckpt in its folder)
    and ends with 4 completed trials, each in its own folder, none trained twice."""
    sweep = tmp_path / "sweep"
    args = ["hydra.sweeper.n_trials=4", "trainer.max_epochs=15"]
    with search_with_a_checkpoint(sweep, args, 1, tmp_path / "first.log") as (_, ckpt):
        assert not (ckpt.parents[1] / "metrics.json").exists()
    done = run_search(sweep, *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = load(sweep)
    check_study(sweep, study, 4)
    killed = study.trials[1]
    assert killed.state == TrialState.FAIL and "sweeper stopped" in killed.user_attrs[REASON]
    (rerun,) = [t for t in study.trials if t.user_attrs.get(RETRY_OF) == 1]
    assert rerun.state == TrialState.COMPLETE and rerun.user_attrs[FOLDER] == ckpt.parents[1].name
    assert "Resuming from" in (ckpt.parents[1] / "train.log").read_text()
    outputs = (tmp_path / "first.log").read_text() + done.stdout + done.stderr
    assert set(runs_per_folder(outputs).values()) == {1}


@pytest.mark.slow
def test_kill_9_of_a_trial_process_reruns_it_in_its_folder(tmp_path):
    """launcher=gpus (one simulated device) runs each trial in its own process: that process is
    killed mid-training; the sweeper re-runs the trial at once, resuming from its last.ckpt."""
    sweep = tmp_path / "sweep"
    args = [
        "hydra.sweeper.n_trials=2", "trainer.max_epochs=15", "launcher=gpus",
        "hydra.launcher.devices=[0]",
    ]  # fmt: skip
    log = tmp_path / "sweeper.log"
    with search_with_a_checkpoint(sweep, args, 0, log) as (sweeper, ckpt):
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(sweeper.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGKILL)
        assert sweeper.wait(timeout=600) == 0, log.read_text()[-3000:]
    study = load(sweep)
    check_study(sweep, study, 2)
    assert study.trials[0].state == TrialState.FAIL
    assert "exited with code -9" in study.trials[0].user_attrs[REASON]
    (rerun,) = [t for t in study.trials if t.user_attrs.get(RETRY_OF) == 0]
    assert rerun.state == TrialState.COMPLETE and rerun.user_attrs[FOLDER] == ckpt.parents[1].name
    assert "Resuming from" in (ckpt.parents[1] / "launcher.log").read_text()


@pytest.mark.slow
def test_kill_9_of_the_sweeper_alone_counts_its_running_trial_as_its_job_ends(tmp_path):
    """As under SLURM, the trial's job outlives its killed sweeper (launcher=gpus: the job is a
    process of its own, and beats for its trial). The same command, started at once, leaves that
    trial to its job and counts it when the job ends: completed, trained once, not re-run."""
    sweep = tmp_path / "sweep"
    args = [
        "hydra.sweeper.n_trials=2", "trainer.max_epochs=10", "launcher=gpus",
        "hydra.launcher.devices=[0]",
    ]  # fmt: skip
    with search_with_a_checkpoint(sweep, args, 0, tmp_path / "sweeper.log") as (sweeper, ckpt):
        os.kill(sweeper.pid, signal.SIGKILL)
        sweeper.wait()
        done = run_search(sweep, *args)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = load(sweep)
    check_study(sweep, study, 2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert "Resuming from" not in (ckpt.parents[1] / "launcher.log").read_text()


def postgres_problem() -> str | None:
    try:
        open_storage(POSTGRES_URL)
    except StorageError as error:
        return f"no PostgreSQL at {POSTGRES_URL} ({error}); .ci/run starts one"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "journal", "postgresql"])
def test_two_sweepers_on_one_study_lose_no_trial_and_run_none_twice(tmp_path, storage):
    sweep = tmp_path / "sweep"
    if storage == "postgresql":
        if problem := postgres_problem():
            pytest.skip(problem)
        url = POSTGRES_URL
        name = f"test-{os.getpid()}-{time.time_ns()}"
        args = [f"hydra.sweeper.storage={url}", f"hydra.sweeper.study_name={name}"]
    elif storage == "journal":
        url, name, args = (
            f"journal:{sweep}/optuna.journal",
            sweep.name,
            ["hydra.sweeper.storage=journal"],
        )
    else:
        url, name, args = f"sqlite:///{sweep}/optuna.db", sweep.name, []
    args += ["hydra.sweeper.n_trials=4"]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    sweepers = [start_search(sweep, *args, log=log) for log in logs]
    outputs = ""
    for sweeper, log in zip(sweepers, logs, strict=True):
        code = sweeper.wait(timeout=900)
        outputs += log.read_text()
        assert code == 0, log.read_text()[-3000:]
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    check_study(sweep, study, 4)
    assert runs_per_folder(outputs) == {
        t.user_attrs[FOLDER]: 1 for t in study.trials if FOLDER in t.user_attrs
    }
    assert {t.state for t in study.trials if not t.user_attrs.get(CANCELLED)} == {
        TrialState.COMPLETE
    }


@pytest.mark.slow
def test_pruning_stops_a_trial_that_is_clearly_worse(tmp_path):
    """Trial 0 learns (lr 3e-3), trial 1 cannot (lr 1e-9): after its first epoch trial 1's
    val/rec is above trial 0's, so the median pruner (1 startup trial) stops it; it is recorded
    as pruned, with its checkpoint, and the sweep counts it as ended."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    study = optuna.create_study(
        storage=open_storage(f"sqlite:///{sweep}/optuna.db"), study_name=sweep.name
    )
    study.enqueue_trial({"model.optimizer.lr": 3e-3, "regularizer.weight": 1.0})
    study.enqueue_trial({"model.optimizer.lr": 1e-9, "regularizer.weight": 1.0})
    done = run_search(
        sweep, "hydra.sweeper.n_trials=2", "trainer.max_epochs=3", "trainer.limit_train_batches=10",
        "hydra.sweeper.pruning.monitor=val/rec", "hydra.sweeper.pruner.n_startup_trials=1",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    good, bad = load(sweep).trials
    assert good.state == TrialState.COMPLETE and bad.state == TrialState.PRUNED
    assert bad.intermediate_values[0] > good.intermediate_values[0]
    run_dir = sweep / bad.user_attrs[FOLDER]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "pruned" and "pruned after epoch 0: val/rec" in metrics["error"]
    assert metrics["epochs"] == 0 and (run_dir / "checkpoints" / "last.ckpt").is_file()
    report = subprocess.run(
        [str(BIN / "waebench-report"), str(sweep)], capture_output=True, text=True, check=True
    )
    assert re.search(r"\| 1 \| pruned \| trial=1,.* \| pruned after epoch 0", report.stdout)


@pytest.mark.slow
def test_an_objective_that_no_trial_writes_stops_the_search_with_the_existing_keys(tmp_path):
    done = run_search(
        tmp_path / "sweep", "hydra.sweeper.n_trials=2", "hydra.sweeper.objective=[val/fid]"
    )
    assert done.returncode != 0
    assert re.search(
        r"objective val/fid not in .*metrics are: .*val/loss, .*val/rec", done.stderr, re.S
    )
    assert len(list((tmp_path / "sweep").glob("trial=*"))) == 1


@pytest.mark.slow
@pytest.mark.slurm
def test_a_study_on_slurm_runs_its_trials_as_array_tasks(tmp_path):
    from test_slurm import cluster_problem

    if problem := cluster_problem():
        pytest.skip(problem)
    sweep = tmp_path / "sweep"
    done = run_search(
        sweep, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "launcher=slurm",
        "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_study(sweep, load(sweep), 4)
    tasks = sorted(p.name for p in sweep.glob(".submitit/[!.]*_*"))  # not .submission_file_*
    arrays = {name.split("_")[0] for name in tasks}
    assert len(tasks) == 4 and len(arrays) == 2, tasks
    assert {name.split("_")[1] for name in tasks} == {"0", "1"}
