"""What the device machine lacks, packed into git-ignored folders that travel with the two
`run` calls of docs/gpu.md (benchmarks/gpu_calls.py), and unpacked there:

    python benchmarks/gpu_bundle.py build        # here: `make gpu-bundle`
    python3 benchmarks/gpu_bundle.py unpack .gpu-bundle/call1   # there, first in each call

`build` writes .gpu-bundle/call1 and .gpu-bundle/call2 (with `manifest.json` in each):

- wheels/ (call 1): the packages the study imports that the device's Python 3.12 lacks
  (WHEELS), at the versions installed here, fetched with `pip download` for CPython 3.12 on
  manylinux x86_64; antlr4-python3-runtime has no wheel on the registry and is built here;
- fashion_mnist/ (call 1) and mnist/ (call 2, when its files are found and fit): the four
  IDX files of each, gzip-compressed (the loader reads them so);
- inception.part1, inception.part2: the FID Inception weights (91 MiB, more than one call
  may carry), each 4-byte word's bytes regrouped into four planes (exponent bytes together:
  zlib then shrinks the file to 77 %) and zlib-compressed, then split so that each call,
  checkout included, stays under the device tool's 64 MiB (gpu_calls.LIMIT). `unpack`
  joins them once both have arrived and checks the sha256 of the result.

`unpack CALL_DIR` installs the wheels into .gpu/site (`pip install --target`, no index),
copies the datasets into .gpu/data/<name>, and assembles .gpu/inception.pth when every part
is there; gpu_check.sh finds all three by itself. Only the standard library is needed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from importlib import metadata
from pathlib import Path

import gpu_calls

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / ".gpu-bundle"
UNPACKED = REPO / ".gpu"
# Imported by training, evaluation, the page or the gpu tests, absent from the device
# (its python3 has torch, lightning, torchvision, torchmetrics, scikit-learn, matplotlib,
# markdown, pyyaml, cloudpickle, joblib, ...). optuna and sqlalchemy: waebench.report and
# waebench.train import the search modules. POT (the tests' reference) is left out: 31 MiB.
WHEELS = (
    "hydra-core", "omegaconf", "antlr4-python3-runtime", "torch-fidelity", "geomloss",
    "submitit", "hydra-submitit-launcher", "optuna", "sqlalchemy", "colorlog",
)  # fmt: skip
BUILT_HERE = {"antlr4-python3-runtime"}  # sdist only on the registry: a py3-none-any wheel
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
IDX_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)  # fmt: skip
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
WORD = 4  # float32


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shuffle_bytes(data: bytes) -> bytes:
    """Byte i of every 4-byte word, for i = 0..3, one plane after the other (zero-padded)."""
    data += b"\0" * (-len(data) % WORD)
    return b"".join(data[i::WORD] for i in range(WORD))


def unshuffle_bytes(planes: bytes, size: int) -> bytes:
    out = bytearray(len(planes))
    plane = len(planes) // WORD
    for i in range(WORD):
        out[i::WORD] = planes[i * plane : (i + 1) * plane]
    return bytes(out[:size])


# ---- build (here) ------------------------------------------------------------------------


def pinned(name: str) -> str:
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        raise SystemExit(
            f"gpu_bundle: {name} is not installed here: `make install` first"
        ) from None


def fetch_wheels(folder: Path) -> list[Path]:
    """The WHEELS at this environment's versions, for CPython 3.12 on manylinux x86_64."""
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    binary = [pinned(n) for n in WHEELS if n not in BUILT_HERE]
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run(
        [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
         "--implementation", "cp", *platforms, "-d", str(folder), *binary],
        check=True,
    )  # fmt: skip
    built = [pinned(n) for n in sorted(BUILT_HERE)]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), *built], check=True)
    wheels = sorted(folder.glob("*.whl"))
    names = [w.name.split("-")[0].lower().replace("_", "-") for w in wheels]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise SystemExit(f"gpu_bundle: two versions of {doubles} in {folder}: empty it")
    return wheels


def find_idx_files(folder: Path | None) -> dict[str, Path] | None:
    """The four IDX files in `folder` (each .gz or not), or None."""
    if folder is None:
        return None
    found = {}
    for name in IDX_FILES:
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                found[name] = candidate
                break
    return found if len(found) == len(IDX_FILES) else None


def copy_gzipped(files: dict[str, Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        target = folder / f"{name}.gz"
        if source.suffix == ".gz":
            shutil.copyfile(source, target)
        else:
            with open(source, "rb") as raw, gzip.open(target, "wb", compresslevel=6) as out:
                shutil.copyfileobj(raw, out)


def packed_weights(weights: Path, cache: Path) -> tuple[Path, str]:
    """The shuffled, zlib-compressed weights (cached by the source's sha256), and that sha."""
    digest = sha256(weights)
    packed = cache / f"inception-{digest[:16]}.shuffled.zlib"
    if not packed.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = packed.with_suffix(".tmp")
        tmp.write_bytes(zlib.compress(shuffle_bytes(weights.read_bytes()), 6))
        tmp.replace(packed)
    return packed, digest


def split_point(weights: int, call1: int, call2: int, room: int) -> int | None:
    """Bytes of the weights for call 1 so that both calls carry about as much (each keeps
    the same room for a growing checkout), or None when the two cannot hold it all."""
    if call1 + call2 + weights > 2 * room:
        return None
    return min(max(0, (call2 + weights - call1) // 2), weights)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build(args) -> None:
    weights = args.weights or os.environ.get("WAEBENCH_INCEPTION_WEIGHTS")
    if not weights or not Path(weights).is_file():
        raise SystemExit(
            "gpu_bundle: the FID Inception weights are needed: --weights FILE or "
            "WAEBENCH_INCEPTION_WEIGHTS=FILE (weights-inception-2015-12-05-converted.pth)"
        )
    fashion = find_idx_files(args.fashion_mnist)
    if fashion is None:
        raise SystemExit(f"gpu_bundle: no Fashion-MNIST IDX files in {args.fashion_mnist}")
    mnist = find_idx_files(args.mnist)
    call1, call2 = args.bundle / "call1", args.bundle / "call2"
    for folder in (call1, call2):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    if args.wheels:
        if args.wheels_from:
            wheels = sorted(args.wheels_from.glob("*.whl"))
            if not wheels:
                raise SystemExit(f"gpu_bundle: no wheels in {args.wheels_from}")
        else:
            wheels = fetch_wheels(args.bundle / "cache" / "wheels")
        (call1 / "wheels").mkdir()
        for wheel in wheels:
            shutil.copyfile(wheel, call1 / "wheels" / wheel.name)
    copy_gzipped(fashion, call1 / "fashion_mnist")
    if mnist:
        copy_gzipped(mnist, call2 / "mnist")
    packed, digest = packed_weights(Path(weights), args.bundle / "cache")
    blob = packed.read_bytes()
    # Each call carries at most `room` beside the checkout (the manifest: 4 KiB).
    checkout = gpu_calls.checkout_size(REPO)
    room = int(gpu_calls.LIMIT - args.margin_mib * gpu_calls.MIB) - checkout - 4096
    first = split_point(len(blob), folder_size(call1), folder_size(call2), room)
    if first is None and mnist:
        shutil.rmtree(call2 / "mnist")
        print("gpu_bundle: MNIST left out: the two calls would pass 64 MiB", file=sys.stderr)
        first = split_point(len(blob), folder_size(call1), folder_size(call2), room)
    if first is None:
        raise SystemExit(
            f"gpu_bundle: the weights do not fit in two calls beside a "
            f"{checkout / gpu_calls.MIB:.1f} MiB checkout: shrink the checkout or split in three"
        )
    (call1 / "inception.part1").write_bytes(blob[:first])
    (call2 / "inception.part2").write_bytes(blob[first:])
    manifest = {
        "weights": {
            "file": "inception.pth", "sha256": digest, "size": Path(weights).stat().st_size,
            "encoding": "bytes of each 4-byte word in 4 planes, zlib",
            "parts": [
                {"file": "inception.part1", "sha256": sha256(call1 / "inception.part1")},
                {"file": "inception.part2", "sha256": sha256(call2 / "inception.part2")},
            ],
        },
        "datasets": ["fashion_mnist", *(["mnist"] if (call2 / "mnist").is_dir() else [])],
        "wheels": sorted(p.name for p in (call1 / "wheels").glob("*.whl")),
    }  # fmt: skip
    for folder in (call1, call2):
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for folder in (call1, call2):
        print(
            f"{folder.relative_to(args.bundle.parent)}: {folder_size(folder) / gpu_calls.MIB:.1f} MiB"
        )


# ---- unpack (on the device machine) ---------------------------------------------------


def unpack(call_dir: Path, target: Path = UNPACKED, python: str | None = None) -> int:
    """Install, copy and assemble what `call_dir` brought into `target`; print what is still
    missing. `python` (X.Y): install the wheels for that Python instead of this one."""
    manifest = json.loads((call_dir / "manifest.json").read_text())
    wheels = sorted((call_dir / "wheels").glob("*.whl"))
    if wheels:
        other = [] if python is None else ["--python-version", python, "--implementation", "cp"]
        other += [a for p in PLATFORMS for a in ("--platform", p)] if python else []
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
             "--no-compile", "--no-cache-dir", "--upgrade", "--disable-pip-version-check",
             *other, "--target", str(target / "site"), *map(str, wheels)],
            check=True,
        )  # fmt: skip
        print(f"gpu_bundle: {len(wheels)} wheels installed into {target / 'site'}")
    for name in manifest["datasets"]:
        if (call_dir / name).is_dir():
            shutil.copytree(call_dir / name, target / "data" / name, dirs_exist_ok=True)
            print(f"gpu_bundle: {name} in {target / 'data' / name}")
    weights = manifest["weights"]
    parts = target / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    for part in weights["parts"]:
        if (call_dir / part["file"]).is_file():
            if sha256(call_dir / part["file"]) != part["sha256"]:
                raise SystemExit(f"gpu_bundle: {call_dir / part['file']}: wrong sha256")
            shutil.copyfile(call_dir / part["file"], parts / part["file"])
    missing = [p["file"] for p in weights["parts"] if not (parts / p["file"]).is_file()]
    assembled = target / weights["file"]
    if missing and not assembled.is_file():
        print(f"gpu_bundle: Inception weights incomplete, still missing: {', '.join(missing)}")
    elif weights["parts"] and not missing:
        blob = b"".join((parts / p["file"]).read_bytes() for p in weights["parts"])
        data = unshuffle_bytes(zlib.decompress(blob), weights["size"])
        if hashlib.sha256(data).hexdigest() != weights["sha256"]:
            raise SystemExit("gpu_bundle: the assembled Inception weights have a wrong sha256")
        with tempfile.NamedTemporaryFile(dir=target, delete=False) as tmp:
            tmp.write(data)
        Path(tmp.name).replace(assembled)
        shutil.rmtree(parts)
        print(f"gpu_bundle: Inception weights in {assembled} (sha256 checked)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", help="fill .gpu-bundle/ (here)")
    make.add_argument("--bundle", type=Path, default=BUNDLE)
    make.add_argument("--weights", help="default: $WAEBENCH_INCEPTION_WEIGHTS")
    env_fashion = os.environ.get("WAEBENCH_FASHION_MNIST_DIR")
    local = REPO / "data" / "fashion_mnist"
    make.add_argument(
        "--fashion-mnist", type=Path,
        default=Path(env_fashion) if env_fashion else (local if local.is_dir() else DEBIAN_FASHION_MNIST),
    )  # fmt: skip
    env_mnist = os.environ.get("WAEBENCH_MNIST_DIR")
    make.add_argument("--mnist", type=Path, default=Path(env_mnist or REPO / "data" / "mnist"))
    make.add_argument("--no-wheels", dest="wheels", action="store_false", help="no pip")
    make.add_argument("--wheels-from", type=Path, help="take the wheels from here, no pip")
    make.add_argument("--margin-mib", type=float, default=1.0, help="kept free in each call")
    take = sub.add_parser("unpack", help="install what a call brought (on the device)")
    take.add_argument("call_dir", type=Path)
    take.add_argument("--into", type=Path, default=UNPACKED)
    take.add_argument("--python", help="X.Y: install the wheels for that Python (tests)")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args)
        return 0
    return unpack(args.call_dir, args.into, args.python)


if __name__ == "__main__":
    sys.exit(main())
