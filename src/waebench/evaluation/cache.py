"""The on-disk cache of evaluation artefacts (real-data statistics, trained classifiers).

Jobs of a sweep share one cache folder. `file_lock` lets one job compute an
artefact while the others wait for it, and files are written to a temporary
name and renamed, so a reader never sees half a file and a killed job leaves
no corrupt entry.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from waebench.run.record import atomic_path


@contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on `path`, held for the `with` block.
    The kernel releases it when the process dies, so a killed job blocks nobody."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_atomic(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename it into place."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def file_digest(path: str | Path, length: int = 12) -> str:
    """The first `length` hex digits of the file's sha256."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]
