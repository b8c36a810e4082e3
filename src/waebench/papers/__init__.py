"""The papers whose tables waebench reproduces, one module each: its protocol table (every
setting of its `*_paper` experiments beside the official code's) and its published numbers,
each with the estimator that produced it. docs/protocols.md is written from them
(`python -m waebench.papers`)."""

from __future__ import annotations

from waebench.papers import cwae, rae, wae
from waebench.papers.base import (
    NOT_APPLICABLE,
    Paper,
    PublishedValue,
    Setting,
    same_value,
)

PAPERS: tuple[Paper, ...] = (wae.PAPER, rae.PAPER, cwae.PAPER)
PUBLISHED: tuple[PublishedValue, ...] = tuple(v for paper in PAPERS for v in paper.published)

__all__ = [
    "NOT_APPLICABLE",
    "PAPERS",
    "PUBLISHED",
    "Paper",
    "PublishedValue",
    "Setting",
    "same_value",
]
