"""The run folder: its layout, its record (`metrics.json`), its lock, and reading it back;
and the sweep folder's record of the jobs that never started.

Every writer and reader of a run folder goes through this module:

    <run folder>/
      config.yaml        the resolved config; a later attempt with another config is refused
      .hydra/            Hydra's record of the launch (config, hydra.yaml, overrides.yaml),
                         written with config.yaml once the run starts
      metrics.json       the record (schema below), written atomically
      run.lock           held by the training process ("pid <pid> on host <host>")
      checkpoints/       last.ckpt (for resuming), best.ckpt, each written atomically
      train.log, csv/metrics.csv, samples.png, reconstructions.png, figures/ ...

    <sweep folder>/
      <job folder>/ ...  one run folder per job that started
      not_started/<job folder name>.json
                         a job that never started (refused before it wrote anything: a bad
                         config value, its folder in use or holding another run; or its
                         process died first): `status: failed`, `started: false`, `run_dir`,
                         `overrides`, `error`, `traceback`. Removed when the job starts.

`metrics.json`: `status` (a `Status`), `run_dir` (absolute), `waebench_version`, `epochs`,
`global_step`, `train`/`val`/`test` ({term: epoch mean}), `checkpoints`, `train_seconds` (the
training's wall time, summed over the sittings that resumed it: Lightning's `Timer`, whose
state the checkpoints carry; a sitting's time after its last checkpoint is lost with it);
`error` and `traceback` when it did not complete; once the training completed, `evaluation`
(an `Evaluation`: pending, failed, completed) with `eval`, `eval_notes`, `eval_seconds` (the
evaluation's wall time) and `collapse` (what looks collapsed, a list of sentences; empty when
nothing does) when completed, `eval_error` when failed. A completed record
is never overwritten by a later attempt (a later failure marks its evaluation failed, at most),
and a failed attempt keeps the progress of an earlier one that got further. Records written
before `evaluation` existed read as: `eval` -> completed, `eval_error` -> failed, else pending.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import socket
import tempfile
import traceback
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from waebench.errors import UserError

log = logging.getLogger(__name__)

CONFIG, METRICS, LOCK, CHECKPOINTS = "config.yaml", "metrics.json", "run.lock", "checkpoints"
HYDRA, NOT_STARTED = ".hydra", "not_started"


class Status(StrEnum):
    """`metrics.json`'s status. The last two are never written: a reader's names for a folder
    without a record (still running, or killed) and one whose record cannot be read."""

    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    FAILED = "failed"
    PRUNED = "pruned"  # stopped early by a hyper-parameter search
    UNFINISHED = "unfinished"
    UNREADABLE = "unreadable"


class Evaluation(StrEnum):
    """`metrics.json`'s `evaluation`, once the training completed: `pending` until the
    evaluation ends (also when `eval.enabled=false` skipped it, or a kill stopped it)."""

    PENDING = "pending"
    FAILED = "failed"
    COMPLETED = "completed"


# The identity of a job. Config keys (and override groups) that do not change what a job
# computes (where it writes, how it logs and checkpoints, where it runs, the evaluation after
# training): two launches differing only there are the same job, in the same sweep folder.
NOT_JOB_KEYS = ("paths", "logger", "ckpt_path", "callbacks", "eval", "hydra", "launcher", "sweep")
# Keys that do not make two runs different models in a report: the job keys above, the seed,
# and how many devices computed a run.
NOT_MODEL_KEYS = (
    *NOT_JOB_KEYS,
    "seed",
    "task_name",
    "dataset.shuffle_seed",
    "dataset.root",
    "dataset.eval_batch_size",
    "dataset.preprocess_workers",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.strategy",
    "trainer.num_nodes",
    "trainer.sync_batchnorm",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
    "trainer.default_root_dir",
    "trainer.deterministic",
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() gives a new file: metrics.json like the others


# ---- atomic writes -------------------------------------------------------------------------


@contextmanager
def atomic_path(path: str | Path, commit: bool = True) -> Iterator[Path]:
    """A unique temporary path next to `path` for the block to write; renamed onto `path`
    when the block ends without error (so readers never see half a file and a kill mid-write
    keeps the previous file), removed otherwise. `commit=False` (a DDP rank other than 0 in a
    collective save, which writes nothing) only removes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if commit:
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# ---- the lock ------------------------------------------------------------------------------


class RunFolderBusy(UserError, RuntimeError):
    """Another process holds the run folder's lock."""


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold `run.lock` (an exclusive flock) for the block, or refuse at once naming the holder.
    The kernel drops a flock when its process dies, so the lock of a killed training is free:
    it is taken over, and its old holder named in the log."""
    path = Path(run_dir) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 (held across the yield)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "a process that has not written its id yet"
        handle.close()
        raise RunFolderBusy(
            f"{run_dir} is in use by another training ({holder}): wait for it to end or stop "
            "it, or give this run another folder (hydra.run.dir=<folder>)"
        ) from None
    try:
        handle.seek(0)
        stale = handle.read().strip()
        if stale:
            log.warning("Taking over %s from %s, which ended without releasing it", path, stale)
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


# ---- the config and the identity of a job --------------------------------------------------


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


def _same(a: Any, b: Any) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return both_nan or a == b


def _relative_to_run(config: dict[str, Any]) -> dict[str, Any]:
    """The flat config with paths inside its own run folder written `<run>/...`, so a moved
    or copied folder holds the same job."""
    flat = flatten(config)
    run_dir = str(flat.get("paths.output_dir") or "")
    if not run_dir:
        return flat
    return {
        k: "<run>" + v[len(run_dir) :] if isinstance(v, str) and v.startswith(run_dir) else v
        for k, v in flat.items()
    }


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two resolved configs, `NOT_JOB_KEYS` aside
    (NaN equals NaN; paths are compared relative to each config's run folder)."""
    a, b = _relative_to_run(saved), _relative_to_run(current)
    keys = sorted(k for k in a.keys() | b.keys() if not _same(a.get(k), b.get(k)))
    return [k for k in keys if k.split(".")[0] not in NOT_JOB_KEYS]


def read_config(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / CONFIG
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else None


class FolderHoldsAnotherJob(UserError, ValueError):
    """The run folder holds a run of another configuration."""


def check_same_job(run_dir: str | Path, cfg: DictConfig) -> None:
    """Refuse a folder that holds a run of another configuration, naming the differing keys."""
    saved = read_config(run_dir)
    if saved is None:
        return
    differences = config_differences(saved, OmegaConf.to_container(cfg, resolve=True))
    if differences:
        raise FolderHoldsAnotherJob(
            f"{run_dir} already holds a run of another configuration (differs in: "
            f"{', '.join(differences[:8])}). Re-launch with the original settings, or give "
            "this run a new folder (hydra.run.dir=<folder>, or hydra.sweep.dir=<folder> for a "
            "sweep)."
        )


def write_config(run_dir: str | Path, cfg: DictConfig) -> None:
    """The run starts: `config.yaml` (resolved) and, when Hydra launched it, Hydra's record of
    the launch in `.hydra/` (the config as composed, `hydra.yaml`, `overrides.yaml`). Hydra
    does not write `.hydra/` itself (`hydra.output_subdir: null`), so that a launch refused
    before this point leaves the folder as it was. A sweep job's record of never having
    started goes."""
    run_dir = Path(run_dir)
    with atomic_path(run_dir / CONFIG) as tmp:
        OmegaConf.save(cfg, tmp, resolve=True)
    write_launch(run_dir, cfg)
    not_started_path(run_dir).unlink(missing_ok=True)


def write_launch(folder: str | Path, cfg: DictConfig) -> None:
    """Hydra's record of the launch in `folder/.hydra/` (the config as composed, `hydra.yaml`,
    `overrides.yaml`), when Hydra launched it: written by waebench once the work starts
    (`hydra.output_subdir: null`), so that a refused launch writes nothing."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.instance().cfg  # {"hydra": ...}
    launch = {"config.yaml": cfg, "hydra.yaml": hydra_cfg}
    launch["overrides.yaml"] = hydra_cfg.hydra.overrides.task
    for name, node in launch.items():
        with atomic_path(Path(folder) / HYDRA / name) as tmp:
            tmp.write_text(OmegaConf.to_yaml(node))


def config_stamp(run_dir: str | Path) -> tuple[int, int] | None:
    """(inode, mtime) of the run folder's `config.yaml`, None without one. `write_config`
    replaces the file, so a launch after which the stamp is unchanged never started its run:
    it was refused (or failed) before writing anything."""
    try:
        stat = (Path(run_dir) / CONFIG).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def launch_overrides(run_dir: str | Path) -> list[str] | None:
    """The command-line overrides the run was launched with (`.hydra/overrides.yaml`), or None."""
    path = Path(run_dir) / HYDRA / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else None


def remove_if_empty(run_dir: str | Path) -> None:
    """Remove the run folder when it holds nothing: the folder Hydra made for a launch that
    was then refused."""
    with contextlib.suppress(OSError):  # not empty, or not there
        Path(run_dir).rmdir()


# ---- the record ----------------------------------------------------------------------------


def read_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """The record, None without one; an unreadable one is `{"status": "unreadable", "error"}`
    naming the file (a report lists it and goes on). A completed record from before
    `evaluation` existed gets it (see the module's docstring)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
        if not isinstance(metrics, dict):
            raise ValueError(f"a JSON {type(metrics).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as error:
        return {
            "status": Status.UNREADABLE,
            "run_dir": str(path.parent.resolve()),
            "error": f"{path} is unreadable ({type(error).__name__}: {error}); delete it to "
            "re-run the job, or restore it from a backup",
        }
    if metrics.get("status") == Status.COMPLETED and "evaluation" not in metrics:
        metrics["evaluation"] = (
            Evaluation.COMPLETED
            if "eval" in metrics
            else Evaluation.FAILED
            if "eval_error" in metrics
            else Evaluation.PENDING
        )
    return metrics


def write_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> None:
    write_json(Path(run_dir) / METRICS, metrics)


PROGRESS = ("epochs", "global_step", "train", "val", "test")


def attempt_record(earlier: dict[str, Any] | None, attempt: dict[str, Any]) -> dict[str, Any]:
    """The record after an attempt that did not complete: the attempt's status and error, with
    the progress (steps, losses) of an earlier attempt that got further kept."""
    step = attempt.get("global_step", 0)
    if not earlier or earlier.get("global_step", 0) <= step:
        return attempt
    record = {k: v for k, v in attempt.items() if k not in PROGRESS}
    record.update({k: earlier[k] for k in PROGRESS if k in earlier})
    record["progress_note"] = f"progress of an earlier attempt; this one stopped at step {step}"
    return record


def record_failure(
    run_dir: str | Path, error: BaseException | str, keep_earlier: bool = True
) -> dict[str, Any]:
    """Mark the run as failed in its record and return the record. With `keep_earlier`, a
    `diverged` or `failed` status stays, and so does the error the attempt wrote; without
    (a launcher that knows better, e.g. the job was cancelled), the new error replaces it.
    A completed training stays completed: an evaluation it had not finished is marked failed
    with the error instead."""
    earlier = read_metrics(run_dir)
    metrics = {} if not earlier or earlier["status"] == Status.UNREADABLE else earlier
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    if metrics.get("status") == Status.COMPLETED:
        if metrics.get("evaluation") != Evaluation.COMPLETED:
            metrics.update(evaluation=Evaluation.FAILED, eval_error=message)
            write_metrics(run_dir, metrics)
        return metrics
    if not keep_earlier or metrics.get("status") not in (Status.FAILED, Status.DIVERGED):
        metrics.update(status=Status.FAILED, error=message)
    metrics.setdefault("run_dir", str(Path(run_dir).resolve()))
    if isinstance(error, BaseException):
        metrics["traceback"] = "".join(traceback.format_exception(error))
    write_metrics(run_dir, metrics)
    return metrics


# ---- the jobs of a sweep that never started --------------------------------------------------


def not_started_path(run_dir: str | Path) -> Path:
    """Where the sweep records that the job of `run_dir` never started."""
    run_dir = Path(run_dir)
    return run_dir.parent / NOT_STARTED / f"{run_dir.name}.json"


def record_not_started(
    run_dir: str | Path, error: BaseException | str, overrides: list[str] | None
) -> dict[str, Any]:
    """Record in the sweep folder that the job of `run_dir` never started, with its overrides
    and the error; its run folder is removed if it is empty (Hydra made it for the job)."""
    record: dict[str, Any] = {
        "status": Status.FAILED,
        "started": False,
        "run_dir": str(Path(run_dir).resolve()),
        "overrides": list(overrides or []),
        "error": error if isinstance(error, str) else f"{type(error).__name__}: {error}",
    }
    if isinstance(error, BaseException):
        record["traceback"] = "".join(traceback.format_exception(error))
    write_json(not_started_path(run_dir), record)
    remove_if_empty(run_dir)
    return record


def record_job_failure(
    run_dir: str | Path,
    error: BaseException | str,
    overrides: list[str] | None = None,
    keep_earlier: bool = True,
) -> dict[str, Any]:
    """A sweep job's failure, where the sweep summary and the report find it: in its run's
    record (`record_failure`) when the run started (its folder holds `config.yaml`), else in
    the sweep's record of the jobs that never started."""
    if not (Path(run_dir) / CONFIG).is_file():
        return record_not_started(run_dir, error, overrides)
    return record_failure(run_dir, error, keep_earlier)


def job_record(run_dir: str | Path) -> dict[str, Any] | None:
    """What became of a sweep job: its run's record, else the sweep's record that it never
    started, else None (still running, or killed)."""
    metrics = read_metrics(run_dir)
    if metrics is not None or not (path := not_started_path(run_dir)).is_file():
        return metrics
    return json.loads(path.read_text())


def not_started_jobs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The records of the sweep jobs under `paths` that never started, sorted by their
    folders."""
    found = {}
    for path in map(Path, paths):
        for entry in path.rglob(f"{NOT_STARTED}/*.json"):
            run_dir = (entry.parent.parent / entry.stem).resolve()  # where the sweep is now
            found[run_dir] = {**json.loads(entry.read_text()), "run_dir": str(run_dir)}
    return [found[k] for k in sorted(found)]


# ---- checkpoints ---------------------------------------------------------------------------


class CheckpointError(UserError, ValueError):
    """A checkpoint file that was given cannot be read."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """A checkpoint file (or the run folder holding it) that was given does not exist."""


def checkpoint_problem(path: str | Path) -> str | None:
    """Why `path` is not a readable checkpoint (torch's zip format, every member's CRC
    checked), or None when it is."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        return f"{type(error).__name__}: {error}"
    return f"member {bad} is corrupt" if bad else None


def check_checkpoint(path: str | Path, given: str, fix: str) -> None:
    """Refuse a checkpoint file that does not exist or cannot be read, naming it as it was
    `given` (e.g. `ckpt_path=...`) and the `fix`."""
    if not Path(path).is_file():
        raise CheckpointNotFoundError(f"{given} does not exist. {fix}")
    problem = checkpoint_problem(path)
    if problem:
        raise CheckpointError(
            f"{given} is not a readable checkpoint ({problem}): it is truncated (a copy or a "
            f"write that did not finish) or not a checkpoint. {fix}"
        )


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints: `last.ckpt` (the one made for resuming) first, the others
    newest first."""
    folder = Path(run_dir) / CHECKPOINTS
    found = folder.glob("*.ckpt") if folder.is_dir() else []
    return sorted(found, key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime))


def newest_readable_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's `last.ckpt`, else its newest readable checkpoint (e.g. `best.ckpt`); each
    one skipped (truncated, garbage) is named in a warning. None when none is readable."""
    for path in checkpoints(run_dir):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        log.warning("skipping %s, not a readable checkpoint (%s)", path, problem)
    return None


def remove_temporaries(run_dir: str | Path) -> None:
    """Remove the temporary files of writes that a killed process left half done (call it
    holding the run's lock: nobody else writes there then)."""
    for pattern in (".*.tmp", f"{CHECKPOINTS}/.*.tmp", f"{HYDRA}/.*.tmp"):
        for path in Path(run_dir).glob(pattern):
            path.unlink(missing_ok=True)


def resume_checkpoint(ckpt_path: str | None, run_dir: str | Path) -> str | None:
    """The checkpoint to resume from: `ckpt_path` itself (it must be readable), or for `auto`
    the run's `last.ckpt`, else its newest readable checkpoint (skipping, and naming,
    truncated or garbage ones); None starts fresh."""
    if ckpt_path != "auto":
        if ckpt_path:
            fix = "Give another one, or ckpt_path=auto for the run's newest readable one."
            check_checkpoint(ckpt_path, f"ckpt_path={ckpt_path}", fix)
        return ckpt_path
    found = newest_readable_checkpoint(run_dir)
    if found is not None:
        log.info("Resuming from %s (ckpt_path=auto: using its newest readable checkpoint)", found)
        return str(found)
    if checkpoints(run_dir):
        log.warning("ckpt_path=auto: no readable checkpoint in %s, starting fresh", run_dir)
    else:
        log.info(
            "ckpt_path=auto: no %s yet, starting fresh", Path(run_dir) / CHECKPOINTS / "last.ckpt"
        )
    return None


# ---- reading folders back ------------------------------------------------------------------


def run_dir_of(path: str | Path) -> Path:
    """The absolute run folder of a path given by a user: the folder itself, or the one above
    the `checkpoints/` folder of a checkpoint file."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise CheckpointNotFoundError(
            f"{path} does not exist; give a run folder of waebench-train "
            "(outputs/train/runs/<time>) or a checkpoint in its checkpoints/ folder"
        )
    run_dir = path if path.is_dir() else path.parent.parent
    if not (run_dir / CONFIG).is_file():
        raise CheckpointNotFoundError(
            f"{path} is not a run folder nor a checkpoint in one: no {CONFIG} in {run_dir}; "
            "give a run folder of waebench-train or a checkpoint in its checkpoints/ folder"
        )
    return run_dir


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every training run folder (a `config.yaml` with a dataset and a regularizer) under
    `paths`, each once."""
    found: dict[Path, Path] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; pass sweep or output folders")
        configs = [path / CONFIG] if (path / CONFIG).is_file() else []
        configs += sorted(path.rglob(f"*/{CONFIG}"))
        for config_path in configs:
            if {".hydra", "wandb", ".submitit"} & set(config_path.relative_to(path).parts):
                continue
            config = read_config(config_path.parent)
            if isinstance(config, dict) and {"dataset", "regularizer"} <= config.keys():
                found.setdefault(config_path.parent.resolve(), config_path.parent)
    return list(found.values())
