"""One definition per metric of `metrics.json`'s `eval`: its key, what it is, the table and
column it is shown in, which way is better, the recorded settings that make two values
comparable, and how it is printed. The evaluation writes its entries under these keys; the
report, the page, the results index and their LaTeX and CSV read them through
`definition_of`.

A new metric is one `MetricDefinition` in `METRICS` plus its computation (an entry
`{"value": ..., <settings>}` written by `evaluate.py`). For example Mardia's kurtosis of the
test codes (`waebench.evaluation.normality`), lower is better, its codes sampled or not:

    MetricDefinition("mardia_kurtosis/test", "kurtosis", "Mardia's kurtosis of the test
        codes, |b_2 - d(d+2)|", "test", varies=("codes",), fmt=".3g")

A metric best near a value other than 0 is `closest_to(target)`, or `closest_to(setting=...)`
when its entry records the target.

A key without a definition is still reported, under its key, in the "other" table. A new
sampler (`waebench.samplers.SAMPLERS`) brings its keys with it (`fid/samples/<name>`, and the
KID and precision/recall ones), titled by its class's `label` and `title`.

Two values share a column when every setting their entries record agrees, except `seed`
(the values of several seeds are averaged) and the definition's `varies` (e.g. `codes` of
the latent MMD: each model's own codes, sampled or not, by design). A setting recorded in
new entries only is filled in for older records by `legacy.entries`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from waebench import samplers

VALUE_FIELDS = ("value", "std")  # an entry's numbers; every other field is a setting
ALWAYS_VARIES = ("seed",)


@dataclass(frozen=True)
class Better:
    """Which values are better: `lower`, `higher`, `closest` to `target` (or to the entry's
    recorded setting `setting`), or `none` (values of different models measure different
    things and are not ranked)."""

    way: str
    target: float | None = None
    setting: str | None = None
    label: str = ""  # how the target is written, e.g. "d(d+2)"

    def badness(self, value: float, settings: Mapping[str, Any]) -> float | None:
        """0 at the best value, larger the worse; None when not ranked."""
        if self.way == "lower":
            return value
        if self.way == "higher":
            return -value
        if self.way == "closest":
            target = settings.get(self.setting) if self.setting else self.target
            return None if target is None else abs(value - float(target))
        return None

    @property
    def mark(self) -> str:
        """The column heading's sign: ↓, ↑, →target, or nothing."""
        arrows = {"lower": "↓", "higher": "↑"}
        if self.way == "closest":
            return "→" + (self.label or f"{self.target:g}")
        return arrows.get(self.way, "")

    def describe(self) -> str:
        if self.way == "closest":
            return f"best closest to {self.label or f'{self.target:g}'}"
        return {"lower": "lower is better", "higher": "higher is better"}.get(
            self.way, "not ranked"
        )


LOWER, HIGHER, UNRANKED = Better("lower"), Better("higher"), Better("none")


def closest_to(target: float | None = None, *, setting: str | None = None, label: str = ""):
    """Best closest to `target`, or to the value the entry records as `setting`."""
    if (target is None) == (setting is None):
        raise ValueError("closest_to: give either a target or the setting that records it")
    return Better("closest", target, setting, label)


@dataclass(frozen=True)
class Group:
    """A table of metrics: its title, the recorded settings that split it into one table per
    value (e.g. one FID table per feature space and real set), and its caption: the
    fragments whose `{setting}`s the table's columns share (the others are left out)."""

    title: str
    splits_by: tuple[str, ...] = ()
    caption: tuple[str, ...] = ()


IMAGE_SPLITS = ("extractor", "real", "num_real")
IMAGES = "{num_fake} generated images against {num_real} real images ({real})"
GROUPS = {
    "FID": Group("FID", IMAGE_SPLITS, ("FID in the feature space of `{extractor}`", IMAGES)),
    "KID": Group("KID", IMAGE_SPLITS, ("KID in the feature space of `{extractor}`", IMAGES)),
    "precision": Group(
        "Precision", IMAGE_SPLITS, ("Precision in the feature space of `{extractor}`", IMAGES)
    ),
    "recall": Group(
        "Recall", IMAGE_SPLITS, ("Recall in the feature space of `{extractor}`", IMAGES)
    ),
    "test": Group(
        "Codes and reconstructions",
        caption=(
            "On the {num_images} test images ({real})",
            "{num_codes} codes (a column that used another number names it)",
        ),
    ),
    "other": Group(
        "Other metrics",
        caption=("Metrics without a definition in waebench.evaluation.definitions",),
    ),
}


@dataclass(frozen=True)
class MetricDefinition:
    """One metric: `key` in `metrics.json`'s `eval` (a value in another feature space than
    Inception's has `@<extractor>` appended), its column heading, what it is, its table
    (`GROUPS`), which way is better, the recorded settings allowed to differ within a column
    (`varies`), its number format, where else it is read from (`record="test"`: the training's
    test-epoch mean `metrics.json` `test.<term>` of key `test/<term>`), and the results index
    table it is in (`index`). `stands_in_for`: the key whose column it fills, marked °, for
    a model without that metric (a Gaussian fitted to the codes for a model without a prior:
    the N column of Ghosh et al. 2020)."""

    key: str
    column: str
    title: str
    group: str
    better: Better = LOWER
    varies: tuple[str, ...] = ()
    fmt: str = ".4g"
    record: str = "eval"
    index: str = ""
    stands_in_for: str = ""

    def comparable_settings(self, entry: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """The entry's settings that must agree for two values to share a column."""
        skip = (*VALUE_FIELDS, *ALWAYS_VARIES, *self.varies)
        return tuple(sorted((k, frozen(v)) for k, v in entry.items() if k not in skip))

    def format(self, value: float, std: float | None = None) -> str:
        """`value` (and `± std`) as printed: the definition's format; a standard deviation
        with the value's decimals (fixed formats) or 2 significant digits."""
        if value is None or math.isnan(value):
            return "—"
        text = format(value, self.fmt)
        if std is None or math.isnan(std):
            return text
        std_fmt = self.fmt if self.fmt.endswith("f") else ".2g"
        return f"{text} ± {format(std, std_fmt)}"


def frozen(value: Any) -> Any:
    """A recorded setting as a hashable value (lists as tuples, mappings as sorted pairs)."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(frozen(v) for v in value)
    return value


def thawed(value: Any) -> Any:
    """A `frozen` setting back as JSON-like data (pairs as mappings, tuples as lists)."""
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str)
                         for v in value):  # fmt: skip
            return {k: thawed(v) for k, v in value}
        return [thawed(v) for v in value]
    return value


def image_sets() -> list[tuple[str, str, str]]:
    """(set, column heading, what the images are) of the image sets scored against real
    images, in table order: RAE's Table 1 (REC, N, GMM, ...; Interp)."""
    sets = [("reconstructions", "REC", "reconstructions of the test images")]
    for name, cls in samplers.SAMPLERS.items():
        label, title = getattr(cls, "label", name), getattr(cls, "title", name)
        sets.append((f"samples/{name}", label, f"decoded codes of {title}"))
    sets.append(
        (
            "interpolations",
            "Interp",
            "decoded midpoints (z_a + z_b) / 2 of pairs of codes (`eval.interpolation`)",
        )
    )
    sets.append(("images", "images", "the images scored by `waebench-eval images=...`"))
    return sets


# The results index's tables (docs/results/README.md) of the FID of each image set.
INDEX_OF_SET = {"reconstructions": "codes", "interpolations": "codes"}


def image_metrics() -> list[MetricDefinition]:
    """FID, KID and precision/recall of every image set (`fid/<set>`, `kid/<set>`,
    `prc/<set>/precision`, `prc/<set>/recall`). The Gaussian fitted to the codes stands in
    for the prior of a model without one (`samplers.AUTO`)."""
    with_prior, without = (samplers.resolve([samplers.AUTO], p)[0] for p in (True, False))
    families = (
        ("fid/{}", "FID", "FID of {}", LOWER, ".1f"),
        ("kid/{}", "KID", "KID of {}", LOWER, ".3g"),
        ("prc/{}/precision", "precision", "precision of {}", HIGHER, ".3f"),
        ("prc/{}/recall", "recall", "recall of {}", HIGHER, ".3f"),
    )
    out = []
    for key, group, title, better, fmt in families:
        for name, column, what in image_sets():
            index = ""
            if group == "FID":
                index = "samples" if name.startswith("samples/") else INDEX_OF_SET.get(name, "")
            host = key.format(f"samples/{with_prior}") if name == f"samples/{without}" else ""
            out.append(
                MetricDefinition(
                    key.format(name),
                    column,
                    title.format(what),
                    group,
                    better,
                    fmt=fmt,
                    index=index,
                    stands_in_for=host,
                )
            )
    return out


TEST_METRICS = (
    MetricDefinition(
        "rec/test", "rec. cost",
        "the model's own reconstruction cost on the test images (deterministic codes; its "
        "`cost` recorded: not ranked, `mse/test` compares models)", "test", UNRANKED,
        varies=("cost",),
    ),
    MetricDefinition(
        "mse/test", "MSE", "mean squared error per pixel of the test reconstructions", "test",
        fmt=".3g",
    ),
    MetricDefinition(
        "test/penalty", "penalty",
        "the model's own penalty on the test split (each model its own divergence: not ranked)",
        "test", UNRANKED, record="test",
    ),
    MetricDefinition(
        "latent_mmd/test", "latent MMD",
        "MMD² between test codes (samples of Q(z|x) for a Gaussian encoder) and prior samples, "
        "the same estimator for every model", "test", varies=("codes",), fmt=".3g",
        index="codes",
    ),
    MetricDefinition(
        "latent_mmd_means/test", "MMD (means)",
        "the latent MMD of a Gaussian encoder's means", "test", fmt=".3g",
    ),
    MetricDefinition(
        "mardia_skewness/test", "skewness",
        "Mardia's skewness b_1 of the test codes / sigma_z against N(0, I), uncentred (the CWAE "
        "paper's; `waebench.evaluation.normality`), mean over batches of 128",
        "test", varies=("codes",), fmt=".3g",
    ),
    MetricDefinition(
        "mardia_kurtosis/test", "kurtosis",
        "Mardia's kurtosis of the test codes / sigma_z as the CWAE paper scores it, |b_2 - d(d+2)| "
        "(0 in expectation under N(0, I)), mean over batches of 128",
        "test", varies=("codes",), fmt=".3g",
    ),
    MetricDefinition(
        "kl/test", "KL", "mean KL(Q(z|x) ‖ P_Z) over the test images (Gaussian encoders)",
        "test", UNRANKED,
    ),
)  # fmt: skip

METRICS: dict[str, MetricDefinition] = {d.key: d for d in (*image_metrics(), *TEST_METRICS)}


def definition_of(key: str) -> MetricDefinition:
    """The definition of an `eval` key (its `@<extractor>` suffix dropped); a key without one
    gets a plain definition of its own, in the "other" table: reported, never dropped."""
    base = key.split("@")[0]
    found = METRICS.get(base)
    if found is not None:
        return found
    return MetricDefinition(base, base, f"`{base}`", "other", UNRANKED)


def ordering(key: str) -> int:
    """A metric's place in tables: the order of `METRICS`, undefined keys last."""
    keys = list(METRICS)
    return keys.index(key) if key in keys else len(keys)


# Feature spaces that a published number names differently from ours although they are
# the same network: torch-fidelity's `inception-v3-compat` is the TensorFlow Inception
# (2015-12-05 weights) of the TTUR code, which pytorch-fid ports as well.
SAME_FEATURES = {"inception-v3-compat": ("tf-inception (paper)", "pytorch-fid inception")}
NOT_RECORDED = object()


def differences(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """The settings in which a published number (`theirs`, as its paper states them:
    `waebench.papers.PublishedValue.settings`) was computed otherwise than ours (an entry's
    settings, or a column's): every setting both state (the feature space up to
    `SAME_FEATURES`; the images' counts and real set; the estimator: `checkpoint`,
    `reconstruction`, `interpolation`; `sampler`'s options, each one the paper states). A
    setting the paper leaves "not stated" differs too: it is not known to match. Empty when
    the numbers are computed alike, so one may stand beside the other."""
    out = []
    for key, value in theirs.items():
        if key not in ours:
            continue
        mine = thawed(ours[key])
        if key == "extractor" and value in SAME_FEATURES.get(mine, ()):
            continue
        if isinstance(value, Mapping):
            options = mine if isinstance(mine, Mapping) else {}
            out += [
                f"{key} {option}={v} (ours: {options.get(option, 'not recorded')})"
                for option, v in value.items()
                if options.get(option, NOT_RECORDED) != v
            ]
        elif mine != value:
            out.append(f"{key} {value} (ours: {mine})")
    return out
