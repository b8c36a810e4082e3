"""The comparison study at the paper's scale on one GPU, in one command that ends within a
wall-clock budget (8 minutes by default; docs/gpu.md):

    python benchmarks/gpu_study.py prepare --out OUT   # times the study's epochs (8 jobs at once)
    python benchmarks/gpu_study.py run --out OUT       # plans the epochs, trains, evaluates, page
    (or `bash benchmarks/gpu_check.sh prepare|study OUT`; --tiny: the same on a CPU, tiny nets)

`run` trains the first --models models of each --sweeps config (default: the 8 of
`fmnist_study`, then `mnist_study` where that config exists) with the paper's networks and
MNIST protocol (`experiment=wae_paper/mnist_protocol`: width 128, batch 100, Adam 1e-3 with
beta1 0.5, the lr decay after epochs 30 and 50 of 100, scaled to the epochs used), all
models of one wave in flight at once on the GPU (`launcher=gpus`, `jobs_per_gpu` = models),
with the GPU options the tests check (GPU_OPTIONS). Each job then evaluates itself (the
10,000-sample Inception FID of prior samples, GMM samples and reconstructions, the
classifier FID, latent MMD, test losses), and `waebench-report --page` draws the page.

The epochs: `prepare` (or `run` itself, when no matching calibration exists) trains the same
jobs for CALIBRATION_EPOCHS and times them with `step_timer.StepTimer`: start-up (launch to
the first epoch, encoder pre-training included), one epoch with all jobs sharing the GPU
(corrected for the jobs that were not running at the time), evaluation, the page. `run`
also times one 10,000-image Inception pass (which caches the real side's statistics the jobs
then read). The epoch count is what fits in the budget left after start-up, evaluation, page
and packing, at most the protocol's 100. Further waves (priority: MNIST seed 0, then the next
seed of each sweep) run only when the first one reached those 100 epochs and time remains.
A hard deadline stops the jobs in time for the page and the archives, whatever happened.

OUT receives (at most 8 files, each checked to be under 16 MiB, folders flat): results.jsonl
(one JSON object per line: the plan, every run, every wave, the summary), runs.tar.gz (each
run's metrics.json, config.yaml, overrides, CSV log, logs and timings; no checkpoints),
page.tar.gz (each dataset's page and figures) and study.log; `prepare`: results.jsonl (the
calibration, the gpu tests' summary, train_speed.py's rows), calibration.json,
calibration_runs.tar.gz, tests.log and prepare.log. Runs, checkpoints and the FID cache stay
in --work (default .gpu/work, git-ignored, kept between warm calls on the device machine).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
PROTOCOL = "wae_paper/mnist_protocol"
# The seeds of the GPU study's waves: the CPU study's sweep runs one (conf/sweep/study.yaml,
# cut to fit 2 cores); a GPU has room for the three of the protocol.
SEEDS = [0, 1, 2]
DEFAULT_SWEEPS = "fmnist_study,mnist_study"
MIB = 2**20
RETURN_FILE_LIMIT = 16 * MIB  # the device tool: at most 8 files of 16 MiB come back
RETURN_FILES = 8
CALIBRATION_EPOCHS = 2  # the second, steady epoch is the one timed
# The options tests/test_fast.py checks against float32 (penalties stay float32 under bf16).
GPU_OPTIONS = (
    "trainer.accelerator=gpu",
    "trainer.precision=bf16-mixed",
    "model.channels_last=true",
    "trainer.benchmark=true",
    "dataset.on_device=true",
)
# Per-run bookkeeping that changes no number: last.ckpt at epoch ends only (the page and
# the evaluation use the final weights; no best.ckpt), fewer logged steps, the timer.
RUN_OPTIONS = (
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=50",
    "~callbacks.best_checkpoint",
    "callbacks.last_checkpoint.every_n_train_steps=null",
    "callbacks.last_checkpoint.every_n_minutes=null",
    "+callbacks.step_timer._target_=step_timer.StepTimer",
)
EVAL_OPTIONS = ("eval.inception.enabled=true", "eval.inception.num_samples=10000")
# --tiny, after the options above: the same code paths on a CPU in seconds (the numbers mean
# nothing; bf16, channels_last and the data placement run on the CPU too), the FIDs in the
# classifier's feature space only, the page without t-SNE.
TINY_OPTIONS = (
    "trainer.accelerator=cpu",
    "model.width=8",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
    "model.e_pretrain.max_steps=3",
    "eval.inception.enabled=false",  # Inception on a CPU: ~10 s a FID; the classifier's instead
    "eval.classifier.num_samples=100",
    "eval.classifier.num_real=100",
    "eval.classifier.train_steps=10",
    "eval.latent_mmd_codes=100",
)
# Not measured on a device yet: used where no calibration gives the number (labelled so).
ASSUMED = {"page_s": 90.0, "eval_s": 60.0, "extra_fid_set_s": 5.0}
PACK_S = 10.0  # archives and results
MARGIN_S = 20.0  # kill grace and what the estimates miss
# --tiny unless given: 2 models, 2 epochs standing for the protocol's 100, budgets a busy CPU
# keeps (the deadline is tested on its own).
TINY_DEFAULTS = {"models": "2", "max_seeds": 1, "max_epochs": 2, "budget": 900.0}
TINY_PAGE_OPTIONS = ("--no-tsne", "--points", "300")
TSNE_MAX_PAGE_S = 60.0  # a calibration page slower than this: the study's page without t-SNE
KILL_GRACE_S = 8.0


def log(message: str) -> None:
    print(f"[gpu_study {time.strftime('%H:%M:%S')}] {message}", flush=True)


def append_row(path: Path, row: dict) -> None:
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **row}
    with open(path, "a") as out:
        out.write(json.dumps(row) + "\n")


# ---- the study's jobs -------------------------------------------------------------------


@dataclass
class Sweep:
    """One sweep config's study: its dataset and models (from the config itself), SEEDS."""

    name: str
    dataset: str
    models: list[str]
    seeds: list[int]
    protocol_epochs: int
    milestones: list[int]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    sys.path.insert(0, str(REPO / "src"))
    from waebench.build import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg


def sweep_exists(name: str) -> bool:
    return (REPO / "conf" / "sweep" / f"{name}.yaml").is_file()


def read_sweep(name: str, models: str) -> Sweep:
    """The sweep's dataset, its first `models` regularizers (a count, or names), SEEDS, and
    the protocol's epochs and lr milestones, as composed with the paper's protocol."""
    base = compose([f"sweep={name}"])
    dataset = str(base.dataset.name)
    cfg = compose([f"sweep={name}", f"experiment={PROTOCOL}", f"dataset={dataset}"])
    params = cfg.hydra.sweeper.params
    listed = [r.strip() for r in str(params.get("regularizer", "")).split(",") if r.strip()]
    if not listed:
        raise SystemExit(f"conf/sweep/{name}.yaml sweeps no `regularizer`: nothing to train")
    if models.isdigit():
        chosen = listed[: int(models)]
    else:
        chosen = [m.strip() for m in models.split(",")]
        unknown = sorted(set(chosen) - set(listed))
        if unknown:
            raise SystemExit(f"--models {models}: {unknown} not in sweep={name} ({listed})")
    return Sweep(
        name, dataset, chosen, SEEDS, int(cfg.trainer.max_epochs),
        [int(m) for m in cfg.model.lr_schedule.milestones],
    )  # fmt: skip


def fid_sets_per_job(sweep: Sweep) -> int:
    """The image sets each job's evaluation scores by FID: one per sampler (N, GMM,
    two-stage in the study), the reconstructions and the interpolations where switched on."""
    evaluation = compose([f"sweep={sweep.name}"]).eval
    return (
        len(evaluation.samplers)
        + bool(evaluation.fid.reconstructions)
        + bool(evaluation.fid.interpolations)
    )


def scaled_milestones(milestones: list[int], epochs: int, protocol_epochs: int) -> list[int]:
    """The protocol's lr milestones at the same fractions of `epochs` (30, 50 of 100 ->
    4, 7 of 13), rounded half up, at least 1."""
    return [max(1, math.floor(m * epochs / protocol_epochs + 0.5)) for m in milestones]


def data_root(dataset: str, work: Path) -> str | None:
    """$WAEBENCH_<DATASET>_DIR, else the bundle's unpacked copy (.gpu/data/<dataset>), else
    None (the loader's own search: paths.data_dir, Debian's Fashion-MNIST)."""
    env = os.environ.get(f"WAEBENCH_{dataset.upper()}_DIR")
    if env:
        return env
    unpacked = REPO / ".gpu" / "data" / dataset
    return str(unpacked) if unpacked.is_dir() else None


def study_overrides(sweep: Sweep, args, work: Path) -> list[str]:
    """Every override of the sweep's jobs except the epochs, seeds and folders."""
    out = [
        f"sweep={sweep.name}",
        f"experiment={PROTOCOL}",
        f"dataset={sweep.dataset}",
        f"regularizer={','.join(sweep.models)}",
        *GPU_OPTIONS,
        *RUN_OPTIONS,
        *EVAL_OPTIONS,
        f"model.compile={'true' if args.compile else 'false'}",
        "launcher=gpus",
        f"hydra.launcher.jobs_per_gpu={len(sweep.models)}",
    ]
    if args.tiny:  # a simulated GPU: the jobs run on the CPU; every batch timed
        out += [*TINY_OPTIONS, "hydra.launcher.devices=[0]", "+callbacks.step_timer.every=1"]
    root = data_root(sweep.dataset, work)
    if root:
        out.append(f"dataset.root={root}")
    return out


def one_job(overrides: list[str], model: str) -> list[str]:
    """The overrides of one job of the sweep (`model`), as Hydra's compose takes them."""
    kept = [o for o in overrides if not o.startswith(("hydra.", "launcher=", "regularizer="))]
    return [*kept, f"regularizer={model}"]


def job_env(args, work: Path) -> dict[str, str]:
    threads = str(max(1, (os.cpu_count() or 2) // 8))
    path = [str(REPO / "src"), str(BENCHMARKS), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "PYTHONUNBUFFERED": "1",
        "WANDB_MODE": "offline",
        "WAEBENCH_CACHE_DIR": str(work / "cache"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads),
    }


def run_until(command: list[str], deadline: float, log_path: Path, env: dict) -> dict:
    """Run `command` in its own process group until it ends or `deadline` (time.time())
    passes; then SIGTERM the whole group (the launcher and every job), SIGKILL after
    KILL_GRACE_S. Output goes to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(log_path, "ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip
        killed = False
        try:
            rc = process.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            killed = True
            os.killpg(process.pid, signal.SIGTERM)
            try:
                rc = process.wait(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                rc = process.wait()
    return {"exit_code": rc, "killed_at_deadline": killed, "wall_s": time.time() - started}


def launch_wave(overrides: list[str], sweep_dir: Path, deadline: float, env: dict, log_path):
    """One `waebench-train -m` of the overrides into `sweep_dir`; (launch time, result)."""
    command = [sys.executable, "-m", "waebench.train", "-m", *overrides]
    command.append(f"hydra.sweep.dir={sweep_dir}")
    log(f"launch: {shlex.join(command[3:])}")
    launched = time.time()
    return launched, run_until(command, deadline, log_path, env)


# ---- timings ----------------------------------------------------------------------------


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def job_timing(run_dir: Path, launched: float) -> dict | None:
    """A job's times from its step_times.json (StepTimer) and launcher.json, or None. A job
    stopped before the end of training counts its epochs up to the last one started."""
    timer, launcher = read_json(run_dir / "step_times.json"), read_json(run_dir / "launcher.json")
    starts = (timer or {}).get("epoch_starts", [])
    ended = "train_end" in (timer or {})
    if not starts or not (ended or len(starts) > 1):
        return None
    marks = [*starts, timer["train_end"]] if ended else starts
    out = {
        "run": run_dir.name,
        "startup_s": starts[0] - launched,
        "epoch_s": [b - a for a, b in itertools.pairwise(marks)],
        "train_span": [marks[0], marks[-1]],
        "last_epoch": marks[-2:],
        "steps_per_epoch": timer.get("steps_per_epoch"),
    }
    if ended and launcher and "ended" in launcher:
        out["eval_s"] = launcher["ended"] - marks[-1]  # validation, test, evaluation, exit
    return out


def concurrency(window: list[float], spans: list[list[float]]) -> float:
    """The mean number of `spans` (training intervals) covering `window`."""
    a, b = window
    if b <= a:
        return float(len(spans))
    return sum(max(0.0, min(b, s1) - max(a, s0)) for s0, s1 in spans) / (b - a)


def wave_timing(jobs: list[dict], n_jobs: int) -> dict:
    """Start-up, steady epoch and evaluation time of a wave of `n_jobs` jobs sharing the
    GPU: each job's last epoch, scaled by n_jobs / (the mean number of jobs training during
    it), so that a job that ran partly alone is not taken as the shared speed; the wave's
    number is its slowest job's."""
    if not jobs:
        raise ValueError("no job recorded its timings (step_times.json)")
    spans = [j["train_span"] for j in jobs]
    epochs, shares = [], []
    for job in jobs:
        share = concurrency(job["last_epoch"], spans)
        shares.append(share)
        epochs.append(job["epoch_s"][-1] * n_jobs / max(share, 1e-9))
    evals = [j["eval_s"] for j in jobs if "eval_s" in j]
    return {
        "jobs_timed": len(jobs),
        "startup_s": max(j["startup_s"] for j in jobs),
        "epoch_s": max(epochs),
        "epoch_s_raw": [j["epoch_s"][-1] for j in jobs],
        "jobs_training_during_timed_epoch": min(shares),
        "eval_s": max(evals) if evals else None,
        "steps_per_epoch": jobs[0]["steps_per_epoch"],
    }


def timings_of(sweep_dir: Path, launched: float) -> list[dict]:
    found = (job_timing(d, launched) for d in sorted(sweep_dir.glob("*")) if d.is_dir())
    return [t for t in found if t]


# ---- the plan -----------------------------------------------------------------------------


@dataclass
class Plan:
    epochs: int
    waves: list[tuple[str, int]]  # (sweep name, seed), in order
    estimate: dict = field(default_factory=dict)


def make_plan(
    left_s: float, timing: dict, page_s: float, extra_fid_s: float, max_epochs: int,
    candidates: list[tuple[str, int]], n_pages: int,
) -> Plan:  # fmt: skip
    """The most epochs (<= max_epochs) for which the first wave -- start-up, epochs,
    evaluation (timing's, plus `extra_fid_s` when the timing had no Inception FID) -- and
    the page(s) and archives fit in `left_s`; then the further candidate waves that fit
    whole, only when the first one reached max_epochs."""
    wave_fixed = timing["startup_s"] + (timing.get("eval_s") or ASSUMED["eval_s"]) + extra_fid_s
    reserve = page_s * n_pages + PACK_S + MARGIN_S
    room = left_s - reserve - wave_fixed
    epochs = max(1, min(max_epochs, math.floor(room / timing["epoch_s"])))
    waves, left = candidates[:1], room - epochs * timing["epoch_s"]
    if epochs == max_epochs:
        for candidate in candidates[1:]:
            cost = wave_fixed + epochs * timing["epoch_s"]
            if cost <= left:
                waves.append(candidate)
                left -= cost
    estimate = {
        "left_s": left_s, "reserve_s": reserve, "wave_fixed_s": wave_fixed,
        "epoch_s": timing["epoch_s"], "training_s": epochs * timing["epoch_s"],
        "fits": room >= epochs * timing["epoch_s"],
    }  # fmt: skip
    return Plan(epochs, waves, estimate)


def candidate_waves(sweeps: list[Sweep], max_seeds: int) -> list[tuple[str, int]]:
    """Seed 0 of each sweep in the given order, then seed 1 of each, ..."""
    rounds = max(len(s.seeds) for s in sweeps)
    return [
        (s.name, s.seeds[i])
        for i in range(min(rounds, max_seeds))
        for s in sweeps
        if i < len(s.seeds)
    ]


# ---- packing what comes back ----------------------------------------------------------

RUN_FILES = (
    "metrics.json", "config.yaml", ".hydra/overrides.yaml", "csv/metrics.csv", "train.log",
    "launcher.json", "launcher.log", "step_times.json",
)  # fmt: skip


def pack(archive: Path, members: list[tuple[Path, str]], limit: int = RETURN_FILE_LIMIT):
    """A .tar.gz of (file, name in archive), largest files left out until it is under
    `limit`; returns the names left out."""
    members = [(p, n) for p, n in members if p.is_file()]
    left_out: list[str] = []
    while True:
        with tarfile.open(archive, "w:gz") as tar:
            for path, name in members:
                tar.add(path, arcname=name)
        if archive.stat().st_size <= limit or not members:
            return left_out
        largest = max(members, key=lambda m: m[0].stat().st_size)
        members.remove(largest)
        left_out.append(largest[1])


def run_members(root: Path, prefix: str) -> list[tuple[Path, str]]:
    return [
        (run / name, f"{prefix}/{run.parent.name}/{run.name}/{name}")
        for run in sorted(p.parent for p in root.glob("*/*/config.yaml"))
        for name in RUN_FILES
    ]


def check_returned(out: Path) -> list[str]:
    """What the device tool would not bring back from `out`."""
    files = [p for p in out.rglob("*") if p.is_file()]
    problems = [f"{len(files)} files (at most {RETURN_FILES})"] if len(files) > RETURN_FILES else []
    problems += [
        f"{p.name}: {p.stat().st_size / MIB:.1f} MiB (at most 16)"
        for p in files
        if p.stat().st_size > RETURN_FILE_LIMIT
    ]
    return problems


# ---- the two commands ------------------------------------------------------------------


def started_at() -> float:
    """When the device call began: $WAEBENCH_CALL_STARTED (set first in the call's command),
    else now."""
    now = time.time()
    return min(now, float(os.environ.get("WAEBENCH_CALL_STARTED", now)))


def device_name(sweep_dirs: list[Path]) -> str:
    """The GPU the jobs saw (their launcher.json), else the CPU."""
    for path in (p for d in sweep_dirs for p in sorted(d.glob("*/launcher.json"))):
        seen = (read_json(path) or {}).get("seen_by_job", {})
        if seen.get("name"):
            return seen["name"]
    return f"CPU, {os.cpu_count()} cores"


def inception_in_eval(args) -> bool:
    """Whether the jobs' evaluation computes Inception FIDs: on the GPU, when the weights
    (WAEBENCH_INCEPTION_WEIGHTS) are there; never with --tiny."""
    path = os.environ.get("WAEBENCH_INCEPTION_WEIGHTS")
    return not args.tiny and bool(path) and Path(path).is_file()


def signature(sweep: Sweep, args) -> dict:
    """What a calibration must share with the study it plans."""
    return {"sweep": sweep.name, "models": sweep.models, "tiny": args.tiny, "compile": args.compile}


def calibrate(sweep: Sweep, args, work: Path, deadline: float, evaluate: bool) -> dict:
    """Train the sweep's models (seed 0) all at once for CALIBRATION_EPOCHS and evaluate them
    (`evaluate`), or for one epoch without evaluation (the quick one of `run`); time them."""
    root = work / "calibration"
    shutil.rmtree(root, ignore_errors=True)
    sweep_dir = root / "runs" / sweep.dataset
    overrides = [*study_overrides(sweep, args, work), "seed=0"]
    overrides.append(f"trainer.max_epochs={CALIBRATION_EPOCHS if evaluate else 1}")
    if not evaluate:
        overrides.append("eval.enabled=false")
    elif not inception_in_eval(args):
        overrides.append("eval.inception.enabled=false")
    env = job_env(args, work)
    launched, result = launch_wave(overrides, sweep_dir, deadline, env, root / "launch.log")
    timings = timings_of(sweep_dir, launched)
    if not timings:
        raise RuntimeError(f"calibration: no job recorded its timings ({root / 'launch.log'})")
    timing = wave_timing(timings, len(sweep.models))
    if not evaluate:
        timing["eval_s"] = None  # validation and test only: the plan assumes ASSUMED's
    return {
        "signature": signature(sweep, args),
        "wave": result,
        **timing,
        "eval_includes_inception": evaluate and inception_in_eval(args),
        "runs": str(sweep_dir),
    }


def page(runs: Path, out_dir: Path, deadline: float, args, tsne: bool, command: str):
    """`waebench-report --page` of the runs under `runs` into `out_dir`, stopped at
    `deadline`."""
    argv = [sys.executable, "-m", "waebench.report", "--page", str(runs), "--out", str(out_dir)]
    argv += ["--command", command] + ([] if tsne else ["--no-tsne"])
    argv += list(TINY_PAGE_OPTIONS) if args.tiny else []
    env = job_env(args, args.work)
    return run_until(argv, deadline, out_dir.parent / f"{out_dir.name}.log", env)


def prepare(args) -> int:
    """Calibrate, time the page on the calibration's runs, then, in the time left, the quick
    `gpu` tests and the paper networks' step against a plain PyTorch loop (train_speed.py)."""
    deadline = started_at() + args.budget
    out, work = args.out, args.work
    results = out / "results.jsonl"
    sweep = read_sweep(args.sweeps.split(",")[0], args.models)
    env = job_env(args, work)
    log(f"calibration: {len(sweep.models)} jobs of sweep={sweep.name} at once, "
        f"{CALIBRATION_EPOCHS} epochs")  # fmt: skip
    ok = True
    try:
        calibration = calibrate(sweep, args, work, deadline - 70, evaluate=True)
        if args.tiny:  # a CPU's page time means nothing; `run` draws its page the same way
            timed = {"exit_code": 0, "wall_s": None, "skipped": "--tiny"}
        else:
            timed = page(Path(calibration["runs"]), work / "calibration" / "page", deadline - 20,
                         args, True, "gpu_study.py prepare (page timing)")  # fmt: skip
        calibration["page_s"] = timed["wall_s"] if timed["exit_code"] == 0 else None
        calibration["page"] = timed
        (work / "calibration.json").write_text(json.dumps(calibration, indent=1))
        (out / "calibration.json").write_text(json.dumps(calibration, indent=1))
        append_row(results, {"stage": "prepare", "kind": "calibration", **calibration})
        log(f"calibration: epoch {calibration['epoch_s']:.1f} s with {len(sweep.models)} jobs "
            f"sharing, start-up {calibration['startup_s']:.1f} s, evaluation "
            f"{calibration['eval_s']} s, page {calibration['page_s']} s")  # fmt: skip
        ok = calibration["wave"]["exit_code"] == 0 and timed["exit_code"] == 0
    except Exception as error:  # the tests and the archive still run
        ok = False
        log(f"calibration failed: {type(error).__name__}: {error}")
        append_row(results, {"stage": "prepare", "kind": "calibration", "error": str(error)})
    members = run_members(work / "calibration" / "runs", "runs")
    pack(out / "calibration_runs.tar.gz", [*members, *logs(work / "calibration")])
    if args.tests and time.time() < deadline - 15:
        argv = [sys.executable, "-m", "pytest", "-q", "-m", "gpu and not slow", "-p",
                "no:cacheprovider", *(f"tests/{f}" for f in GPU_TEST_FILES)]  # fmt: skip
        tests = run_until(argv, deadline - 5, out / "tests.log", env)
        summary = (out / "tests.log").read_text().strip().splitlines()[-1:]
        append_row(results, {"stage": "prepare", "kind": "gpu_tests", **tests,
                             "summary": summary[0] if summary else ""})  # fmt: skip
        ok = ok and tests["exit_code"] in (0, 5)  # 5: nothing ran (no GPU: every test skipped)
    if not args.tiny and time.time() < deadline - 40:  # the ratio to a plain PyTorch loop
        speed = work / "train_speed.json"
        argv = [sys.executable, str(BENCHMARKS / "train_speed.py"), "--device", "cuda",
                "--nets", "paper", "--precision", "bf16-mixed", "--repeats", "1",
                "--json", str(speed)]  # fmt: skip
        result = run_until(argv, deadline - 5, work / "train_speed.log", env)
        for row in (read_json(speed) or []) if result["exit_code"] == 0 else []:
            append_row(results, {"stage": "prepare", "kind": "train_speed", **row})
    problems = check_returned(out)
    for problem in problems:
        log(f"will not come back: {problem}")
    return 0 if ok and not problems else 1


# The gpu-marked tests that take seconds (test_sweep's launcher test is slow; the study
# itself runs that launcher).
GPU_TEST_FILES = ("test_fast.py", "test_train_step.py", "test_evaluation.py")


def logs(folder: Path) -> list[tuple[Path, str]]:
    return [(p, f"logs/{p.name}") for p in sorted(folder.glob("*.log"))]


def time_fid_pass(sweep: Sweep, args, work: Path, deadline: float) -> float | None:
    """Seconds of one feature pass over the jobs' FID sample count in the first feature
    space (Inception; --tiny: the classifier's): half of the FID of the test split against
    itself, which also caches the real side for the jobs."""
    overrides = one_job(study_overrides(sweep, args, work), sweep.models[0])
    path = work / "inception_time.json"
    path.unlink(missing_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "_time-fid", str(path), *overrides]
    result = run_until(argv, deadline, work / "inception_time.log", job_env(args, work))
    found = read_json(path) if result["exit_code"] == 0 else None
    return found["set_s"] if found else None


def time_fid(path: Path, overrides: list[str]) -> None:
    """`_time-fid PATH OVERRIDES...` (a subprocess of `run`): the FID of the test split
    against itself in the first feature space, as the jobs compute it; writes
    {"set_s": half its seconds, "extractor": ...}."""
    import torch
    from hydra.utils import instantiate

    from waebench.evaluation.evaluate import feature_spaces
    from waebench.evaluation.fid import RealImages, fidelity_metrics

    # paths.data_dir's default asks Hydra's runtime, which a composed config has not.
    data_dir = os.environ.get("WAEBENCH_DATA_DIR", str(REPO / "data"))
    cfg = compose([*overrides, f"paths.data_dir={data_dir}"])
    settings = cfg.eval
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    images = datamodule.splits[settings.split][0]
    spaces = feature_spaces(settings, datamodule, [])  # trains (or reads) the classifier too
    space, section = spaces[0]
    real = RealImages(f"{datamodule.name}:{settings.split}", images[: section.num_real])
    cuda = cfg.trainer.accelerator == "gpu" and torch.cuda.is_available()
    began = time.perf_counter()
    fidelity_metrics(images[: section.num_samples], real, space, settings.cache_dir,
                     batch_size=settings.batch_size, cuda=cuda, seed=settings.seed)  # fmt: skip
    seconds = (time.perf_counter() - began) / 2
    path.write_text(json.dumps({"set_s": seconds, "extractor": space.extractor}))


def run(args) -> int:
    """Plan the epochs, train and evaluate the waves, draw the pages, pack what comes back;
    the archives and the summary are written whatever failed before them."""
    started = started_at()
    deadline = started + args.budget
    out, work = args.out, args.work
    results = out / "results.jsonl"
    study = work / f"study-{time.strftime('%Y%m%d-%H%M%S')}"
    sweep_dirs: list[Path] = []
    summary: dict = {"stage": "study", "kind": "summary", "budget_s": args.budget}
    try:
        names = [n for n in args.sweeps.split(",") if n]
        for name in (n for n in names if not sweep_exists(n)):
            log(f"sweep={name}: no conf/sweep/{name}.yaml in this checkout, skipped")
        sweeps = {n: read_sweep(n, args.models) for n in names if sweep_exists(n)}
        plan, milestones, tsne = plan_study(list(sweeps.values()), args, work, deadline, results)
        summary["epochs"] = plan.epochs
        train_deadline = deadline - plan.estimate["reserve_s"] + MARGIN_S
        env = job_env(args, work)
        for index, (name, seed) in enumerate(plan.waves):
            sweep = sweeps[name]
            cost = plan.estimate["wave_fixed_s"] + plan.estimate["training_s"]
            if index and time.time() + cost > train_deadline:
                log(f"wave sweep={name} seed={seed}: no time left, skipped")
                continue
            sweep_dir = study / "runs" / sweep.dataset
            overrides = [
                *study_overrides(sweep, args, work),
                f"seed={seed}",
                f"trainer.max_epochs={plan.epochs}",
                f"model.lr_schedule.milestones=[{','.join(map(str, milestones))}]",
            ]
            log_path = study / f"wave{index}-{sweep.dataset}-seed{seed}.log"
            launched, result = launch_wave(overrides, sweep_dir, train_deadline, env, log_path)
            timings = timings_of(sweep_dir, launched)
            append_row(results, {
                "stage": "study", "kind": "wave", "sweep": name, "dataset": sweep.dataset,
                "seed": seed, "epochs": plan.epochs, **result,
                "timing": wave_timing(timings, len(sweep.models)) if timings else None,
            })  # fmt: skip
            sweep_dirs += [] if sweep_dir in sweep_dirs else [sweep_dir]
        device = device_name(sweep_dirs)
        for sweep_dir in sweep_dirs:
            command = (
                f"bash benchmarks/gpu_check.sh study OUT ({plan.epochs} epochs, the protocol's "
                f"{max(s.protocol_epochs for s in sweeps.values())} scaled to a "
                f"{args.budget:.0f} s budget; lr milestones {milestones}; {device})"
            )
            timed = page(sweep_dir, study / "page" / sweep_dir.name, deadline - PACK_S, args,
                         tsne, command)  # fmt: skip
            append_row(results, {"stage": "study", "kind": "page", "dataset": sweep_dir.name,
                                 "tsne": tsne, **timed})  # fmt: skip
    except Exception as error:
        log(f"study failed: {type(error).__name__}: {error}")
        summary["error"] = f"{type(error).__name__}: {error}"
    finally:
        for run_dir in sorted(p.parent for p in study.glob("runs/*/*/config.yaml")):
            append_row(results, run_row(run_dir, summary.get("epochs")))
        left_out = pack(out / "runs.tar.gz", [*run_members(study / "runs", "runs"), *logs(study)])
        pages = sorted(p for p in study.glob("page/*/*") if p.is_file())
        left_out += pack(out / "page.tar.gz", [(p, str(p.relative_to(study))) for p in pages])
        summary.update(
            device=device_name(sweep_dirs), wall_s=time.time() - started, work=str(study),
            left_out_of_archives=left_out,
        )  # fmt: skip
        append_row(results, summary)
    problems = check_returned(out)
    for problem in problems:
        log(f"will not come back: {problem}")
    log(f"done in {summary['wall_s']:.0f} s of {args.budget:.0f}: {results}")
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    failed = [r["run"] for r in rows if r.get("kind") == "run" and r["status"] != "completed"]
    if failed:
        log(f"runs not completed: {', '.join(failed)}")
    return 1 if failed or problems or "error" in summary or not sweep_dirs else 0


def plan_study(sweeps: list[Sweep], args, work: Path, deadline: float, results: Path):
    """The plan from the calibration of `prepare` (or a quick one now), the page's time
    and one timed Inception pass; written to results.jsonl. Returns (plan, lr milestones,
    whether the page draws t-SNE maps)."""
    first = sweeps[0]
    calibration = read_json(work / "calibration.json")
    if not calibration or calibration.get("signature") != signature(first, args):
        log("no calibration of these jobs by `prepare`: timing one epoch now")
        calibration = calibrate(first, args, work, deadline - 120, evaluate=False)
        calibration["page_s"] = None
    page_s = calibration.get("page_s") or ASSUMED["page_s"]
    tsne = page_s <= TSNE_MAX_PAGE_S
    extra_fid_s = 0.0
    if not calibration.get("eval_includes_inception"):
        set_s = time_fid_pass(first, args, work, deadline - 60)
        sets = fid_sets_per_job(first) * len(first.models)  # the GPU is shared
        extra_fid_s = sets * (set_s if set_s is not None else ASSUMED["extra_fid_set_s"])
        calibration["extra_fid_set_s"] = set_s
    max_epochs = args.max_epochs or first.protocol_epochs
    candidates = candidate_waves(sweeps, args.max_seeds)
    datasets = {s.name: s.dataset for s in sweeps}
    plan = make_plan(
        deadline - time.time(), calibration, page_s, extra_fid_s, max_epochs, candidates,
        n_pages=len({datasets[name] for name, _ in candidates}),
    )  # fmt: skip
    milestones = scaled_milestones(first.milestones, plan.epochs, first.protocol_epochs)
    append_row(results, {
        "stage": "study", "kind": "plan", "epochs": plan.epochs,
        "protocol_epochs": first.protocol_epochs, "lr_milestones": milestones,
        "waves": plan.waves, "models": first.models, "budget_s": args.budget,
        "page_tsne": tsne, "page_s": page_s, "extra_fid_s": extra_fid_s,
        "estimate": plan.estimate, "calibration": calibration,
    })  # fmt: skip
    log(f"plan: {plan.epochs} epochs (protocol {first.protocol_epochs}), lr milestones "
        f"{milestones}, waves {plan.waves}; {plan.estimate}")  # fmt: skip
    return plan, milestones, tsne


def run_row(run_dir: Path, epochs: int | None) -> dict:
    """One run's line of results.jsonl: status, epochs, test losses, evaluation values."""
    metrics = read_json(run_dir / "metrics.json") or {}
    evaluation = metrics.get("eval", {})
    timer = read_json(run_dir / "step_times.json") or {}
    starts = timer.get("epoch_starts", [])
    return {
        "stage": "study", "kind": "run", "run": run_dir.name, "dataset": run_dir.parent.name,
        "status": metrics.get("status", "unfinished"), "epochs_planned": epochs,
        "epochs": metrics.get("epochs"), "global_step": metrics.get("global_step"),
        "test": metrics.get("test"), "error": metrics.get("error"),
        "eval": {k: v.get("value") for k, v in evaluation.items() if isinstance(v, dict)},
        "eval_error": metrics.get("eval_error"),
        "train_s": timer["train_end"] - starts[0] if starts and "train_end" in timer else None,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_time-fid"]:
        time_fid(Path(argv[1]), argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["prepare", "run"])
    parser.add_argument("--out", type=Path, required=True, help="the files that come back")
    parser.add_argument("--work", type=Path, default=REPO / ".gpu" / "work")
    parser.add_argument("--budget", type=float, help="seconds of wall time (480; prepare 200)")
    parser.add_argument("--sweeps", default=DEFAULT_SWEEPS, help="in priority order")
    parser.add_argument("--models", help="the first N of each sweep, or names (default 8)")
    parser.add_argument("--max-seeds", type=int, help="of each sweep's seeds (default 3)")
    parser.add_argument("--max-epochs", type=int, help="default: the protocol's (100)")
    parser.add_argument("--compile", action="store_true", help="model.compile=true (unmeasured)")
    parser.add_argument("--no-tests", dest="tests", action="store_false", help="prepare: skip")
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny nets: checks the code")
    args = parser.parse_args(argv)
    defaults = TINY_DEFAULTS if args.tiny else {"models": "8", "max_seeds": 3}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.budget = args.budget or (480.0 if args.command == "run" else 200.0)
    for folder in (args.out, args.work):
        folder.mkdir(parents=True, exist_ok=True)
    args.out, args.work = args.out.resolve(), args.work.resolve()
    if not args.tiny:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("gpu_study.py: no CUDA GPU visible (--tiny runs it on a CPU)")
    return prepare(args) if args.command == "prepare" else run(args)


if __name__ == "__main__":
    sys.exit(main())
