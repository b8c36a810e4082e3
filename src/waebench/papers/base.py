"""What a paper's module holds: the protocol table of its `*_paper` experiments (one row per
setting: our value, the official code's value, its file and line, any deviation and why) and
the numbers it published, which reports print beside ours."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Setting:
    """One row of a protocol table.

    `ours` is the value every experiment of the row has at `key`, or a mapping
    {experiment name pattern (fnmatch, e.g. "mnist_*"): value}, first match wins;
    `experiments` (a pattern) limits the row to some of the paper's experiments."""

    key: str
    ours: Any
    official: str
    where: str  # the official file and line at the paper's `commit`, e.g. "wae.py:123"
    deviation: str = ""  # why ours differs from the official value; "" when it does not
    experiments: str = "*"


@dataclass(frozen=True)
class PublishedValue:
    """One number of a paper's table, and the model of ours it stands beside."""

    dataset: str
    model: str  # the name of our model it stands beside (`waebench.reporting.runs.MODEL_NAMES`)
    metric: str  # the metrics.json key of ours it stands beside, e.g. `fid/samples/prior`
    value: float
    settings: tuple[tuple[str, object], ...]  # how the paper computed it (extractor, counts)
    source: str  # e.g. "Ghosh et al. 2020, Table 1"
    name: str = ""  # the paper's name for the model, when it is not ours

    @property
    def label(self) -> str:
        return self.name or self.model


@dataclass(frozen=True)
class Paper:
    """A paper whose table waebench reproduces: `conf/experiment/<experiments>/` holds its
    protocol, `settings` the protocol table, `published` its numbers."""

    name: str
    citation: str
    code: str  # the official code, owner/repository on GitHub
    commit: str  # the commit the `where` of each setting refers to
    experiments: str  # the experiment folder, e.g. "wae_paper"
    settings: tuple[Setting, ...] = ()
    published: tuple[PublishedValue, ...] = field(default=())
