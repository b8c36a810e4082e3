"""`dataset.download=true`: torchvision's own downloader, pointed at a real HTTP server on
127.0.0.1 that serves the real files, writes MNIST / Fashion-MNIST into the folder waebench
reads; a download cut short or corrupt ends before training with a clear error, leaves no file
that a later run would take for the dataset, and the next try succeeds."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest
from conftest import REAL_DATASETS, real_dataset

from waebench.data import DatasetNotFoundError, ImageDataModule, idx
from waebench.data.download import DOWNLOADERS
from waebench.data.errors import DownloadError
from waebench.run.record import read_metrics
from waebench.train import train

# Tiny training on the real data: a few test batches, not the 10,000 test images.
DOWNLOAD = ["dataset.download=true", "+trainer.limit_test_batches=2"]
DAMAGES = {}  # served file name -> "truncate" | "corrupt": how the server spoils it


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; a file named in DAMAGES is sent cut off half-way (its Content-Length
    announces the whole file, as when a connection drops) or with bytes flipped."""

    def copyfile(self, source, outputfile) -> None:
        damage = DAMAGES.get(Path(self.path).name)
        data = source.read()
        if damage == "truncate":
            data = data[: len(data) // 2]
        elif damage == "corrupt":  # 64 bytes flipped in the middle
            middle = len(data) // 2
            flipped = bytes(b ^ 0xFF for b in data[middle : middle + 64])
            data = data[:middle] + flipped + data[middle + 64 :]
        # torchvision's redirect probe reads the headers only and hangs up
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            outputfile.write(data)

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """{name: (folder, url)}: an HTTP server on 127.0.0.1 serving each real dataset's four
    .gz files, as torchvision's mirrors do."""
    folder = tmp_path_factory.mktemp("mirror")
    sources = {}
    for param in REAL_DATASETS:
        name = param.values[0]
        try:
            sources[name] = idx.locate(name, idx.search_roots(name, None))
        except DatasetNotFoundError:
            continue
        (folder / name).mkdir()
        for stem in idx.STEMS:
            found = idx.find(sources[name], stem)
            data = found.read_bytes()
            if found.suffix != ".gz":
                data = gzip.compress(data, compresslevel=1, mtime=0)
            (folder / name / f"{stem}.gz").write_bytes(data)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {
        name: (folder / name, f"http://127.0.0.1:{server.server_port}/{name}/") for name in sources
    }
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def mirror(served, monkeypatch):
    """mirror(name) -> the served folder, with torchvision's downloader pointed at it: its
    mirror list, and its expected .gz md5s set to the served bytes. Those differ from the
    originals' .gz (our gzip of the npm package's files; Debian's recompressed Fashion-MNIST);
    the decompressed files are the originals, which waebench checks itself."""
    DAMAGES.clear()

    def point(name: str) -> Path:
        folder, url = served[name]
        downloader = DOWNLOADERS[name]
        resources = [
            (f"{stem}.gz", hashlib.md5((folder / f"{stem}.gz").read_bytes()).hexdigest())
            for stem in idx.STEMS
        ]
        monkeypatch.setattr(downloader, "mirrors", [url])
        monkeypatch.setattr(downloader, "resources", resources)
        return folder

    yield point
    DAMAGES.clear()


def assert_nothing_taken_for_the_dataset(name: str, root: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="were not found"):
        idx.locate(name, [root])
    assert not list(root.iterdir()), "no file, no temporary folder is left behind"


@pytest.mark.parametrize("name", REAL_DATASETS)
def test_a_clean_download_trains(train_config, mirror, monkeypatch, tmp_path, name):
    mirror(name)
    monkeypatch.delenv(idx.ENV_DIRS[name], raising=False)
    monkeypatch.setattr(idx, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    cfg = train_config(f"dataset={name}", *DOWNLOAD, data_dir=tmp_path / "data")
    metrics = train(cfg)
    assert metrics["status"] == "completed" and metrics["global_step"] == 3
    root = tmp_path / "data" / name
    assert sorted(p.name for p in root.iterdir()) == sorted(idx.STEMS)
    for stem in idx.STEMS:
        assert hashlib.md5((root / stem).read_bytes()).hexdigest() == idx.ORIGINAL_MD5[name][stem]


@pytest.mark.parametrize("name", [real_dataset("mnist")])
@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("truncate", "File not found or corrupted"),  # torchvision's md5 check of the .gz
        ("corrupt", "File not found or corrupted"),
    ],
)
def test_a_failed_download_stops_before_training_and_the_next_try_succeeds(
    train_config, mirror, monkeypatch, tmp_path, name, damage, expected
):
    mirror(name)
    monkeypatch.delenv(idx.ENV_DIRS[name], raising=False)
    DAMAGES["t10k-images-idx3-ubyte.gz"] = damage
    cfg = train_config(f"dataset={name}", *DOWNLOAD, data_dir=tmp_path / "data")
    with pytest.raises(DownloadError) as error:
        train(cfg)
    message = str(error.value)
    url = DOWNLOADERS[name].mirrors[0]
    for part in (expected, "t10k-images-idx3-ubyte.gz", url, "run again to retry", "Nothing"):
        assert part in message
    record = read_metrics(Path(cfg.paths.output_dir))
    assert record["status"] == "failed" and record["global_step"] == 0, "before training"
    assert "DownloadError" in record["error"]
    assert_nothing_taken_for_the_dataset(name, tmp_path / "data" / name)

    DAMAGES.clear()  # the server is fixed: the same command runs the same run folder
    metrics = train(cfg)
    assert metrics["status"] == "completed" and metrics["global_step"] == 3


@pytest.mark.parametrize("name", [real_dataset("mnist")])
def test_a_wrong_file_that_passes_torchvisions_check_is_refused(
    mirror, monkeypatch, tmp_path, name
):
    """A mirror whose file and md5 agree, but the file is not the original (one label
    changed): waebench's checksums of the decompressed files catch it."""
    folder = mirror(name)
    monkeypatch.delenv(idx.ENV_DIRS[name], raising=False)
    original = (folder / "train-labels-idx1-ubyte.gz").read_bytes()
    labels = bytearray(gzip.decompress(original))
    labels[100] = (labels[100] + 1) % 10
    try:
        (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
        mirror(name)  # torchvision expects the md5 of the wrong file now
        root = tmp_path / "data" / name
        dm = ImageDataModule(name, 28, 1, root=str(root), download=True)
        with pytest.raises(DownloadError, match="passed torchvision's check but is not the"):
            dm.prepare_data()
        assert_nothing_taken_for_the_dataset(name, root)
    finally:
        (folder / "train-labels-idx1-ubyte.gz").write_bytes(original)


@pytest.mark.parametrize("name", [real_dataset("mnist")])
def test_files_already_there_are_kept(mirror, monkeypatch, tmp_path, name):
    mirror(name)
    monkeypatch.delenv(idx.ENV_DIRS[name], raising=False)
    root = tmp_path / "data" / name
    root.mkdir(parents=True)
    mine = root / "train-labels-idx1-ubyte.gz"
    served = mirror(name) / "train-labels-idx1-ubyte.gz"
    mine.write_bytes(gzip.compress(gzip.decompress(served.read_bytes()), mtime=0))
    before = mine.stat()
    dm = ImageDataModule(name, 28, 1, root=str(root), download=True)
    dm.setup()
    assert mine.stat().st_mtime_ns == before.st_mtime_ns and mine.stat().st_ino == before.st_ino
    assert not (root / "train-labels-idx1-ubyte").exists(), "only the missing files are added"
    assert len(dm.splits["test"][0]) == 10_000


def test_download_is_refused_where_it_cannot_work(tmp_path):
    with pytest.raises(ValueError, match="celeba's are placed by hand"):
        ImageDataModule("celeba", 64, 3, root=str(tmp_path), download=True)
    with pytest.raises(ValueError, match="dataset.download must be true or false, got 'yes'"):
        ImageDataModule("mnist", 28, 1, root=str(tmp_path), download="yes")
    with pytest.raises(ValueError, match="into dataset.root"):
        ImageDataModule("mnist", 28, 1, root=None, download=True)
