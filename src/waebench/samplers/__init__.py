"""Where generated codes come from: the prior, or a law fitted to the training codes after
training ("ex-post density estimation", Ghosh et al. 2020). Each sampler is one class with
`sample(n, seed) -> [n, d_z]` codes, decoded into images by the model; `eval.samplers`
names them and `eval.sampler.<name>` holds each one's settings (conf/eval/default.yaml).

`auto` is the N column of Ghosh et al. 2020's Table 1: the prior where the model's
regularizer pulls the codes toward one (`LatentRegularizer.uses_prior`), else a Gaussian
fitted to the training codes. `prior` on a model without a prior is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from waebench.prior import GaussianPrior
from waebench.samplers.flow import INSTALL, FlowSampler, zuko_available
from waebench.samplers.gaussian import GaussianSampler
from waebench.samplers.gmm import GMMSampler
from waebench.samplers.prior import PriorSampler
from waebench.samplers.two_stage import TwoStageVAESampler

SAMPLERS = {
    cls.name: cls
    for cls in (PriorSampler, GaussianSampler, GMMSampler, TwoStageVAESampler, FlowSampler)
}
AUTO = "auto"
CHOICES = (AUTO, *SAMPLERS)


def resolve(names: Sequence[str], uses_prior: bool) -> list[str]:
    """`names` with `auto` replaced by `prior` (or `gaussian` for a model without a prior)
    and repeats dropped, in order. Unknown names raise ValueError."""
    unknown = [name for name in names if name not in CHOICES]
    if unknown:
        raise ValueError(
            f"eval.samplers: unknown sampler{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
            f"valid choices: {', '.join(CHOICES)}"
        )
    out: list[str] = []
    for name in names:
        if name == AUTO:
            name = "prior" if uses_prior else "gaussian"
        if name not in out:
            out.append(name)
    return out


def problems(names: Any, uses_prior: bool | None, regularizer: str = "") -> list[str]:
    """What is wrong with `eval.samplers=names` (for a model whose regularizer `uses_prior`;
    None: not known yet): not a list, unknown names, `prior` without a prior, `flow` without
    zuko. One line each, naming the option and the fix."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        return [f"eval.samplers={names!r}: must be a list of {', '.join(CHOICES)}"]
    try:
        resolved = resolve(list(names), True if uses_prior is None else uses_prior)
    except ValueError as error:
        return [str(error)]
    found = []
    if uses_prior is False and "prior" in resolved:
        found.append(
            f"eval.samplers: `prior` decodes samples of the prior P_Z, which regularizer "
            f"{regularizer or '(this model)'} does not pull the codes toward (no prior, as "
            "for the AE and the RAE family); use `gaussian` (a Gaussian fitted to the "
            "training codes, the N column of Ghosh et al. 2020 for such models) or `auto` "
            "(the prior where a model has one, else `gaussian`)"
        )
    if "flow" in resolved and not zuko_available():
        found.append(f"eval.samplers: `flow`: {INSTALL}")
    return found


def build(
    name: str,
    settings: Mapping[str, Any],
    prior: GaussianPrior,
    codes: Callable[[], torch.Tensor],
    seed: int = 0,
):
    """The sampler `name` (a resolved name: not `auto`) with its `settings`
    (`eval.sampler.<name>`, may be absent); `codes()` gives the training codes, computed only
    for the samplers fitted to them."""
    cls = SAMPLERS[name]
    if cls is PriorSampler:
        return PriorSampler(prior)
    return cls(codes(), seed=seed, **dict(settings.get(name) or {}))


__all__ = [
    "AUTO",
    "CHOICES",
    "SAMPLERS",
    "FlowSampler",
    "GMMSampler",
    "GaussianSampler",
    "PriorSampler",
    "TwoStageVAESampler",
    "build",
    "problems",
    "resolve",
]
