"""The Optuna study of a search and its trials as sweep jobs.

Where the study lives (`hydra.sweeper.storage`): `null` -> SQLite `optuna.db` in the sweep
folder; `journal` -> Optuna's journal file `optuna.journal` there (`journal:<path>` elsewhere),
for a shared file system without a database server; any SQLAlchemy URL
(`postgresql://user@host/db`) for a database that many machines share.

The sweep folder's `search.yaml` (this module writes and reads it) says which study it holds,
for the trials' callback and for `waebench-report`.

Bookkeeping, kept in the study so that every sweeper process sees it:
- user attr `folder`: the trial's job folder in the sweep folder, `trial=<n>,<its overrides>`;
  a re-run keeps the folder of the trial it re-runs, so it resumes from its `last.ckpt`;
- user attr `retry_of`: the number of the trial a re-run replaces;
- user attr `cancelled`: asked beyond `n_trials` by a sweeper racing another one; never run;
- user attr `reason`: why a trial failed, was pruned or re-run;
- system attr `waebench:heartbeat`: when the trial's sweeper or its job
  (`waebench.search.callback`) last said it is alive (unix time). A RUNNING trial silent for
  the grace period lost both (kill -9, node failure): the next sweeper concludes it from its
  folder (a job that ended counts as it ended; an interrupted one is re-run, once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from omegaconf import OmegaConf
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from waebench.errors import UserError
from waebench.launch.job import job_dirname
from waebench.search.outcome import (
    COMPLETED,
    INTERRUPTED,
    PRUNED,
    Outcome,
    mark_pruned,
    read_outcome,
)
from waebench.search.space import trial_overrides

log = logging.getLogger(__name__)

SEARCH_FILE = "search.yaml"
FOLDER, RETRY_OF, CANCELLED, REASON, PRUNED_BY = (
    "folder",
    "retry_of",
    "cancelled",
    "reason",
    "pruned",
)
HEARTBEAT = "waebench:heartbeat"
OPEN = (TrialState.RUNNING, TrialState.WAITING)


class StorageError(UserError, RuntimeError):
    pass


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """The configured storage -> a full URL (`journal:<path>` for a journal file)."""
    sweep_dir = Path(sweep_dir).resolve()
    if storage is None:
        return f"sqlite:///{sweep_dir / 'optuna.db'}"
    if storage == "journal":
        return f"journal:{sweep_dir / 'optuna.journal'}"
    return storage


def shown(url: str) -> str:
    """The URL with its password hidden, for messages."""
    if url.startswith("journal:"):
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_storage(url: str) -> BaseStorage:
    """Connects (and creates the tables or the file) now, so a wrong URL fails before any trial."""
    try:
        if url.startswith("journal:"):
            path = Path(url.removeprefix("journal:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return _rdb_storage(url, engine_kwargs)
    except Exception as error:
        raise StorageError(
            f"cannot open the study storage {shown(url)}: {type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}. Check "
            "hydra.sweeper.storage (a SQLAlchemy URL such as postgresql://user@host/db, "
            "`journal`, or null for SQLite in the sweep folder) and that the server runs."
        ) from error


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> RDBStorage:
    """RDBStorage, once more when another sweeper created the same tables at the same moment
    (the loser of that race gets an IntegrityError, or from SQLite an OperationalError "table
    ... already exists"; the tables then exist)."""
    for attempt in range(3):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as error:
            lost_race = isinstance(error, sqlalchemy.exc.IntegrityError) or (
                "already exists" in str(error)
            )
            if not lost_race or attempt == 2:
                raise


def write_search_file(sweep_dir: Path, description: dict[str, Any]) -> None:
    path = Path(sweep_dir) / SEARCH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(description), path)


def read_search_file(sweep_dir: Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / SEARCH_FILE
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else None  # type: ignore[return-value]


def load_study(description: dict[str, Any], pruner=None) -> optuna.Study:
    storage = open_storage(description["storage"])
    return optuna.load_study(study_name=description["study_name"], storage=storage, pruner=pruner)


def folder_of(trial: FrozenTrial) -> str:
    return trial.user_attrs.get(FOLDER) or job_dirname(
        [f"trial={trial.number}", *trial_overrides(trial.params)]
    )


def live(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if not t.user_attrs.get(CANCELLED)]


def is_fresh(trial: FrozenTrial) -> bool:
    return RETRY_OF not in trial.user_attrs


def claim(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Keep a trial just asked, or cancel it: a new trial is kept while fewer than `n_trials`
    new trials precede it (trial numbers are given in order, so racing sweepers agree), a re-run
    unless an earlier re-run of the same trial exists."""
    trials = study.get_trials(deepcopy=False)
    me = next(t for t in trials if t.number == trial.number)
    earlier = [t for t in live(trials) if t.number < me.number]
    if is_fresh(me):
        keep = sum(map(is_fresh, earlier)) < n_trials
    else:
        keep = not any(t.user_attrs.get(RETRY_OF) == me.user_attrs[RETRY_OF] for t in earlier)
    if keep:
        trial.set_user_attr(FOLDER, folder_of(me))
    else:
        trial.set_user_attr(CANCELLED, True)
        study.tell(trial, state=TrialState.FAIL)
    return keep


def retry(study: optuna.Study, trial: FrozenTrial, max_retries: int) -> bool:
    """Enqueue a re-run of a failed trial in its folder, unless it was re-run max_retries times."""
    folder = folder_of(trial)
    runs = [t for t in live(study.get_trials(deepcopy=False)) if folder_of(t) == folder]
    if len(runs) > max_retries:
        log.error(
            "Trial %d (%s) was interrupted %d times: not re-run", trial.number, folder, len(runs)
        )
        return False
    study.enqueue_trial(trial.params, user_attrs={FOLDER: folder, RETRY_OF: trial.number})
    return True


def conclude(
    study: optuna.Study,
    trial: FrozenTrial,
    sweep_dir: Path,
    objectives: list[str],
    max_retries: int,
    why: str = "",
) -> Outcome | None:
    """Tell the study how a trial's job ended, as its folder says: completed -> COMPLETE with
    its objective values; stopped by the pruner -> PRUNED (and its metrics.json says so); failed
    in the run -> FAIL with why; interrupted -> FAIL, and a re-run in its folder is enqueued.
    None when another sweeper concluded the trial first (the storage lets only one finish it)."""
    folder = Path(sweep_dir) / folder_of(trial)
    pruned = trial.user_attrs.get(PRUNED_BY)
    outcome = Outcome(PRUNED, reason=pruned) if pruned else read_outcome(folder, objectives)
    if outcome.state == INTERRUPTED:
        outcome.reason = f"interrupted ({'; '.join(filter(None, [why, outcome.reason]))}); re-run"
    try:
        if outcome.state == PRUNED:
            study.tell(trial.number, state=TrialState.PRUNED)
            mark_pruned(folder, outcome.reason)
        elif outcome.state == COMPLETED:
            study.tell(trial.number, outcome.values)
        else:
            study._storage.set_trial_user_attr(trial._trial_id, REASON, outcome.reason)
            study.tell(trial.number, state=TrialState.FAIL)
    except (UpdateFinishedTrialError, ValueError):
        if study._storage.get_trial(trial._trial_id).state.is_finished():
            return None
        raise
    if outcome.state == INTERRUPTED:
        retry(study, study._storage.get_trial(trial._trial_id), max_retries)
    return outcome


def take_back_stale(
    study: optuna.Study,
    sweep_dir: Path,
    objectives: list[str],
    grace_period: float,
    max_retries: int,
) -> None:
    """Conclude the RUNNING trials whose sweeper stopped beating (kill -9, node failure), from
    their folders: a job that ended before its sweeper did counts as it ended; an interrupted
    one is re-run in its folder, once, by whichever sweeper gets there first."""
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        silent = now - trial.system_attrs.get(HEARTBEAT, started)
        if silent <= grace_period:
            continue
        why = f"its sweeper stopped: no heartbeat from it or its job for {silent:.0f} s"
        outcome = conclude(study, trial, sweep_dir, objectives, max_retries, why)
        if outcome is not None:
            log.warning("Trial %d (%s): %s %s", trial.number, folder_of(trial), why, outcome.state)


def beat(study: optuna.Study, trials: list[optuna.Trial], interval: float) -> threading.Event:
    """Say every `interval` seconds, in a daemon thread, that these trials are alive, until the
    returned event is set or the study has finished them all."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            alive = len(trials)
            for trial in trials:
                try:
                    study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT, time.time())
                except UpdateFinishedTrialError:
                    alive -= 1
                except Exception as error:  # a busy database: the next beat will do
                    log.warning("heartbeat of trial %d: %s", trial.number, error)
            if not alive or stop.wait(interval):
                return

    threading.Thread(target=loop, name="waebench-heartbeat", daemon=True).start()
    return stop


@contextmanager
def heartbeat(study: optuna.Study, trials: list[optuna.Trial], interval: float) -> Iterator[None]:
    """While the block runs, say every `interval` seconds that these trials' sweeper is alive."""
    stop = beat(study, trials, interval)
    try:
        yield
    finally:
        stop.set()


def progress(study: optuna.Study, n_trials: int) -> tuple[int, int, int]:
    """(new trials still to ask, trials waiting to be asked, trials running) of the live trials."""
    trials = live(study.get_trials(deepcopy=False))
    fresh = sum(map(is_fresh, trials))
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return max(0, n_trials - fresh), waiting, running
