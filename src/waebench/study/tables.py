"""The tables `waebench-study` runs, and the jobs of each.

A table is one line of TABLES: a sweep config (conf/sweep/<sweep>.yaml) whose grid names the
models (`model_key`: `experiment` or `regularizer`), the rows kept (`prefixes`: the MNIST
rows of a sweep that also holds CelebA's), and the overrides that put it at the paper's protocol.
Every job also gets GPU_OPTIONS (the options tests/test_fast.py checks against float32) and
EVAL_OPTIONS (10,000-image Inception FIDs); the user's overrides replace those of the same
key. A table whose sweep config is not in this waebench is left out, with a message.

Each job is composed here, before anything runs, as Hydra's basic sweeper will expand it
(the sweep config's grid, then the command line's, key by key), so that a bad value, a
missing dataset or missing FID weights stop the study before its first minute of training.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

STUDY_PROTOCOL = "wae_paper/mnist_protocol"
GPU_OPTIONS = (
    "trainer.accelerator=gpu",
    "trainer.precision=bf16-mixed",  # every regularizer's penalty stays float32
    "trainer.benchmark=true",
    "dataset.on_device=true",
    "trainer.enable_progress_bar=false",
)
CONV_OPTIONS = ("model.channels_last=true",)  # the DCGAN-like networks only
EVAL_OPTIONS = (
    "eval.enabled=true",
    "eval.inception.enabled=true",
    "eval.inception.num_samples=10000",
)


class StudyError(ValueError):
    """A table or option that cannot run; the message names it and the fix."""


@dataclass(frozen=True)
class Table:
    name: str  # its folder in the study's output and its --tables name
    title: str
    sweep: str
    model_key: str  # the swept key whose values are the table's rows
    prefixes: tuple[str, ...] = ("",)  # keep the rows whose value starts with one of these
    overrides: tuple[str, ...] = ()
    conv: bool = True  # DCGAN-like networks (model.channels_last applies)


TABLES = (
    Table(
        "cwae", "CWAE (Knop et al. 2020): MNIST and Fashion-MNIST, MLPs", "cwae_paper_table",
        "experiment", prefixes=("cwae_paper/mnist_", "cwae_paper/fashion_mnist_"), conv=False,
    ),
    Table(
        "wae_mnist", "WAE (Tolstikhin et al. 2018): the MNIST protocol", "wae_paper_table",
        "experiment", prefixes=("wae_paper/mnist_",),
    ),
    Table(
        "rae_mnist", "RAE (Ghosh et al. 2020), Table 1: the MNIST rows", "rae_paper_table",
        "experiment", prefixes=("rae_paper/mnist_",),
    ),
    Table(
        "study_fashion_mnist", "The study's models on Fashion-MNIST, WAE's MNIST protocol",
        "fmnist_study", "regularizer",
        overrides=(f"experiment={STUDY_PROTOCOL}", "dataset=fashion_mnist"),
    ),
    Table(
        "study_mnist", "The study's models on MNIST, WAE's MNIST protocol", "mnist_study",
        "regularizer", overrides=(f"experiment={STUDY_PROTOCOL}", "dataset=mnist"),
    ),
)  # fmt: skip


def compose(overrides: list[str], hydra: bool = False) -> DictConfig:
    """The `train` config with `overrides` (with the `hydra` node when asked)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from waebench.build import CONFIG_DIR

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return hydra_compose("train", overrides=overrides, return_hydra_config=hydra)
    finally:
        GlobalHydra.instance().clear()


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge(base: list[str], extra: list[str]) -> list[str]:
    """`base` with every override whose key `extra` sets replaced by `extra`'s."""
    replaced = {key_of(o) for o in extra}
    return [o for o in base if key_of(o) not in replaced] + list(extra)


def sweep_grid(sweep: str) -> dict[str, str] | None:
    """The sweep config's grid ({key: "a,b,c"}), None when there is no such sweep config."""
    from hydra.errors import MissingConfigException

    try:
        cfg = compose([f"sweep={sweep}"], hydra=True)
    except MissingConfigException:
        return None
    return {str(k): str(v) for k, v in (cfg.hydra.sweeper.params or {}).items()}


def axes(overrides: list[str]) -> dict[str, list[str]]:
    """{key: its values} of a multirun's overrides as Hydra's basic sweeper reads them: a
    later override of a key replaces an earlier one; a sweep (`a,b`) gives several values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found: dict[str, list[str]] = {}
    for parsed in OverridesParser.create().parse_overrides(overrides):
        key = parsed.get_key_element()
        if parsed.is_sweep_override():
            found[key] = list(parsed.sweep_string_iterator())
        else:
            found[key] = [parsed.get_value_element_as_str()]
    return found


def expand(overrides: list[str]) -> list[list[str]]:
    """The jobs of a multirun of `overrides`, in the basic sweeper's order (the product of
    the axes), each as its list of overrides."""
    grid = axes(overrides)
    keys = list(grid)
    return [
        [f"{k}={v}" for k, v in zip(keys, values, strict=True)]
        for values in itertools.product(*grid.values())
    ]


@dataclass
class Job:
    overrides: list[str]
    dataset: str
    epochs: int  # the protocol's trainer.max_epochs
    milestones: list[int] | None  # its lr milestones (None: no such schedule)
    inception: bool  # its evaluation computes Inception FIDs
    download: bool
    fid: str  # the FIDs' feature space and image count, in words


@dataclass
class TableJobs:
    """One table as it will run: the overrides of its multirun and its composed jobs."""

    table: Table
    overrides: list[str]
    jobs: list[Job] = field(default_factory=list)

    @property
    def datasets(self) -> list[str]:
        return sorted({j.dataset for j in self.jobs})

    @property
    def protocol(self) -> tuple[int, list[int] | None]:
        """(epochs, lr milestones), which all its jobs share."""
        found = {(j.epochs, tuple(j.milestones or ())) for j in self.jobs}
        if len(found) > 1:
            raise StudyError(
                f"table {self.table.name}: its jobs follow protocols of different epochs or lr "
                f"milestones ({sorted(found)}), which one epoch budget cannot scale together: "
                "run it without --minutes"
            )
        return self.jobs[0].epochs, self.jobs[0].milestones

    def epoch_overrides(self, epochs: int) -> list[str]:
        """trainer.max_epochs and the lr milestones at the same fractions of `epochs`."""
        protocol, milestones = self.protocol
        if epochs == protocol:
            return []
        out = [f"trainer.max_epochs={epochs}"]
        if milestones:
            scaled = scaled_milestones(milestones, epochs, protocol)
            out.append(f"model.lr_schedule.milestones=[{','.join(map(str, scaled))}]")
        return out


def scaled_milestones(milestones: list[int], epochs: int, protocol: int) -> list[int]:
    """The lr milestones at the same fractions of `epochs` (30, 50 of 100 -> 4, 7 of 13),
    rounded half up, at least 1."""
    return [max(1, math.floor(m * epochs / protocol + 0.5)) for m in milestones]


def table_jobs(table: Table, models: int | None, seeds: str, extra: list[str]) -> TableJobs | None:
    """The table's multirun overrides and composed jobs, None when its sweep config is not
    there. `models`: its first N rows; `seeds`: the seed sweep; `extra`: the user's overrides."""
    grid = sweep_grid(table.sweep)
    if grid is None:
        return None
    if table.model_key not in grid:
        raise StudyError(
            f"conf/sweep/{table.sweep}.yaml sweeps no `{table.model_key}`, which names the rows "
            f"of table {table.name} (it sweeps {sorted(grid) or 'nothing'})"
        )
    rows = [r.strip() for r in grid[table.model_key].split(",")]
    rows = [r for r in rows if r and r.startswith(table.prefixes)]
    rows = rows[:models] if models else rows
    overrides = [
        f"sweep={table.sweep}", *table.overrides, f"{table.model_key}={','.join(rows)}",
        f"seed={seeds}", *GPU_OPTIONS, *(CONV_OPTIONS if table.conv else ()), *EVAL_OPTIONS,
    ]  # fmt: skip
    overrides = merge(overrides, extra)
    found = TableJobs(table, overrides)
    params = [f"{k}={v}" for k, v in grid.items()]
    data_dir = os.environ.get("WAEBENCH_DATA_DIR") or str(Path.cwd() / "data")
    for job in expand([*params, *overrides]):
        composable = [o for o in job if not key_of(o).startswith("hydra.")]
        cfg = compose(merge([f"paths.data_dir={data_dir}"], composable))
        check(cfg, table)
        milestones = OmegaConf.select(cfg, "model.lr_schedule.milestones", default=None)
        found.jobs.append(
            Job(
                job,
                str(cfg.dataset.name),
                int(cfg.trainer.max_epochs),
                None if milestones is None else [int(m) for m in milestones],
                cfg.eval.enabled is True and cfg.eval.inception.enabled is True,
                bool(cfg.dataset.get("download", False)),
                fid_words(cfg.eval),
            )  # fmt: skip
        )
    return found


def fid_words(evaluation: DictConfig) -> str:
    if evaluation.enabled is not True:
        return "no evaluation"
    if evaluation.inception.enabled is True:
        return f"Inception, {evaluation.inception.num_samples:,} images"
    if evaluation.classifier.enabled in (True, "auto"):
        return (
            f"a classifier's features (no Inception), {evaluation.classifier.num_samples:,} images"
        )
    return "no FID"


def check(cfg: DictConfig, table: Table) -> None:
    """waebench-train's own checks of a config (values, targets), before anything runs."""
    from waebench.build import check_buildable
    from waebench.config_check import ConfigValueError, check_config

    try:
        check_buildable(cfg)
        check_config(cfg)
    except ConfigValueError as error:
        raise StudyError(f"table {table.name}: {error}") from None
