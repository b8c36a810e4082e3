"""waebench as a user installs and extends it (docs/extending.md).

The slow test builds the wheel from the checkout's files, installs it into a fresh venv
outside the checkout and runs the worked example of docs/extending.md (the files and the
command are read from that page) from a user's project folder: a 2-job multirun comparing
the page's regularizer with WAE-MMD, then the report and the page. The fast tests check the
page's regularizer and networks in-process, and the errors for bad user configs.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import CONFIG_DIR, REPO, TINY, compose_train_config
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import waebench
from waebench import Codes, GaussianPrior
from waebench.config_check import ConfigValueError
from waebench.report import main as report_main
from waebench.train import summary, train

DOC = REPO / "docs" / "extending.md"
BLOCK = re.compile(r'^```\w+ title="([^"]+)"\n(.*?)^```$', re.S | re.M)


def doc_files() -> dict[str, str]:
    """The files of the page's example: its code blocks titled with their path."""
    return {m[1]: m[2] for m in BLOCK.finditer(DOC.read_text())}


def doc_command(start: str) -> list[str]:
    """The arguments of the page's command line that starts with `start`."""
    lines = [line for line in DOC.read_text().splitlines() if line.startswith(start)]
    assert lines, f"{DOC} has no command line starting with {start!r}"
    return shlex.split(lines[0], comments=True)[1:]


def write_project(folder: Path) -> Path:
    """The user's project folder of the page's example, files as the page has them."""
    for name, text in doc_files().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The example's project folder, importable, its conf/ on WAEBENCH_CONFIG_PATH."""
    folder = write_project(tmp_path / "my_project")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("WAEBENCH_CONFIG_PATH", str(folder / "conf"))
    yield folder
    for name in ("my_regularizers", "my_networks"):
        sys.modules.pop(name, None)
    GlobalHydra.instance().clear()


# ---- the page's example, in-process ----------------------------------------------------------


def test_the_page_lists_the_files_of_its_example():
    assert set(doc_files()) == {
        "my_regularizers.py", "conf/regularizer/energy.yaml", "my_networks.py", "conf/model/my_mlp.yaml",
    }  # fmt: skip


def test_the_example_penalty_is_zero_at_the_prior_and_pulls_codes_toward_it(project):
    penalty = importlib.import_module("my_regularizers").EnergyDistancePenalty(weight=10.0)
    prior = GaussianPrior(8, 1.0)
    torch.manual_seed(0)
    values = []
    for _ in range(400):
        z = prior.sample(100)
        values.append(penalty(Codes(z=z, mean=z), prior))
    values = torch.stack(values)
    assert values.mean().abs() < 4 * values.std() / len(values) ** 0.5

    z = (torch.randn(100, 8) * 0.3 + 2.0).requires_grad_()
    optimizer = torch.optim.Adam([z], lr=0.05)
    start = penalty(Codes(z=z, mean=z), prior).item()
    for _ in range(200):
        loss = penalty(Codes(z=z, mean=z), prior)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert start > 1.0 and loss.item() < 0.1
    assert z.mean().abs() < 0.2 and 0.7 < z.std() < 1.3


def test_the_example_networks_train_and_one_run_is_reported(project, tmp_path, capsys):
    cfg = compose_train_config(tmp_path / "run", [*TINY, "model=my_mlp", "regularizer=energy"])
    assert cfg.model.encoder._target_ == "my_networks.MLPEncoder"
    metrics = train(cfg)
    assert metrics["status"] == "completed" and metrics["waebench_version"] == waebench.__version__
    text = summary(metrics)
    assert text.startswith(f"Run completed: {tmp_path / 'run'}")
    assert "test  loss" in text and "record:" in text

    model = waebench.load_model(tmp_path / "run")
    assert type(model.encoder).__name__ == "MLPEncoder"
    report_main([str(tmp_path / "run"), "--out", str(tmp_path / "report")])  # one run folder
    text = (tmp_path / "report" / "report.md").read_text()  # λ 10, its evaluation pending
    assert "| WAE-Energy | 1/1: seed 0 evaluation pending | 10 |" in text


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["regularizer=energy", "regularizer._target_=my_regularizer.EnergyDistancePenalty"],
         "regularizer._target_=my_regularizer.EnergyDistancePenalty (set on the command line) does "
         "not import: no module named 'my_regularizer' on the Python path. Fix: make its module "
         "importable where waebench-train runs: put the folder that holds it on PYTHONPATH"),
        (["regularizer=energy", "regularizer._target_=my_regularizers.Energy"],
         "'my_regularizers' has no 'Energy'. Fix: correct the name"),
        (["model=my_mlp", "model.decoder._target_=my_networks.MLPDecoderr"],
         "model.decoder._target_=my_networks.MLPDecoderr (set on the command line) does not import"),
        (["regularizer=energy", "regularizer._target_=torch.nn.Identity"],
         "regularizer._target_=torch.nn.Identity (set on the command line) is not a subclass of "
         "waebench.LatentRegularizer. Fix: derive it from waebench.LatentRegularizer"),
        (["dataset=image_folder"],
         f"dataset.root is required (??? in {CONFIG_DIR / 'dataset' / 'image_folder.yaml'}). "
         "Fix: give it, dataset.root=<value>."),
    ],
)  # fmt: skip
def test_a_bad_user_config_is_refused_before_anything_is_written(
    project, tmp_path, overrides, expected
):
    cfg = compose_train_config(tmp_path / "run", [*TINY, *overrides])
    with pytest.raises(ConfigValueError, match="the config cannot be built") as error:
        train(cfg)
    assert expected in str(error.value)
    assert not (tmp_path / "run").exists()


def test_a_bad_target_in_a_user_file_names_that_file(project, tmp_path):
    energy = project / "conf" / "regularizer" / "energy.yaml"
    energy.write_text(energy.read_text().replace("my_regularizers.", "my_regularizer."))
    cfg = compose_train_config(tmp_path / "run", [*TINY, "regularizer=energy"])
    with pytest.raises(ConfigValueError, match=re.escape(f"(set in {energy}) does not import")):
        train(cfg)


def test_a_missing_config_folder_is_named_and_other_hydra_apps_are_left_alone(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("WAEBENCH_CONFIG_PATH", str(tmp_path / "nope"))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        compose("train")
    assert f"the config folder '{tmp_path / 'nope'}' does not exist" in caplog.text

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "app.yaml").write_text("x: 1\n")
    (tmp_path / "mine" / "regularizer").mkdir(parents=True)
    monkeypatch.setenv("WAEBENCH_CONFIG_PATH", str(tmp_path / "mine"))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(tmp_path / "other"), version_base="1.3"):
        sources = compose("app", return_hydra_config=True).hydra.runtime.config_sources
    GlobalHydra.instance().clear()
    assert "WAEBENCH_CONFIG_PATH" not in {s.provider for s in sources}


def test_import_waebench_is_light_and_says_its_version():
    code = "import sys, waebench; print(waebench.__version__, 'torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == [waebench.__version__, "False"], out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "waebench", "--version"], env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == f"waebench {waebench.__version__}", out.stderr
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert re.search(r"^## (\S+)", changelog, re.M)[1] == waebench.__version__


# ---- the wheel, installed outside the checkout --------------------------------------------

# The page's multirun, made tiny: 3 steps per job, a 20-step FID classifier, few images.
TINY_JOBS = [
    "model.width=4", "dataset.batch_size=16", "trainer.max_epochs=1",
    "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
    "callbacks.image_grids.n_images=16", "eval.inception.enabled=false",
    "eval.classifier.train_steps=20", "eval.classifier.num_samples=200",
    "eval.latent_mmd_codes=200", "eval.figures.enabled=false",
]  # fmt: skip


def checkout_copy(folder: Path) -> Path:
    """The files git knows in the checkout (tracked, and new ones not ignored), symlinks as
    symlinks: what a fresh clone would build from."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source, target = REPO / name, folder / name
        if not source.exists() and not source.is_symlink():  # deleted, not yet committed
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return folder


def expected_wheel_files(checkout: Path) -> set[str]:
    """Every file under src/ (the configs through the src/waebench/conf symlink)."""
    found = set()
    for root, dirs, files in os.walk(checkout / "src", followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.endswith(".egg-info")]
        found |= {(Path(root) / f).relative_to(checkout / "src").as_posix() for f in files}
    return found


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{shlex.join(command)} exited {result.returncode}:\n{output}"
    return output


@pytest.mark.slow
def test_the_wheel_runs_the_worked_example_from_a_user_folder(tmp_path):
    """A fresh venv that sees the dev venv's packages (torch & co., pinned by constraints.txt)
    through a .pth file, but whose waebench, configs, plugins and commands come only from the
    wheel (installing torch into a new venv would cost minutes and 6 GB per run)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout (the wheel is built from git's files)")
    checkout = checkout_copy(tmp_path / "checkout")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "WAEBENCH_"))}
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist"), str(checkout)], tmp_path, clean)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("waebench-*.whl")
    assert wheel.name == f"waebench-{waebench.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if ".dist-info/" not in n}
    assert shipped == expected_wheel_files(checkout), "the wheel misses or adds files of src/"
    assert "waebench/conf/dataset/digits.yaml" in shipped
    assert f"waebench-{waebench.__version__}.dist-info/licenses/LICENSE" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            tmp_path, clean).strip()
    )  # fmt: skip
    dev_site = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (venv_site / "dev-dependencies.pth").write_text("\n".join(sorted(dev_site)) + "\n")
    run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        tmp_path, clean)  # fmt: skip
    run([*pip, "--python", str(python), "check"], tmp_path, clean)

    user = write_project(tmp_path / "my_project")
    env = dict(clean)
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv),
        PYTHONPATH=str(user), WAEBENCH_CONFIG_PATH=str(user / "conf"),
    )  # fmt: skip
    constraints = REPO / "constraints.txt"
    files, versions = run([str(python), "-c", WHERE, str(constraints)], user, env).splitlines()
    files = files.split()
    assert len(files) == 6 and all(f.startswith(f"{venv_site}/") for f in files), files
    assert files[1] == f"{venv_site}/waebench/conf"
    pinned = {line for line in constraints.read_text().splitlines() if "==" in line}
    assert set(versions.split(",")) <= {p for p in pinned if not p.startswith("#")}, versions
    assert {"torch", "torchvision", "lightning", "hydra-core"} <= {
        v.split("==")[0] for v in versions.split(",")
    }
    for command in (["waebench", "--version"], [str(python), "-m", "waebench", "--version"]):
        assert run(command, user, env).strip() == f"waebench {waebench.__version__}"

    no_env = {k: v for k, v in env.items() if k != "WAEBENCH_CONFIG_PATH"}
    for search in (["--config-dir", "conf"], ["hydra.searchpath=[file://conf]"]):
        shown = run(["waebench-train", *search, "regularizer=energy", "--cfg", "job"], user, no_env)
        assert "_target_: my_regularizers.EnergyDistancePenalty" in shown

    train_args = doc_command("waebench-train -m regularizer=energy,mmd")
    run(["waebench-train", *train_args, *TINY_JOBS], user, env, timeout=900)
    sweep = user / "outputs" / "energy_vs_mmd"
    jobs = sorted(p.name for p in sweep.glob("*/metrics.json"))
    assert len(jobs) == 2, sorted(sweep.iterdir())
    assert (user / "data" / "cache" / "classifiers").is_dir()  # data/ of the calling folder

    report = run(["waebench-report", *doc_command("waebench-report outputs/energy_vs_mmd")],
                 user, env)  # fmt: skip
    fid = report.split("### FID")[1].split("\n### ")[0]
    rows = [line for line in fid.splitlines() if line.startswith("| WAE-")]
    assert [r.split(" |")[0].removesuffix(" ⚠") for r in rows] == ["| WAE-Energy", "| WAE-MMD"]
    assert all(r.count(" | ") == 2 and "—" not in r for r in rows), rows  # REC and N each
    page_args = doc_command("waebench-report --page outputs/energy_vs_mmd")
    small = ["--images", "8", "--pairs", "2", "--points", "200", "--no-tsne"]
    run(["waebench-report", *page_args, *small], user, env)
    page = (sweep / "page" / "README.md").read_text()
    assert page.startswith("# digits: 2 models side by side")
    assert f"- waebench: {waebench.__version__}" in page


# In the venv: where waebench, its configs and its Hydra plugins come from (one line), then
# the versions of the installed packages that constraints.txt (argv[1]) pins (the next).
WHERE = """
import importlib.metadata as md, sys
import waebench, waebench.build
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra.plugins.sweeper import Sweeper
kinds = (Launcher, Sweeper, SearchPathPlugin)
plugins = [p for kind in kinds for p in Plugins.instance().discover(kind)]
ours = sorted({sys.modules[p.__module__].__file__ for p in plugins if "waebench" in p.__module__})
print(waebench.__file__, waebench.build.CONFIG_DIR, *ours)
pins = [line.split("==")[0] for line in open(sys.argv[1]) if "==" in line and line[0] != "#"]
installed = {d.metadata["Name"].lower() for d in md.distributions()}
print(",".join(f"{name}=={md.version(name)}" for name in pins if name in installed))
""".strip()
