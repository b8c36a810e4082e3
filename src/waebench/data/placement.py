"""Where a GPU run keeps its data: `dataset.on_device=auto|true|false`.

On the GPU (`true`, or `auto` when every split fits in `AUTO_FRACTION` of the free
GPU memory) the uint8 splits are copied there once and batches are gathered there
by index: no host-to-device copy per step. Otherwise they stay in host memory and
each batch is pinned, so Lightning's copy to the GPU is non-blocking.
"""

from __future__ import annotations

import torch

AUTO_FRACTION = 0.25  # the rest of the GPU is the model's, its activations' and cuDNN's
GIB = 2**30


def parse_on_device(value: str | bool) -> str:
    """`auto`, `true` or `false` (YAML booleans accepted)."""
    text = str(value).lower()
    if text not in ("auto", "true", "false"):
        raise ValueError(f"dataset.on_device={value!r}; valid values: auto, true, false")
    return text


def keep_on_device(setting: str, needed: int, device: torch.device) -> bool:
    """Whether splits of `needed` bytes go to `device` (a CUDA device; CPU runs never copy)."""
    if device.type != "cuda" or setting == "false":
        return False
    free, total = torch.cuda.mem_get_info(device)
    if setting == "auto":
        return needed <= AUTO_FRACTION * free
    if needed > free:
        raise MemoryError(
            f"dataset.on_device=true: the dataset needs {needed / GIB:.2f} GiB of GPU memory "
            f"but {device} has {free / GIB:.2f} GiB free (of {total / GIB:.2f} GiB). Use "
            f"dataset.on_device=auto (keeps it in pinned host memory when it does not fit) "
            f"or dataset.on_device=false."
        )
    return True
