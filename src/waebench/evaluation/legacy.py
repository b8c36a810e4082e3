"""Records written before the typed `eval` settings and the metric definitions, read as
today's: the one migration step for old `config.yaml` `eval` sections and old
`metrics.json` `eval` entries. Each rule says which version wrote what.

Settings (`settings`):
- before `eval.samplers`, the switches `eval.fid.prior` (default on) and `eval.fid.gmm` chose
  the samplers, `eval.gmm_components` was the GMM's `n_components`, and no interpolations
  were scored (`eval.fid.interpolations` came with the samplers);
- `eval.inception_weights` is the older spelling of `eval.inception.weights`.

Entries (`entries`):
- before `codes` was recorded, `latent_mmd/test` scored the encoder's means: a Gaussian
  encoder's (its record has `kl/test`, written for Gaussian encoders since the first
  evaluation) is today's `latent_mmd_means/test`, a deterministic encoder's is today's
  `latent_mmd/test` on its codes;
- before the entries of samples recorded their sampler's options (`sampler`), the options
  were those of the run's `eval.sampler.<name>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OLD_SAMPLER_SWITCHES = ("prior", "gmm")


def settings(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """An `eval` config section (plain dicts) in today's layout."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}
    fid = out.get("fid") or {}
    if "samplers" not in out and any(name in fid for name in OLD_SAMPLER_SWITCHES):
        out["samplers"] = [n for n in OLD_SAMPLER_SWITCHES if fid.get(n, n == "prior")]
    if "fid" in out:
        out["fid"] = {k: v for k, v in fid.items() if k not in OLD_SAMPLER_SWITCHES}
        out["fid"].setdefault("interpolations", False)
    components = out.pop("gmm_components", None)
    if "sampler" not in out and components is not None:
        out["sampler"] = {"gmm": {"n_components": components}}
    weights = out.pop("inception_weights", None)
    if weights is not None:
        inception = out.setdefault("inception", {})
        if inception.get("weights") is None:
            inception["weights"] = weights
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
        name = sampler_of(key)
        if name and isinstance(entry, dict) and "sampler" not in entry:
            options = dict((sampler_options or {}).get(name) or {})
            if options:
                entry["sampler"] = options
    return out


def sampler_of(key: str) -> str | None:
    """The sampler of an entry of samples (`fid/samples/gmm@...`, `prc/samples/gmm/recall`)."""
    parts = key.split("@")[0].split("/")
    return parts[2] if len(parts) >= 3 and parts[1] == "samples" else None
