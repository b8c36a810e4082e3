"""Records written before the typed `eval` settings and the metric definitions, read as
today's: the one migration step for old `config.yaml` files and old `metrics.json` `eval`
entries. Each rule says which version wrote what.

Configs (`config`):
- before `model.init`, `model.batch_norm` and `model.input_noise` (the paper protocols'
  network options), the networks had torch's initialisation and batch norm and no input
  noise (`BEFORE_NETWORK_OPTIONS`, today's defaults);
- before `model.batches_per_step`, a training step took one batch (`BEFORE_BATCHES_PER_STEP`).

Settings (`settings`):
- before `eval.samplers`, the switches `eval.fid.prior` (default on) and `eval.fid.gmm` chose
  the samplers, `eval.gmm_components` was the GMM's `n_components`, and no interpolations
  were scored (`eval.fid.interpolations` came with the samplers);
- `eval.inception_weights` is the older spelling of `eval.inception.weights`;
- before `eval.checkpoint`, `eval.reconstruction` and `eval.interpolation` (the paper
  protocols' estimators), the last weights were scored, reconstructions decoded the
  encoder's mean and interpolations paired random test codes (`BEFORE_ESTIMATORS`);
- before `eval.sampler.gmm.max_iter`, the EM GMM ran scikit-learn's default, 100 iterations;
- before `eval.fid.real_splits`, the FID's real set was `eval.split` (today's null).

Entries (`entries`):
- before `codes` was recorded, `latent_mmd/test` scored the encoder's means: a Gaussian
  encoder's (its record has `kl/test`, written for Gaussian encoders since the first
  evaluation) is today's `latent_mmd_means/test`, a deterministic encoder's is today's
  `latent_mmd/test` on its codes;
- before the entries of samples recorded their sampler's options (`sampler`), the options
  were those of the run's `eval.sampler.<name>`; recorded options are read in today's terms
  (`samplers.recorded_options`: a GMM without `max_iter` ran 100 iterations, a two-stage VAE
  from before the presets had the `study` preset's options), and a sampler recorded as text,
  `name(option=value, ...)` (the version that added the presets), as its options;
- before the estimators were recorded, every entry scored the last weights, and
  reconstructions and interpolations were made as `BEFORE_ESTIMATORS` says (entries of
  images scored from files, `fid/images`, record none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from fnmatch import fnmatch
from typing import Any

from waebench import samplers
from waebench.evaluation.settings import EvalSettings

BEFORE_NETWORK_OPTIONS = {
    "init": "torch",
    "batch_norm": {"momentum": 0.1, "eps": 1.0e-5},
    "input_noise": 0.0,
}
BEFORE_BATCHES_PER_STEP = {"batches_per_step": 1}
OLD_SAMPLER_SWITCHES = ("prior", "gmm")
BEFORE_ESTIMATORS = {"checkpoint": "last", "reconstruction": "mean", "interpolation": "test_pairs"}
GMM_MAX_ITER = 100  # scikit-learn's default, which the GMM ran before it was an option


def config(cfg: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's `config.yaml` (plain dicts) with its `model` in today's layout."""
    model = (cfg or {}).get("model")
    if not isinstance(model, Mapping):
        return cfg
    return {**cfg, "model": {**BEFORE_NETWORK_OPTIONS, **BEFORE_BATCHES_PER_STEP, **model}}


def settings(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """An `eval` config section (plain dicts) in today's layout."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}
    fid = out.get("fid") or {}
    if "samplers" not in out and any(name in fid for name in OLD_SAMPLER_SWITCHES):
        out["samplers"] = [n for n in OLD_SAMPLER_SWITCHES if fid.get(n, n == "prior")]
    if "fid" in out:
        out["fid"] = {k: v for k, v in fid.items() if k not in OLD_SAMPLER_SWITCHES}
        out["fid"].setdefault("interpolations", False)
        out["fid"].setdefault("real_splits", None)
    components = out.pop("gmm_components", None)
    if "sampler" not in out and components is not None:
        out["sampler"] = {"gmm": {"n_components": components}}
    weights = out.pop("inception_weights", None)
    if weights is not None:
        inception = out.setdefault("inception", {})
        if inception.get("weights") is None:
            inception["weights"] = weights
    for key, value in BEFORE_ESTIMATORS.items():
        out.setdefault(key, value)
    gmm = (out.get("sampler") or {}).get("gmm")
    if isinstance(gmm, Mapping) and "max_iter" not in gmm:
        out["sampler"] = {**out["sampler"], "gmm": {**gmm, "max_iter": GMM_MAX_ITER}}
    return out


def entries(eval_entries: Mapping[str, Any], sampler_options: Mapping[str, Any]) -> dict:
    """A record's `eval` entries in today's form; `sampler_options` is the run's
    `eval.sampler` (in today's layout)."""
    out = {k: dict(v) for k, v in eval_entries.items() if isinstance(v, Mapping)}
    out.update({k: v for k, v in eval_entries.items() if not isinstance(v, Mapping)})
    latent = out.get("latent_mmd/test")
    if isinstance(latent, dict) and "codes" not in latent:
        if "kl/test" in out:
            out["latent_mmd_means/test"] = {**out.pop("latent_mmd/test"), "codes": "means"}
        else:
            latent["codes"] = "deterministic"
    for key, entry in out.items():
        if not isinstance(entry, dict):
            continue
        if not key.split("@")[0].startswith(("fid/images", "kid/images", "prc/images/")):
            for name, value in estimator_settings(key).items():
                entry.setdefault(name, value)
        name = sampler_of(key)
        if name:
            recorded = entry.get("sampler", (sampler_options or {}).get(name))
            if isinstance(recorded, str):
                recorded = options_of_text(recorded)
            options = dict(recorded or {})
            if name == "gmm":
                options.setdefault("max_iter", GMM_MAX_ITER)
            options = samplers.recorded_options(name, {name: options})
            entry.pop("sampler", None)
            if options:
                entry["sampler"] = options
    return out


def estimator_settings(key: str) -> dict[str, Any]:
    """The estimator settings an entry `key` records, at their values before they were
    recorded (the patterns of `EvalSettings`' `recorded`)."""
    base = key.split("@")[0]
    return {
        f.name: BEFORE_ESTIMATORS[f.name]
        for f in fields(EvalSettings)
        if f.name in BEFORE_ESTIMATORS and fnmatch(base, f.metadata["recorded"])
    }


def options_of_text(text: str) -> dict[str, Any]:
    """`two_stage(beta=0.0015, preset=rae)` -> {"beta": 0.0015, "preset": "rae"}."""
    inner = text.partition("(")[2].rstrip(")")
    pairs = (item.split("=", 1) for item in inner.split(", ") if "=" in item)
    return {k: value_of(v) for k, v in pairs}


def value_of(text: str) -> Any:
    """A value as Python's str() wrote it: an int, a float, a bool or a string."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def sampler_of(key: str) -> str | None:
    """The sampler of an entry of samples (`fid/samples/gmm@...`, `prc/samples/gmm/recall`)."""
    parts = key.split("@")[0].split("/")
    return parts[2] if len(parts) >= 3 and parts[1] == "samples" else None
