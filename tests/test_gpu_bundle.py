"""What travels to the device machine (`benchmarks/gpu_bundle.py`, `benchmarks/gpu_calls.py`):
each call's size against the device tool's 64 MiB with the real checkout, datasets and FID
weights; the other limits of a call; the weights reassembled byte for byte; and, where
`make gpu-bundle` has fetched them, the wheels: the study's imports resolve with the
device's packages plus these wheels alone."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEBIAN_FASHION_MNIST, REPO
from conftest import SHARED_INCEPTION_WEIGHTS as INCEPTION_WEIGHTS

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_bundle  # noqa: E402
import gpu_calls  # noqa: E402

WHEELS = REPO / ".gpu-bundle" / "cache" / "wheels"  # where `make gpu-bundle` keeps them
# The wheels' size when measured (hydra-core 1.3.8, optuna 5.0.0, sqlalchemy 2.1.9, ...:
# 5.7 MiB): the room kept for them when a test builds the bundle without them.
WHEELS_MIB = 6
# Modules the study imports that the device's python3 lacks (the device tool's package list:
# no hydra-core, omegaconf, torch-fidelity, geomloss, optuna, submitit; nor their own needs).
DEVICE_LACKS = (
    "hydra", "omegaconf", "antlr4", "torch_fidelity", "geomloss", "submitit", "optuna",
    "sqlalchemy", "colorlog", "alembic", "wandb", "psycopg", "ot", "selenium",
    "hydra_plugins.hydra_submitit_launcher", "hydra_plugins.hydra_joblib_launcher",
)  # fmt: skip


def test_byte_planes_round_trip():
    data = os.urandom(4 * 1000 + 3)
    planes = gpu_bundle.shuffle_bytes(data)
    assert len(planes) == 4 * 1001 and planes != data + b"\0"
    assert gpu_bundle.unshuffle_bytes(planes, len(data)) == data


def test_the_weights_are_split_so_that_both_calls_carry_about_as_much():
    first = gpu_bundle.split_point(weights=70, call1=35, call2=11, room=60)
    assert first == 23 and 35 + first <= 60 and 11 + 70 - first <= 60
    assert gpu_bundle.split_point(weights=10, call1=50, call2=0, room=60) == 0  # all in call 2
    assert gpu_bundle.split_point(weights=90, call1=35, call2=11, room=60) is None


def test_the_calls_keep_the_device_tools_limits_and_carry_only_ignored_paths():
    for call in gpu_calls.CALLS:
        assert len(call["command"]) <= 2000 and len(call["carry"]) <= 8
        assert 1 <= call["timeout_s"] <= 600
        for path in call["carry"]:
            assert gpu_calls.ignored(REPO, path), path
        _, problems = gpu_calls.check_call(call, REPO, gpu_calls.checkout_size(REPO))
        assert all("make gpu-bundle" in p for p in problems), problems  # absent here at most
    assert gpu_calls.ignored(REPO, ".gpu/site") and gpu_calls.ignored(REPO, ".gpu/work")


def test_docs_give_the_calls_exactly_as_the_script_makes_them():
    docs = (REPO / "docs" / "gpu.md").read_text()
    for call in gpu_calls.CALLS:
        assert json.dumps(call, indent=1) in docs, call["command"]


def test_a_call_over_a_limit_is_refused(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("/.gpu-bundle/\n")
    (tmp_path / "tracked.txt").write_bytes(b"x" * 1000)
    big = tmp_path / ".gpu-bundle" / "call1" / "blob"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as handle:  # sparse: its size counts, not its disk
        handle.truncate(gpu_calls.LIMIT)
    (tmp_path / "not_ignored").mkdir()
    checkout = gpu_calls.checkout_size(tmp_path)
    assert checkout == 1000 + len("/.gpu-bundle/\n")  # the bundle does not travel by itself
    call = {"carry": [".gpu-bundle/call1", "not_ignored"], "timeout_s": 700, "command": "x" * 2001}
    size, problems = gpu_calls.check_call(call, tmp_path, checkout)
    assert size == checkout + gpu_calls.LIMIT
    assert problems == [
        "command of 2001 characters (at most 2000)",
        "timeout_s=700 (1 to 600)",
        "not_ignored is not git-ignored: it would travel with every call",
        f"{size / gpu_calls.MIB:.1f} MiB would travel (at most 64)",
    ]


def idx_content(folder: Path) -> dict[str, bytes]:
    return {p.name.removesuffix(".gz"): gzip.decompress(p.read_bytes()) for p in folder.iterdir()}


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="no real Fashion-MNIST")
@pytest.mark.skipif(not INCEPTION_WEIGHTS.is_file(), reason=f"no {INCEPTION_WEIGHTS}")
def test_the_real_bundle_fits_two_calls_and_unpacks_to_the_same_files(tmp_path):
    bundle, device = tmp_path / "bundle", tmp_path / "device"
    wheels = sorted(WHEELS.glob("*.whl"))
    options = ["--wheels-from", str(WHEELS)] if wheels else ["--no-wheels"]
    margin = 1 if wheels else 1 + WHEELS_MIB
    gpu_bundle.main(["build", "--bundle", str(bundle), "--weights", str(INCEPTION_WEIGHTS),
                     "--fashion-mnist", str(DEBIAN_FASHION_MNIST), "--mnist", str(tmp_path / "none"),
                     "--margin-mib", str(margin), *options])  # fmt: skip
    checkout = gpu_calls.checkout_size(REPO)
    for call in ("call1", "call2"):
        travels = checkout + gpu_calls.path_size(bundle / call) + (0 if wheels else WHEELS_MIB)
        assert travels <= gpu_calls.LIMIT - gpu_calls.MIB, (call, travels / gpu_calls.MIB)
    assert (bundle / "call1" / "inception.part1").stat().st_size > 0
    for call in ("call1", "call2"):
        gpu_bundle.unpack(bundle / call, device, python="3.12")
    assembled = device / "inception.pth"
    assert assembled.read_bytes() == INCEPTION_WEIGHTS.read_bytes()
    assert not (device / "parts").exists()
    source = {
        name: gzip.decompress((DEBIAN_FASHION_MNIST / f"{name}.gz").read_bytes())
        for name in gpu_bundle.IDX_FILES
    }
    assert idx_content(device / "data" / "fashion_mnist") == source


SIMULATED_DEVICE = '''
import importlib.machinery, sys
SITE, LACKS = {site!r}, {lacks!r}

class DeviceLacks:
    """What the device does not have is found in the bundle's site folder or not at all."""

    def find_spec(self, name, path=None, target=None):
        if name not in LACKS:
            return None
        parent = name.rpartition(".")[0].replace(".", "/")
        spec = importlib.machinery.PathFinder.find_spec(name, [f"{{SITE}}/{{parent}}".rstrip("/")])
        if spec is None:
            raise ModuleNotFoundError(f"{{name}}: not on the device, not in the bundle", name=name)
        return spec

sys.meta_path.insert(0, DeviceLacks())
'''

STUDY_IMPORTS = """
import waebench.train, waebench.report, waebench.eval, waebench.launch.gpu_worker
import waebench.regularizers.sinkhorn, waebench.evaluation.fid
from hydra import compose, initialize_config_dir
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
with initialize_config_dir(config_dir=waebench.build.CONFIG_DIR, version_base="1.3"):
    cfg = compose("train", overrides=["sweep=fmnist_study", "launcher=gpus"], return_hydra_config=True)
launchers = {p.__name__ for p in Plugins.instance().discover(Launcher)}
assert "GpusLauncher" in launchers, launchers
import optuna, sqlalchemy, torch_fidelity, geomloss
print("resolved:", optuna.__file__, torch_fidelity.__file__)
"""


@pytest.mark.skipif(not list(WHEELS.glob("*.whl")), reason="no wheels: `make gpu-bundle`")
def test_the_wheels_cover_what_the_study_imports_on_the_device(tmp_path):
    wheels = sorted(WHEELS.glob("*.whl"))
    for wheel in wheels:
        assert wheel.name.endswith("-py3-none-any.whl") or (
            "-cp312-cp312-" in wheel.name and "manylinux" in wheel.name and "x86_64" in wheel.name
        ), wheel.name
    names = {w.name.split("-")[0].lower().replace("_", "-") for w in wheels}
    assert names == set(gpu_bundle.WHEELS)
    call = tmp_path / "call1"
    (call / "wheels").mkdir(parents=True)
    for wheel in wheels:
        (call / "wheels" / wheel.name).symlink_to(wheel)
    manifest = {"datasets": [], "weights": {"file": "inception.pth", "parts": []}}
    (call / "manifest.json").write_text(json.dumps(manifest))
    gpu_bundle.unpack(call, tmp_path / "device", python="3.12")
    site = tmp_path / "device" / "site"
    (tmp_path / "sim").mkdir()
    blocker = SIMULATED_DEVICE.format(site=str(site), lacks=DEVICE_LACKS)
    (tmp_path / "sim" / "sitecustomize.py").write_text(blocker)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'sim'}{os.pathsep}{REPO / 'src'}"}
    done = subprocess.run([sys.executable, "-c", STUDY_IMPORTS], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert str(site) in done.stdout
    blocked = subprocess.run([sys.executable, "-c", "import wandb"], env=env, capture_output=True,
                             text=True)  # fmt: skip
    assert "not on the device, not in the bundle" in blocked.stderr
