"""Where generated codes come from: the prior, or a law fitted to the training codes after
training ("ex-post density estimation", Ghosh et al. 2020). Each sampler is one class with
`sample(n, seed) -> [n, d_z]` codes, decoded into images by the model; `eval.samplers`
names them and `eval.sampler.<name>` holds each one's settings (conf/eval/default.yaml).

`auto` is the N column of Ghosh et al. 2020's Table 1: the prior where the model's
regularizer pulls the codes toward one (`LatentRegularizer.uses_prior`), else a Gaussian
fitted to the training codes. `prior` on a model without a prior is refused.

A sampler class also says how reports head its column (`label`, `title`) and the valid
range of each of its options (`options`: the keys `eval.sampler.<name>` may have);
`recorded_options` is what a FID entry records of them (`sampler`), and what a published
number states (docs/protocols.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from waebench.prior import GaussianPrior
from waebench.samplers.flow import INSTALL, FlowSampler, zuko_available
from waebench.samplers.gaussian import GaussianSampler
from waebench.samplers.gmm import DPGMMSampler, GMMSampler
from waebench.samplers.prior import PriorSampler
from waebench.samplers.two_stage import TwoStageVAESampler, resolve_settings

SAMPLERS = {
    cls.name: cls
    for cls in (
        PriorSampler,
        GaussianSampler,
        GMMSampler,
        DPGMMSampler,
        TwoStageVAESampler,
        FlowSampler,
    )
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
    None: not known yet): not a list, empty, unknown names, `prior` without a prior, `flow`
    without zuko. One line each, naming the option and the fix (the options of `eval.sampler`
    are checked against the classes' `options` by `waebench.evaluation.settings`)."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        return [f"eval.samplers={names!r}: must be a list of {', '.join(CHOICES)}"]
    if not names:
        return [
            "eval.samplers=[]: no sampler, so no FID of generated samples; list at least one "
            f"of {', '.join(CHOICES)} (the default: [auto])"
        ]
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
    stds: Callable[[], torch.Tensor | None] | None = None,
    device: str | torch.device = "cpu",
):
    """The sampler `name` (a resolved name: not `auto`) with its `settings`
    (`eval.sampler.<name>`, may be absent); `codes()` gives the training codes, computed only
    for the samplers fitted to them; the two-stage VAE also takes their posterior standard
    deviations `stds()` (for `train_codes: sample`) and, where its `device` option says so,
    fits on `device`."""
    cls = SAMPLERS[name]
    if cls is PriorSampler:
        return PriorSampler(prior)
    options = dict(settings.get(name) or {})
    if cls is TwoStageVAESampler:
        sample_posterior = resolve_settings(options)["train_codes"] == "sample"
        options.update(stds=stds() if stds and sample_posterior else None)
        options["evaluation_device"] = device
    return cls(codes(), seed=seed, **options)


def recorded_options(name: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options of sampler `name` that its FID entries record (`sampler`), from
    `settings` (`eval.sampler`): those set (null is the default's value), in the class's
    own terms where it has them (`recorded_options`: a two-stage preset and what differs
    from it), e.g. {} for the prior, {"n_components": 10, "max_iter": 100} for `dpgmm`,
    {"preset": "rae", "beta": 0.0015} for the RAE code's second stage."""
    options = {k: v for k, v in dict((settings or {}).get(name) or {}).items() if v is not None}
    own = getattr(SAMPLERS.get(name), "recorded_options", None)
    return own(options) if own else options


__all__ = [
    "AUTO",
    "CHOICES",
    "SAMPLERS",
    "DPGMMSampler",
    "FlowSampler",
    "GMMSampler",
    "GaussianSampler",
    "PriorSampler",
    "TwoStageVAESampler",
    "build",
    "problems",
    "recorded_options",
    "resolve",
]
