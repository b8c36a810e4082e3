"""`waebench-study OUT [options] [overrides...]`: the published tables that fit one GPU machine
at the papers' scale (docs/gpu.md, "The paper-scale study").

For each table (`waebench.study.tables.TABLES`, in order) one `waebench-train -m` on every
GPU of the machine, `--jobs-per-gpu` jobs per GPU at once (`launcher=gpus`), into OUT/<table>;
each job trains, tests and evaluates itself (10,000-image Inception FIDs); then the table's
pages (`waebench-report --page`, one per dataset) are drawn in the background while the next
table trains. OUT/README.md (the index: machine, scale, every table's jobs, epochs, wall time
and pages) and OUT/study.json are rewritten after each table.

Before anything runs, every job is composed and checked, and the datasets and the Inception
weights are looked for: a missing one stops the study with its install command. Without
--minutes every table runs its protocol's epochs. `--minutes N` first times each table's
first wave on this machine (`waebench.study.timing`; OUT/calibration/) and gives every table
the same fraction of its protocol's epochs, the most that fit in N minutes of calibration,
training and evaluation (the pages come after); `--estimate` prints the projection of the
protocols' epochs from the same timing and trains nothing. The plan is kept in
OUT/plan.json: the same command again resumes (completed jobs are skipped, killed ones resume
from their checkpoints), and another plan in the same OUT is refused.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from waebench.launch.summary import sweep_status
from waebench.run.record import Evaluation, Status, read_config, write_json
from waebench.study import timing as timing_
from waebench.study.tables import TABLES, StudyError, TableJobs, axes, merge, table_jobs

PLAN, SUMMARY, INDEX = "plan.json", "study.json", "README.md"
CALIBRATION_STEP_EVERY = 10


def log(message: str) -> None:
    print(f"[waebench-study {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- checks before anything runs -----------------------------------------------------------


def select_tables(names: str | None, models: int | None, seeds: str, extra: list[str]):
    """The TableJobs of the tables asked for (default: all whose sweep config exists)."""
    known = {t.name: t for t in TABLES}
    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else list(known)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise StudyError(f"--tables: {unknown} unknown; the tables are {', '.join(known)}")
    selected = []
    for name in wanted:
        found = table_jobs(known[name], models, seeds, extra)
        if found is None:
            log(f"table {name}: no sweep={known[name].sweep} in this waebench, left out")
            continue
        selected.append(found)
    if not selected:
        raise StudyError("no table to run")
    return selected


def check_inputs(tables: list[TableJobs]) -> None:
    """Every dataset found, the Inception weights found (or downloaded), before training."""
    from waebench.data import DatasetNotFoundError, idx
    from waebench.evaluation.fid import InceptionWeightsError, require_inception_weights

    data_dir = Path(os.environ.get("WAEBENCH_DATA_DIR") or Path.cwd() / "data")
    for dataset in sorted({d for t in tables for d in t.datasets}):
        if all(j.download for t in tables for j in t.jobs if j.dataset == dataset):
            continue
        try:
            idx.locate(dataset, idx.search_roots(dataset, data_dir / dataset))
        except DatasetNotFoundError as error:
            needing = [t.table.name for t in tables if dataset in t.datasets]
            others = [t.table.name for t in tables if dataset not in t.datasets]
            rest = f"; or run the others alone: --tables {','.join(others)}" if others else ""
            which = (
                f"table {needing[0]} needs"
                if len(needing) == 1
                else f"tables {', '.join(needing)} need"
            )
            raise StudyError(f"{which} {dataset}, which is not found.\n{error}{rest}") from None
    if any(j.inception for t in tables for j in t.jobs):
        try:
            log(f"Inception weights: {require_inception_weights()}")
        except InceptionWeightsError as error:
            raise StudyError(str(error)) from None


def gpus(extra: list[str]) -> list[str]:
    """The GPUs the launcher will use: hydra.launcher.devices when given, else every visible one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from waebench.launch.gpus import visible_gpus

    devices = None
    for parsed in OverridesParser.create().parse_overrides(extra):
        if parsed.get_key_element() == "hydra.launcher.devices":
            devices = parsed.value()
    found = visible_gpus(devices)
    if not found:
        raise StudyError(
            "no GPU visible (CUDA_VISIBLE_DEVICES is empty or nvidia-smi lists none): the study "
            "trains on GPUs. On a machine without one, add `hydra.launcher.devices=[0] "
            "trainer.accelerator=cpu` to run it on the CPU (slowly)"
        )
    return found


# ---- running multiruns --------------------------------------------------------------------


def job_env(slots: int) -> dict[str, str]:
    threads = str(max(1, (os.cpu_count() or 1) // slots))
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}  # fmt: skip


def multirun(overrides: list[str], sweep_dir: Path, jobs_per_gpu: int, env: dict) -> None:
    """`waebench-train -m overrides` on the `gpus` launcher into `sweep_dir` (its output in
    sweep_dir/launch.log; what each job did, in its run folder)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    launcher = ["launcher=gpus", f"hydra.launcher.jobs_per_gpu={jobs_per_gpu}"]
    command = [sys.executable, "-m", "waebench.train", "-m", *merge(launcher, overrides)]
    command.append(f"hydra.sweep.dir={sweep_dir}")
    with open(sweep_dir / "launch.log", "a") as output:
        output.write(f"\n$ {shlex.join(command)}\n")
        output.flush()
        subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, env=env)


def problem(metrics: dict) -> str:
    """A run's status and the first line of its error (or of its evaluation's)."""
    error = str(metrics.get("error") or metrics.get("eval_error") or "").splitlines()
    status = metrics["status"]
    if status == Status.COMPLETED:
        status = f"evaluation {metrics.get('evaluation')}"
    elif metrics.get("started") is False:
        status = "never started"
    return f"{status}: {error[0] if error else ''}"


def run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent for p in sweep_dir.glob("*/config.yaml"))


def statuses(sweep_dir: Path) -> dict[str, dict]:
    """{job folder name: its record} of every job of the sweep, those that never started
    included (`waebench.launch.summary.sweep_status`)."""
    return {run_dir.name: metrics for run_dir, metrics in sweep_status(sweep_dir)}


# ---- calibration and plan -----------------------------------------------------------------


def calibration_overrides(table: TableJobs, slots: int, seconds: float) -> list[str]:
    """The table's first wave: its first rows (and seeds, when rows are fewer than slots), at
    most `slots` jobs, each trained for `seconds` with StepTimes, then evaluated as usual."""
    grid = axes(table.overrides)
    key = table.table.model_key
    rows, seeds = grid[key], grid.get("seed", ["0"])
    n_seeds = min(len(seeds), max(1, slots // len(rows)))
    n_rows = min(len(rows), max(1, slots // n_seeds))
    return merge(
        table.overrides,
        [
            f"{key}={','.join(rows[:n_rows])}",
            f"seed={','.join(seeds[:n_seeds])}",
            f"+callbacks.step_times._target_={timing_.StepTimes.__module__}.StepTimes",
            f"+callbacks.step_times.every={CALIBRATION_STEP_EVERY}",
            f"+callbacks.step_times.stop_after={seconds:g}",
        ],
    )


def calibrate(table: TableJobs, out: Path, n_gpus: int, jobs_per_gpu: int, seconds: float):
    """The table's Timing, measured now (or read from an earlier calibration of the same
    jobs on as many slots, in OUT/calibration/<table>/timing.json)."""
    folder = out / "calibration" / table.table.name
    slots = n_gpus * jobs_per_gpu
    overrides = calibration_overrides(table, slots, seconds)
    signature = {"overrides": overrides, "gpus": n_gpus, "jobs_per_gpu": jobs_per_gpu}
    saved = folder / "timing.json"
    if saved.is_file():
        earlier = json.loads(saved.read_text())
        if earlier["signature"] == signature:
            return timing_.Timing(**earlier["timing"])
    shutil.rmtree(folder, ignore_errors=True)
    log(f"table {table.table.name}: timing its first wave ({seconds:g} s of training each)")
    launched = time.time()
    multirun(overrides, folder / "runs", jobs_per_gpu, job_env(slots))
    jobs = []
    for run in run_dirs(folder / "runs"):
        launcher, times = run / "launcher.json", run / timing_.RECORD
        if launcher.is_file() and times.is_file():
            jobs.append(
                {**json.loads(launcher.read_text()), "times": json.loads(times.read_text())}
            )
    sharing = math.ceil(min(max(len(jobs), 1), slots) / n_gpus)
    try:
        timed = timing_.table_timing(launched, jobs, sharing)
    except ValueError as error:
        raise StudyError(
            f"table {table.table.name}: its calibration failed ({error}); see "
            f"{folder / 'runs' / 'launch.log'} and the jobs' train.log"
        ) from None
    write_json(saved, {"signature": signature, "timing": asdict(timed)})
    return timed


def make_plan(tables: list[TableJobs], args, n_gpus: int, started: float) -> dict:
    """Each table's epochs (and, with --minutes or --estimate, its timing and projection)."""
    plan: dict = {"minutes": args.minutes, "tables": {}}
    timings = {}
    if args.minutes is not None or args.estimate:
        for table in tables:
            timings[table.table.name] = calibrate(
                table, args.out, n_gpus, args.jobs_per_gpu, args.calibration_seconds
            )
    slots = n_gpus * args.jobs_per_gpu
    planned = [
        timing_.PlannedTable(t.table.name, len(t.jobs), t.protocol[0], timings[t.table.name])
        for t in tables
        if t.table.name in timings
    ]
    epochs = {t.table.name: t.protocol[0] for t in tables}
    if args.minutes is not None:
        left = args.minutes * 60 - (time.time() - started)
        epochs = timing_.plan_epochs(planned, left, slots)
        plan["calibration_s"] = time.time() - started
    for table in tables:
        name = table.table.name
        entry = {
            "epochs": epochs[name],
            "protocol_epochs": table.protocol[0],
            "jobs": len(table.jobs),
        }
        if name in timings:
            entry["timing"] = asdict(timings[name])
            entry["projected_s"] = timings[name].table_s(epochs[name], len(table.jobs), slots)
            entry["projected_protocol_s"] = timings[name].table_s(
                table.protocol[0], len(table.jobs), slots
            )
        plan["tables"][name] = entry
    return plan


def plan_signature(tables: list[TableJobs], args, n_gpus: int) -> dict:
    return {
        "tables": {t.table.name: t.overrides for t in tables},
        "minutes": args.minutes,
        "jobs_per_gpu": args.jobs_per_gpu,
        "gpus": n_gpus,
    }


def load_or_make_plan(tables: list[TableJobs], args, n_gpus: int, started: float) -> dict:
    """OUT/plan.json when it was made for this study (a re-run resumes it); a new plan where
    there is none; a plan for other options is refused."""
    path = args.out / PLAN
    signature = plan_signature(tables, args, n_gpus)
    if path.is_file() and not args.estimate:
        plan = json.loads(path.read_text())
        if plan["signature"] != signature:
            differing = sorted(k for k in signature if plan["signature"].get(k) != signature[k])
            raise StudyError(
                f"{args.out} holds a study planned with other options (they differ in: "
                f"{', '.join(differing)}); resume it with its own command "
                f"({plan['command']}), or give this one a new OUT"
            )
        log(f"resuming the plan of {path}")
        return plan
    plan = make_plan(tables, args, n_gpus, started)
    plan.update(signature=signature, command=args.command)
    if not args.estimate:
        write_json(path, plan)
    return plan


def projection_lines(plan: dict) -> list[str]:
    lines = []
    for name, entry in plan["tables"].items():
        if "timing" not in entry:
            continue
        t = entry["timing"]
        lines.append(
            f"{name}: {entry['jobs']} jobs, {entry['protocol_epochs']} epochs: "
            f"{minutes(entry['projected_protocol_s'])} (projection: step {t['step_s'] * 1e3:.1f} ms "
            f"with {t['sharing']} jobs per GPU, {t['steps_per_epoch']} steps per epoch, "
            f"start-up {t['startup_s']:.0f} s, evaluation {t['after_s']:.0f} s)"
            + (
                f"; with the budget: {entry['epochs']} epochs, {minutes(entry['projected_s'])}"
                if plan.get("minutes") is not None
                else ""
            )  # fmt: skip
        )
    return lines


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


# ---- pages and the index ------------------------------------------------------------------


def start_pages(sweep_dir: Path, command: str, no_tsne: bool) -> dict[str, subprocess.Popen]:
    """`waebench-report --page` of the table's runs, one per dataset, in the background
    (skipped where the page is newer than every run's record)."""
    groups: dict[str, list[Path]] = {}
    for run in run_dirs(sweep_dir):
        groups.setdefault(str((read_config(run) or {}).get("dataset", {}).get("name")), []).append(
            run
        )
    started = {}
    for dataset, runs in groups.items():
        page = sweep_dir / "page" / dataset
        records = [r / "metrics.json" for r in runs if (r / "metrics.json").is_file()]
        newest = max((p.stat().st_mtime for p in records), default=0.0)
        if (page / "README.md").is_file() and (page / "README.md").stat().st_mtime > newest:
            continue
        page.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "waebench.report", "--page", *map(str, runs)]
        argv += ["--out", str(page), "--command", command] + ["--no-tsne"] * no_tsne
        output = open(page.parent / f"{dataset}.log", "w")  # noqa: SIM115 (the child's)
        started[dataset] = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
    return started


def machine(out: Path, n_gpus: int) -> str:
    """The GPU the jobs saw (their launcher.json) times the GPUs used, else the CPU."""
    for path in sorted(out.glob("*/*/launcher.json")):
        seen = json.loads(path.read_text()).get("seen_by_job", {})
        if seen.get("name"):
            return f"{n_gpus} x {seen['name']}"
    return f"CPU ({os.cpu_count()} cores)"


def index_lines(summary: dict) -> list[str]:
    """OUT/README.md: what ran, at what scale, what came of it, where the pages are."""
    plan = summary["plan"]
    if plan["minutes"] is not None:
        scale = (
            f"a budget of {plan['minutes']:g} minutes: each table at the same fraction of its "
            f"protocol's epochs, the most that fit, planned from step times measured on this "
            f"machine ({plan['calibration_s']:.0f} s of calibration; projections below)"
        )
    else:
        scale = "every table at its protocol's epochs"
    out = [
        "# waebench-study", "",
        f"**Machine:** {summary['machine']}, {summary['jobs_per_gpu']} jobs per GPU at once. "
        f"**Scale:** {scale}. **Wall time:** {wall_time(summary['launches'])}.", "",
        f"Command: `{summary['command']}`", "",
        "| table | jobs completed | epochs (protocol's) | FID | wall time | projected | pages |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, entry in summary["tables"].items():
        planned = plan["tables"][name]
        projected = minutes(planned["projected_s"]) if "projected_s" in planned else ""
        pages = ", ".join(
            f"[{d}]({name}/page/{d}/README.md)" if ok else f"{d}: failed ({name}/page/{d}.log)"
            for d, ok in entry["pages"].items()
        )
        out.append(
            f"| {entry['title']} | {entry['completed']} of {entry['jobs']} | "
            f"{planned['epochs']} ({planned['protocol_epochs']}) | {entry['fid']} | "
            f"{minutes(entry['wall_s']) if entry.get('wall_s') is not None else 'not run'} | "
            f"{projected} | {pages} |"
        )
    failed = [(n, r, m) for n, e in summary["tables"].items() for r, m in e["failed"].items()]
    if failed:
        out += [
            "",
            "Jobs that did not complete (their metrics.json and train.log hold the rest):",
            "",
        ]
        out += [f"- {n}/{r}: {m}" for n, r, m in failed]
    return out + [""]


def wall_time(launches: list[dict]) -> str:
    """The study's wall time over all its launches (a resumed study has several)."""
    total = sum(launch["wall_s"] for launch in launches)
    train = sum(launch["train_s"] for launch in launches)
    several = f" over {len(launches)} launches" if len(launches) > 1 else ""
    return (
        f"{minutes(total)}{several} (training and evaluation {minutes(train)}, then the last pages)"
    )


def write_summary(summary: dict, out: Path) -> None:
    launch = summary["launches"][-1]
    launch["wall_s"] = time.time() - launch["started"]
    write_json(out / SUMMARY, summary)
    (out / INDEX).write_text("\n".join(index_lines(summary)))


# ---- the command --------------------------------------------------------------------------


def run_study(tables: list[TableJobs], plan: dict, args, n_gpus: int, started: float) -> int:
    slots = n_gpus * args.jobs_per_gpu
    earlier = json.loads((args.out / SUMMARY).read_text()) if (args.out / SUMMARY).is_file() else {}
    launch = {"started": started, "train_s": 0.0, "wall_s": 0.0}
    summary = {
        "command": args.command, "jobs_per_gpu": args.jobs_per_gpu, "gpus": n_gpus,
        "machine": "", "plan": plan, "tables": {},
        "launches": [*earlier.get("launches", []), launch],
    }  # fmt: skip
    for table in tables:
        name = table.table.name
        summary["tables"][name] = {
            "title": table.table.title, "jobs": len(table.jobs), "completed": 0,
            "fid": "; ".join(dict.fromkeys(j.fid for j in table.jobs)),
            "failed": {}, "pages": {},
            "wall_s": earlier.get("tables", {}).get(name, {}).get("wall_s"),
        }  # fmt: skip
    pages: dict[tuple[str, str], subprocess.Popen] = {}
    for table in tables:
        name, entry = table.table.name, summary["tables"][table.table.name]
        sweep_dir = args.out / name
        epochs = plan["tables"][name]["epochs"]
        overrides = merge(table.overrides, table.epoch_overrides(epochs))
        done = statuses(sweep_dir)
        if sum(m["status"] == Status.COMPLETED for m in done.values()) >= len(table.jobs):
            log(f"table {name}: its {len(table.jobs)} jobs completed earlier")
        else:
            log(f"table {name}: {len(table.jobs)} jobs, {epochs} epochs, into {sweep_dir}")
            began = time.time()
            multirun(overrides, sweep_dir, args.jobs_per_gpu, job_env(slots))
            entry["wall_s"] = (entry["wall_s"] or 0.0) + time.time() - began
            done = statuses(sweep_dir)
        entry["completed"] = sum(m["status"] == Status.COMPLETED for m in done.values())
        entry["failed"] = {
            run: problem(m)
            for run, m in done.items()
            if m["status"] != Status.COMPLETED or m.get("evaluation") != Evaluation.COMPLETED
        }
        launch["train_s"] = time.time() - started
        summary["machine"] = machine(args.out, n_gpus)
        scale = (
            f"the protocol's {epochs} epochs"
            if epochs == table.protocol[0]
            else f"{epochs} of the protocol's {table.protocol[0]} epochs ({args.minutes:g}-minute budget)"
        )
        command = f"{args.command} (table {name}: {scale}; {summary['machine']}, {args.jobs_per_gpu} jobs per GPU)"
        for dataset, process in start_pages(sweep_dir, command, args.no_tsne).items():
            pages[(name, dataset)] = process
        for dataset in table.datasets:
            entry["pages"].setdefault(
                dataset, (sweep_dir / "page" / dataset / "README.md").is_file()
            )
        write_summary(summary, args.out)
    for (name, dataset), process in pages.items():
        summary["tables"][name]["pages"][dataset] = process.wait() == 0
    write_summary(summary, args.out)
    complete = all(
        e["completed"] == e["jobs"] and not e["failed"] and all(e["pages"].values())
        for e in summary["tables"].values()
    )
    log(f"done in {minutes(launch['wall_s'])}: {args.out / INDEX}")
    return 0 if complete else 1


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="waebench-study",
        description="The published tables that fit one GPU machine, at the papers' scale, "
        "with 10,000-image Inception FIDs and a page per table (docs/gpu.md).",
        epilog="tables: " + "; ".join(f"{t.name}: {t.title}" for t in TABLES),
    )
    parser.add_argument("out", type=Path, help="the study's folder (the same one resumes it)")
    parser.add_argument("overrides", nargs="*", help="waebench-train overrides for every job")
    parser.add_argument("--tables", help="comma-separated (default: every table)")
    parser.add_argument("--minutes", type=float, help="time budget: the most epochs that fit")
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="time the tables, print the projection, train nothing",
    )
    parser.add_argument("--jobs-per-gpu", type=int, default=8, help="jobs at once on each GPU (8)")
    parser.add_argument("--seeds", default="0", help="the seeds of every job (default: 0)")
    parser.add_argument("--models", type=int, help="each table's first N rows only")
    parser.add_argument(
        "--calibration-seconds", type=float, default=60.0,
        help="training seconds of each calibration job (60)",
    )  # fmt: skip
    parser.add_argument("--no-tsne", action="store_true", help="pages with PCA maps only")
    args = parser.parse_intermixed_args(argv)
    if args.jobs_per_gpu < 1:
        parser.error(f"--jobs-per-gpu {args.jobs_per_gpu}: must be >= 1")
    if args.minutes is not None and args.minutes <= 0:
        parser.error(f"--minutes {args.minutes:g}: must be > 0")
    if args.models is not None and args.models < 1:
        parser.error(f"--models {args.models}: must be >= 1")
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        parser.error(f"{bad}: an override is key=value (options go before OUT's overrides)")
    args.out = args.out.resolve()
    args.command = shlex.join(["waebench-study", *argv])
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    started = time.time()
    try:
        tables = select_tables(args.tables, args.models, args.seeds, args.overrides)
        check_inputs(tables)
        n_gpus = len(gpus(args.overrides))
        args.out.mkdir(parents=True, exist_ok=True)
        plan = load_or_make_plan(tables, args, n_gpus, started)
    except StudyError as error:
        print(f"waebench-study: {error}", file=sys.stderr)
        sys.exit(2)
    for line in projection_lines(plan):
        log(line)
    if args.estimate:
        return
    sys.exit(run_study(tables, plan, args, n_gpus, started))


if __name__ == "__main__":
    main()
