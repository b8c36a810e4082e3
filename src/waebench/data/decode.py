"""Image files decoded into one uint8 tensor, in chunks, across processes when asked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch

CHUNK = 1000  # files a worker decodes per task


def _decode_chunk(decode: Callable[..., np.ndarray], settings: tuple, paths: list[Path]):
    return np.stack([decode(p, *settings) for p in paths])


def decode_files(
    decode: Callable[..., np.ndarray], paths: Sequence[Path], *settings, workers: int = 0
) -> torch.Tensor:
    """uint8 [N, C, S, S] of `decode(path, *settings)` (an [S, S, C] array) for every path,
    in `workers` processes when there is more than one chunk (`decode` must be picklable:
    a module-level function)."""
    chunks = [list(paths[i : i + CHUNK]) for i in range(0, len(paths), CHUNK)]
    work = partial(_decode_chunk, decode, settings)
    if workers > 0 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(work, chunks))
    else:
        parts = [work(c) for c in chunks]
    return torch.from_numpy(np.concatenate(parts)).permute(0, 3, 1, 2).contiguous()
