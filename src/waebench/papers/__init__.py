"""The papers whose tables waebench reproduces, one module each: its protocol table (every
setting of its `*_paper` experiments beside the official code's) and its published numbers."""

from __future__ import annotations

from waebench.papers import cwae, rae, wae
from waebench.papers.base import Paper, PublishedValue, Setting

PAPERS: tuple[Paper, ...] = (wae.PAPER, rae.PAPER, cwae.PAPER)
PUBLISHED: tuple[PublishedValue, ...] = tuple(v for paper in PAPERS for v in paper.published)

__all__ = ["PAPERS", "PUBLISHED", "Paper", "PublishedValue", "Setting"]
