"""The run folder: its layout, its record (`metrics.json`), its lock, and reading it back.

Every writer and reader of a run folder goes through this module:

    <run folder>/
      config.yaml        the resolved config; a later attempt with another config is refused
      metrics.json       the record (schema below), written atomically
      run.lock           held by the training process ("pid <pid> on host <host>")
      checkpoints/       last.ckpt (for resuming), best.ckpt
      train.log, csv/metrics.csv, samples.png, reconstructions.png, figures/ ...

`metrics.json`: `status` (a `Status`), `run_dir` (absolute), `waebench_version`, `epochs`, `global_step`,
`train`/`val`/`test` ({term: epoch mean}), `checkpoints`; `error` and `traceback` when it did
not complete; `eval`, `eval_notes` or `eval_error` after the evaluation. A completed record is
never overwritten by a later attempt, and a failed attempt keeps the progress of an earlier one
that got further.
"""

from __future__ import annotations

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

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

CONFIG, METRICS, LOCK, CHECKPOINTS = "config.yaml", "metrics.json", "run.lock", "checkpoints"


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


class RunFolderBusy(RuntimeError):
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


def check_same_job(run_dir: str | Path, cfg: DictConfig) -> None:
    """Refuse a folder that holds a run of another configuration, naming the differing keys."""
    saved = read_config(run_dir)
    if saved is None:
        return
    differences = config_differences(saved, OmegaConf.to_container(cfg, resolve=True))
    if differences:
        raise ValueError(
            f"{run_dir} already holds a run of another configuration (differs in: "
            f"{', '.join(differences[:8])}). Re-launch with the original settings, or give "
            "this run a new folder (hydra.run.dir=<folder>, or hydra.sweep.dir=<folder> for a "
            "sweep)."
        )


def write_config(run_dir: str | Path, cfg: DictConfig) -> None:
    with atomic_path(Path(run_dir) / CONFIG) as tmp:
        OmegaConf.save(cfg, tmp, resolve=True)


# ---- the record ----------------------------------------------------------------------------


def read_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """The record, None without one; an unreadable one is `{"status": "unreadable", "error"}`
    naming the file (a report lists it and goes on)."""
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
    (a launcher that knows better, e.g. the job was cancelled), the new error replaces it."""
    earlier = read_metrics(run_dir)
    metrics = {} if not earlier or earlier["status"] == Status.UNREADABLE else earlier
    if not keep_earlier or metrics.get("status") not in (Status.FAILED, Status.DIVERGED):
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        metrics.update(status=Status.FAILED, error=message)
    metrics.setdefault("run_dir", str(Path(run_dir).resolve()))
    if isinstance(error, BaseException):
        metrics["traceback"] = "".join(traceback.format_exception(error))
    write_metrics(run_dir, metrics)
    return metrics


# ---- checkpoints ---------------------------------------------------------------------------


def checkpoint_problem(path: str | Path) -> str | None:
    """Why `path` is not a readable checkpoint (torch's zip format, every member's CRC
    checked), or None when it is."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        return f"{type(error).__name__}: {error}"
    return f"member {bad} is corrupt" if bad else None


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints: `last.ckpt` (the one made for resuming) first, the others
    newest first."""
    folder = Path(run_dir) / CHECKPOINTS
    found = folder.glob("*.ckpt") if folder.is_dir() else []
    return sorted(found, key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime))


def remove_temporaries(run_dir: str | Path) -> None:
    """Remove the temporary files of writes that a killed process left half done (call it
    holding the run's lock: nobody else writes there then)."""
    for pattern in (".*.tmp", f"{CHECKPOINTS}/.*.tmp"):
        for path in Path(run_dir).glob(pattern):
            path.unlink(missing_ok=True)


def resume_checkpoint(ckpt_path: str | None, run_dir: str | Path) -> str | None:
    """The checkpoint to resume from: `ckpt_path` itself (it must be readable), or for `auto`
    the run's `last.ckpt`, else its newest readable checkpoint (skipping, and naming,
    truncated or garbage ones); None starts fresh."""
    if ckpt_path != "auto":
        if ckpt_path:
            if not Path(ckpt_path).is_file():
                raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist")
            problem = checkpoint_problem(ckpt_path)
            if problem:
                raise ValueError(
                    f"ckpt_path={ckpt_path} is not a readable checkpoint ({problem}): it is "
                    "truncated (a copy or a write that did not finish) or not a checkpoint. "
                    "Give another one, or ckpt_path=auto for the run's newest readable one."
                )
        return ckpt_path
    found = checkpoints(run_dir)
    for path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            log.info(
                "Resuming from %s (ckpt_path=auto: using its newest readable checkpoint)", path
            )
            return str(path)
        log.warning("ckpt_path=auto: skipping %s, not a readable checkpoint (%s)", path, problem)
    if found:
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
        raise FileNotFoundError(
            f"{path} does not exist; give a run folder of waebench-train "
            "(outputs/train/runs/<time>) or a checkpoint in its checkpoints/ folder"
        )
    run_dir = path if path.is_dir() else path.parent.parent
    if not (run_dir / CONFIG).is_file():
        raise FileNotFoundError(
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
