"""The offline bundle: one folder with what a compute node without internet needs to run
waebench (docs/gpu.md, "Compute nodes without internet"):

    waebench-bundle DIR [--python 3.12] [--platform manylinux_2_28_x86_64 ...]

writes

    DIR/
      README.md            how to install from it and point waebench at it
      manifest.json        what it holds: every file's size and sha256, the Python and platforms
      constraints.txt      the pins the wheels were chosen with (the checkout's constraints.txt)
      wheels/              waebench's wheel and every dependency's, for that Python and platform
      data/mnist/          the four IDX files of each dataset, as waebench found them here
      data/fashion_mnist/
      fid/inception-weights.pth   the FID Inception weights (torch-fidelity's inception-v3-compat)

On the node, `export WAEBENCH_BUNDLE=DIR` makes waebench read the datasets and the weights
from it (after dataset.root, $WAEBENCH_MNIST_DIR / $WAEBENCH_FASHION_MNIST_DIR and
$WAEBENCH_INCEPTION_WEIGHTS, which still win), and

    pip install --no-index --find-links DIR/wheels -c DIR/constraints.txt waebench

installs waebench from it. `waebench-bundle --check DIR` verifies every file against the
manifest (after copying the folder). The wheels come from `pip download --only-binary=:all:`
for the named Python and platforms; the few dependencies published as source only
(SOURCE_ONLY) are built into pure-Python wheels here first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

BUNDLE_ENV = "WAEBENCH_BUNDLE"
DATASETS = ("mnist", "fashion_mnist")
WEIGHTS = Path("fid") / "inception-weights.pth"
MANIFEST = "manifest.json"
ENTRIES = {"README.md", MANIFEST, "constraints.txt", "wheels", "data", "fid"}  # a bundle's
# manylinux x86_64, newest first: pip 23 does not widen one manylinux_2_x tag to older ones.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# Dependencies the registry has as source archives only (hydra-core's parser runtime).
SOURCE_ONLY = ("antlr4-python3-runtime",)


# ---- reading a bundle (WAEBENCH_BUNDLE) ---------------------------------------------------


def bundle_dir() -> Path | None:
    """$WAEBENCH_BUNDLE, or None when it is unset."""
    value = os.environ.get(BUNDLE_ENV)
    return Path(value).expanduser() if value else None


def dataset_dir(name: str) -> Path | None:
    """Where the bundle keeps dataset `name` (a root for `waebench.data.idx.locate`)."""
    root = bundle_dir()
    return root / "data" / name if root else None


def inception_weights() -> Path | None:
    """The bundle's Inception weights file, None without a bundle or without weights in it."""
    root = bundle_dir()
    return root / WEIGHTS if root and (root / WEIGHTS).is_file() else None


# ---- writing one -------------------------------------------------------------------------


class BundleError(RuntimeError):
    """The bundle cannot be written or does not match its manifest."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkout() -> Path:
    """The source checkout of this waebench (an editable install: `make install`)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise BundleError(
            f"waebench-bundle builds waebench's wheel from its source checkout, and this "
            f"waebench ({Path(__file__).parent}) is not in one: run it from a checkout's "
            f"editable install (`make install`), or pass --no-wheels"
        )
    return root


def copy_datasets(names: list[str], target: Path) -> dict[str, dict[str, str]]:
    """The four IDX files of each dataset, found where waebench finds them, copied into
    target/data/<name>; {name: {file: the folder it came from}}."""
    from waebench.data import DatasetNotFoundError, idx

    data_dir = Path(os.environ.get("WAEBENCH_DATA_DIR") or Path.cwd() / "data")
    found = {}
    for name in names:
        try:
            folder = idx.locate(name, idx.search_roots(name, data_dir / name))
        except DatasetNotFoundError as error:
            others = [n for n in names if n != name]
            raise BundleError(
                f"{error}\nOr leave {name} out of the bundle: --datasets {','.join(others)}"
                if others
                else str(error)
            ) from None
        into = target / "data" / name
        if into.resolve() == folder.resolve():
            raise BundleError(
                f"{name} is read from the bundle itself ({folder}): unset WAEBENCH_BUNDLE"
            )
        into.mkdir(parents=True, exist_ok=True)
        for stem in idx.STEMS:
            source = idx.find(folder, stem)
            shutil.copyfile(source, into / source.name)
        found[name] = str(folder)
    return found


def copy_weights(target: Path) -> str:
    """The Inception weights waebench uses here (downloaded by torch-fidelity when none is
    found and the network allows), copied to target/WEIGHTS; returns where they came from."""
    from waebench.evaluation.fid import InceptionWeightsError, require_inception_weights

    try:
        source = require_inception_weights()
    except InceptionWeightsError as error:
        raise BundleError(str(error)) from None
    (target / WEIGHTS).parent.mkdir(parents=True, exist_ok=True)
    if source.resolve() != (target / WEIGHTS).resolve():
        shutil.copyfile(source, target / WEIGHTS)
    return str(source)


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise BundleError(
            f"`{' '.join(command)}` failed (exit {done.returncode}):\n"
            + ("\n".join(errors) or done.stderr[-4000:])
        )


def download_wheels(
    wheels: Path, python: str, platforms: list[str], packages: list[str], constraints: Path | None
) -> None:
    """Wheels of `packages` (default: waebench, built here from its checkout) and all their
    dependencies for CPython `python` on `platforms`, into `wheels`."""
    wheels.mkdir(parents=True, exist_ok=True)
    pins = ["-c", str(constraints)] if constraints else []
    if not packages:
        pip("wheel", "-q", "--no-deps", "-w", str(wheels), str(checkout()))
        version = metadata.version("waebench")
        packages = [str(next(wheels.glob(f"waebench-{version}-*.whl")))]
    built_here = []
    for name in SOURCE_ONLY:
        try:
            built_here.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    if built_here:
        pip("wheel", "-q", "--no-deps", "-w", str(wheels), *built_here)
    targets = [a for p in platforms for a in ("--platform", p)]
    pip(
        "download", "-q", "--dest", str(wheels), "--find-links", str(wheels),
        "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
        *targets, *pins, *packages,
    )  # fmt: skip


def files_of(folder: Path, root: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(root)): {"bytes": p.stat().st_size, "sha256": sha256(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


INSTRUCTIONS = """# waebench offline bundle

Written by `{command}` on {date} (waebench {version}).

On the compute node, with this folder copied to DIR:

```bash
python{python} -m venv .venv
.venv/bin/pip install --no-index --find-links DIR/wheels -c DIR/constraints.txt waebench
.venv/bin/waebench-bundle --check DIR   # every file against its sha256 in manifest.json
export WAEBENCH_BUNDLE=DIR              # datasets and FID weights are read from DIR
```

Holds: {holds}.
"""


def write_bundle(
    target: Path,
    python: str,
    platforms: list[str],
    datasets: list[str],
    wheels: bool,
    packages: list[str],
    command: str,
) -> dict:
    """Fill `target` (new, empty, or an earlier bundle: pip keeps the wheels already there)
    and write its manifest last; returns the manifest."""
    strangers = (
        sorted(p.name for p in target.iterdir() if p.name not in ENTRIES) if target.is_dir() else []
    )
    if strangers:
        raise BundleError(
            f"{target} holds other files than a bundle's ({strangers[:3]}): name a new folder"
        )
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST).unlink(missing_ok=True)  # a half-written bundle has none
    sources = {"datasets": copy_datasets(datasets, target), "weights": copy_weights(target)}
    constraints = None
    if wheels:
        pins = checkout() / "constraints.txt"
        if pins.is_file():
            shutil.copyfile(pins, target / "constraints.txt")
            constraints = target / "constraints.txt"
        download_wheels(target / "wheels", python, platforms, packages, constraints)
    if constraints is None:
        (target / "constraints.txt").write_text("# no pins: written with --no-wheels\n")
    from waebench import __version__

    manifest = {
        "waebench_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "python": python,
        "platforms": platforms if wheels else [],
        "datasets": sorted(datasets),
        "sources": sources,
        "wheels": sorted(p.name for p in (target / "wheels").glob("*.whl")),
    }
    holds = ", ".join(
        [*(f"data/{n}" for n in sorted(datasets)), str(WEIGHTS)]
        + [f"{len(manifest['wheels'])} wheels for CPython {python}"] * bool(wheels)
    )
    (target / "README.md").write_text(
        INSTRUCTIONS.format(
            command=command,
            date=manifest["created"],
            version=__version__,
            python=python,
            holds=holds,
        )  # fmt: skip
    )
    manifest["files"] = files_of(target, target)
    from waebench.run.record import write_json

    write_json(target / MANIFEST, manifest)
    return manifest


def check_bundle(target: Path) -> list[str]:
    """What differs between `target` and its manifest (missing, changed or extra files)."""
    path = target / MANIFEST
    if not path.is_file():
        return [f"{path} does not exist: not a bundle, or one whose writing did not finish"]
    listed = json.loads(path.read_text())["files"]
    problems = []
    for name, entry in listed.items():
        file = target / name
        if not file.is_file():
            problems.append(f"{name}: missing")
        elif file.stat().st_size != entry["bytes"] or sha256(file) != entry["sha256"]:
            problems.append(f"{name}: differs from the manifest (a damaged copy)")
    extra = set(files_of(target, target)) - set(listed) - {MANIFEST}
    problems += [f"{name}: not in the manifest" for name in sorted(extra)]
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="waebench-bundle", description=__doc__.split("\n")[0].rstrip(":") + "."
    )
    parser.add_argument("dir", type=Path, help="the bundle folder (new, or an earlier bundle)")
    parser.add_argument(
        "--python",
        default=f"{sys.version_info.major}.{sys.version_info.minor}",
        help="the nodes' Python, X.Y (default: this one's)",
    )
    parser.add_argument(
        "--platform", action="append", help=f"wheel platform tags (default: {' '.join(PLATFORMS)})"
    )
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help="comma-separated (default: both)"
    )
    parser.add_argument("--no-wheels", dest="wheels", action="store_false", help="no pip")
    parser.add_argument(
        "--packages", nargs="+", default=[], help="wheels of these instead of waebench's"
    )
    parser.add_argument("--check", action="store_true", help="verify DIR against its manifest")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_bundle(args.dir)
        for problem in problems:
            print(f"waebench-bundle: {problem}", file=sys.stderr)
        if problems:
            sys.exit(1)
        print(f"{args.dir}: every file matches its manifest")
        return
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        parser.error(f"--datasets: {unknown} unknown; choose from {', '.join(DATASETS)}")
    given = sys.argv[1:] if argv is None else argv
    try:
        manifest = write_bundle(
            args.dir, args.python, args.platform or list(PLATFORMS), datasets, args.wheels,
            args.packages, " ".join(["waebench-bundle", *given]),
        )  # fmt: skip
    except BundleError as error:
        sys.exit(f"waebench-bundle: {error}")
    size = sum(entry["bytes"] for entry in manifest["files"].values())
    print(f"Bundle written to {args.dir} ({size / 2**20:.1f} MiB): see {args.dir / 'README.md'}")


if __name__ == "__main__":
    main()
