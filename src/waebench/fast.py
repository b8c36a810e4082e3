"""Speed settings: the opt-in ones of the encoder/decoder (docs/gpu.md),
`model.channels_last` (NHWC memory layout for the conv nets: faster convolutions
on tensor cores) and `model.compile` (torch.compile, falling back to eager with a
warning that says why when compilation fails); mixed precision is Lightning's
`trainer.precision`, and `device_problems` refuses what the machine cannot run. And
`NullProfiler`, the trainer's profiler unless `trainer.profiler` names one (docs/speed.md)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.profilers import PassThroughProfiler
from torch import nn


def compile_with_fallback(module: nn.Module, name: str, backend: str | Callable = "inductor"):
    """Compile `module.forward` in place (its state_dict keys do not change). torch.compile
    compiles on the first call; if that fails, warn and run the module eagerly from then on."""
    eager = module.forward
    try:
        compiled = torch.compile(eager, backend=backend)
    except Exception as error:  # e.g. an unknown backend, or no compiler on this platform
        _warn_fallback(name, error)
        return

    def forward(*args: Any, **kwargs: Any) -> Any:
        try:
            return compiled(*args, **kwargs)
        except Exception as error:
            _warn_fallback(name, error)
            module.forward = eager
            return eager(*args, **kwargs)

    module.forward = forward


def _warn_fallback(name: str, error: BaseException) -> None:
    reason = " ".join(str(error).split())[:400]  # torch's message spans lines
    warnings.warn(
        f"model.compile=true: compiling the {name} failed ({type(error).__name__}: {reason}); "
        f"it runs uncompiled (eager). Set model.compile=false to silence this.",
        stacklevel=3,
    )


def device_problems(accelerator: str, precision: str) -> list[str]:
    """What the machine cannot run of `trainer.accelerator` and `trainer.precision`, said
    before training: a GPU accelerator without a visible CUDA GPU, pure bf16 on the CPU (its
    convolutions do not take bf16 weights with float inputs), bf16 on a GPU without bfloat16
    support (before Ampere). One line each, with the fix."""
    accelerator, precision = str(accelerator), str(precision)
    found = []
    cuda = torch.cuda.is_available()
    if accelerator in ("gpu", "cuda") and not cuda:
        found.append(
            f"trainer.accelerator={accelerator}: no CUDA GPU is visible here "
            "(torch.cuda.is_available() is False); use trainer.accelerator=auto or cpu"
        )
    uses_cuda = cuda and accelerator in ("gpu", "cuda", "auto")
    if precision == "bf16-true" and not uses_cuda:
        found.append(
            "trainer.precision=bf16-true: pure bfloat16 runs on a GPU only; on the CPU use "
            "32-true, or bf16-mixed"
        )
    if precision.startswith("bf16") and uses_cuda and not torch.cuda.is_bf16_supported():
        found.append(
            f"trainer.precision={precision}: this GPU ({torch.cuda.get_device_name()}) has no "
            "bfloat16 support (it needs compute capability 8.0 or newer); use "
            "trainer.precision=16-mixed (float16 with loss scaling) or 32-true"
        )
    return found


class NullProfiler(PassThroughProfiler):
    """Lightning's default profiler (which records nothing) at a lower cost: Lightning wraps
    each of its hook calls, about 120 a training step, in `profiler.profile(name)`, which the
    default makes a new generator-based context manager each time; this one hands out one
    reusable null context (0.08 ms less a step on a 2-core CPU: docs/speed.md)."""

    _context = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:
        return self._context
