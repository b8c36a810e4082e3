"""What a paper's module holds: the protocol table of its `*_paper` experiments (one row per
setting: our value, the official code's value, its file and line, any deviation and why) and
the numbers it published, each with the estimator that produced it, which reports print
beside ours."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any

NOT_APPLICABLE = object()  # `Setting.ours_for` of an experiment the row does not cover


@dataclass(frozen=True)
class Setting:
    """One row of a protocol table.

    `ours` is the value every experiment of the row has at `key`, or a mapping
    {experiment name pattern (fnmatch, e.g. "mnist_*"): value}, first match wins (an
    experiment that matches none is not covered); `experiments` (a pattern, or several
    separated by commas) limits the row to some of the paper's experiments. A row whose
    `key` is not a config key (`in_config=False`: a fact of the code, e.g. how batches are
    drawn) states `ours` in words; the test cannot look it up."""

    key: str
    ours: Any
    official: str
    where: str  # the official file and line at the paper's `commit`, e.g. "wae.py:123"
    deviation: str = ""  # why ours differs from the official value; "" when it does not
    experiments: str = "*"
    in_config: bool = True

    def covers(self, experiment: str) -> bool:
        return any(fnmatch(experiment, p.strip()) for p in self.experiments.split(","))

    def ours_for(self, experiment: str) -> Any:
        """Our value for `experiment` (a file name of the paper's folder, e.g. `mnist_vae`),
        or NOT_APPLICABLE."""
        if not self.covers(experiment):
            return NOT_APPLICABLE
        if not isinstance(self.ours, dict):
            return self.ours
        for pattern, value in self.ours.items():
            if fnmatch(experiment, pattern):
                return value
        return NOT_APPLICABLE


def same_value(ours: Any, composed: Any) -> bool:
    """Whether a row's value equals a composed config value: numbers to a relative 1e-9
    (YAML writes 1.0e-4, Python 1e-4), lists element by element, the rest exactly."""
    if isinstance(ours, (list, tuple)) and isinstance(composed, (list, tuple)):
        return len(ours) == len(composed) and all(map(same_value, ours, composed))
    numbers = (int, float)
    if isinstance(ours, numbers) and isinstance(composed, numbers):
        if isinstance(ours, bool) or isinstance(composed, bool):
            return ours is composed
        return math.isclose(ours, composed, rel_tol=1e-9, abs_tol=0.0)
    return ours == composed


@dataclass(frozen=True)
class PublishedValue:
    """One number of a paper's table, and the model of ours it stands beside.

    `settings` say how the paper computed it, in the terms our FID entries record: the
    feature space (`extractor`), the images (`num_fake`, `num_real`, `real`), the weights
    (`checkpoint`), the sampler's options (`sampler`, as `waebench.samplers.recorded_options`
    gives them), the reconstructions' codes (`reconstruction`), the interpolation pairs
    (`interpolation`); "not stated" where the paper and its code do not say. The reports
    put it beside our number only where every setting that both state agrees
    (`waebench.evaluation.definitions.differences`), else in a table of its own that says
    what differs. `note` is what still differs when our settings match, shown with the
    number wherever it is."""

    dataset: str
    model: str  # the name of our model it stands beside (`waebench.reporting.runs.MODEL_NAMES`)
    metric: str  # the metrics.json key of ours it stands beside, e.g. `fid/samples/prior`
    value: float
    settings: tuple[tuple[str, object], ...]  # how the paper computed it (see above)
    source: str  # e.g. "Ghosh et al. 2020, Table 1"
    name: str = ""  # the paper's name for the model, when it is not ours
    note: str = ""  # a difference from ours that our settings cannot remove

    @property
    def label(self) -> str:
        return self.name or self.model


@dataclass(frozen=True)
class Paper:
    """A paper whose table waebench reproduces: `conf/experiment/<experiments>/` holds its
    protocol and `conf/sweep/<sweep>.yaml` its table's runs, `settings` the protocol table,
    `published` its numbers."""

    name: str
    citation: str
    code: str  # the official code, owner/repository on GitHub
    commit: str  # the commit the `where` of each setting refers to
    experiments: str  # the experiment folder, e.g. "wae_paper"
    settings: tuple[Setting, ...] = ()
    published: tuple[PublishedValue, ...] = field(default=())
    sweep: str = ""  # the sweep of its table, e.g. "wae_paper_table"
    summary: str = ""  # a paragraph for docs/protocols.md: what the table covers
