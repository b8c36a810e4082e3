"""`waebench-report --page` and `--index`, through the documented commands (`make publish`,
`make publish-index`), on one set of tiny real runs: the study's sweep (`sweep=mnist_study`,
its 14 models) on the real MNIST shrunk to width-4 networks and a few batches, with a second
seed of two models (one of them then marked diverged). The page is opened in a real
headless Chromium that must load every image, show every table row and fit a 1,400-pixel
window; its LaTeX goes through pdflatex. Plus the refusal to mix runs that are not
comparable, and the notes file's rules."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REAL_DATA_HINTS, REPO
from omegaconf import OmegaConf
from PIL import Image

from waebench.data import DatasetNotFoundError, idx
from waebench.evaluation.definitions import definition_of
from waebench.report import main
from waebench.reporting.comparability import MixedRunsError, check_comparable
from waebench.reporting.comparison import pick_pairs
from waebench.reporting.layout import metric_tables
from waebench.reporting.notes import NotesError, load_notes
from waebench.reporting.page import keep_protocols_numbers, protocol_of, scale_line
from waebench.reporting.runs import find_runs
from waebench.reporting.table import build_tables

BIN = Path(sys.executable).parent
VENV = Path(sys.executable).parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
PDFLATEX = shutil.which("pdflatex")
# Without the background-networking flags, Chromium keeps dialling out of a closed network.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)  # fmt: skip
# The study's sweep, shrunk: its 14 models on 1,000 training images (the rest held out),
# a few steps of width-4 networks, a small FID, a short two-stage fit.
TINY_STUDY = [
    "sweep=mnist_study", "model.width=4", "dataset.batch_size=16", "dataset.val_size=59000",
    "trainer.max_epochs=1", "trainer.limit_train_batches=4", "trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1", "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
    "eval.classifier.num_samples=200", "eval.classifier.num_real=500",
    "eval.classifier.train_steps=30", "eval.latent_mmd_codes=200",
    "eval.sampler.two_stage.steps=50", "eval.batch_size=1000",
]  # fmt: skip
PAGE_ARGS = "--images 6 --pairs 2 --points 300 --no-tsne"
MODELS = (
    "AE", "VAE", "WAE-MMD", "WAE-GAN", "WAE-SW", "WAE-Sinkhorn", "WAE-W2", "W-VAE", "RAE",
    "RAE-L2", "RAE-GP", "RAE-SN", "CV-VAE",
)  # fmt: skip


def mnist_or_skip() -> None:
    try:
        idx.locate("mnist", idx.search_roots("mnist", None))
    except DatasetNotFoundError:
        pytest.skip(f"real mnist not found: {REAL_DATA_HINTS['mnist']}")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """The tiny study's sweep folder: 14 models with seed 0, VAE and WAE-MMD with seed 1
    too; the VAE's seed 1 then marked diverged, as train() records a divergence."""
    mnist_or_skip()
    root = tmp_path_factory.mktemp("study")
    env = {**os.environ, "WANDB_MODE": "offline"}
    where = [f"paths.log_dir={root}", f"paths.data_dir={root / 'data'}",
             f"hydra.sweep.dir={root / 'sweep'}"]  # fmt: skip
    for extra in ([], ["regularizer=kl,mmd", "seed=1"]):
        command = [str(BIN / "waebench-train"), "-m", *TINY_STUDY, *extra, *where]
        subprocess.run(command, check=True, env=env, capture_output=True)
    vae_seed1 = next(
        r.run_dir for r in find_runs([root / "sweep"]) if (r.model, r.seed) == ("VAE", 1)
    )
    metrics = json.loads((vae_seed1 / "metrics.json").read_text())
    metrics.update(status="diverged", error="training diverged at step 3 (epoch 0): nan")
    (vae_seed1 / "metrics.json").write_text(json.dumps(metrics))
    return root / "sweep"


def make(target: str, **variables: str) -> None:
    """`make <target>` of the repository's Makefile, with this venv's tools."""
    assignments = [f"{k}={v}" for k, v in {"VENV": str(VENV), **variables}.items()]
    done = subprocess.run(["make", "-C", str(REPO), target, *assignments],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def results(study, tmp_path_factory) -> Path:
    """A results folder made by the documented commands, from the tiny study and the
    published notes: `make publish DATASET=mnist`, then `make publish-index`."""
    out = tmp_path_factory.mktemp("results")
    (out / "mnist").mkdir()
    shutil.copy(REPO / "docs" / "results" / "mnist" / "notes.yaml", out / "mnist")
    shutil.copy(REPO / "docs" / "results" / "notes.md", out)
    make("publish", DATASET="mnist", STUDY_DIR=str(study), RESULTS_DIR=str(out),
         PAGE_ARGS=PAGE_ARGS)  # fmt: skip
    make("publish-index", INDEX_STUDIES=str(study), RESULTS_DIR=str(out))
    return out


@pytest.mark.slow
def test_the_page_of_a_study_has_every_model_table_figure_and_number(study, results):
    page = results / "mnist"
    text = (page / "README.md").read_text()
    assert text.startswith("# MNIST: 14 models side by side")
    scale = text.split("\n")[2]
    assert scale.startswith("**Scale:** 16 runs; DCGAN-like networks of width 4, d_z 8; 1 epochs")
    assert "2 seeds (0, 1)" in scale and "`classifier-mnist`" in scale and "GPU job" in scale
    tables = {t.split("\n")[0]: t for t in text.split("\n## ")[1:]}
    rows = {
        "FID": 14,
        "Codes and reconstructions": 14,
        "Published: Ghosh et al. 2020, Table 1": 9,
        "Published: gmum/cwae-pytorch README (Knop et al. 2020)": 3,  # real: train + test
    }
    for title, count in rows.items():
        body = [line for line in tables[title].splitlines() if line.startswith("| ")][1:]
        models = [line.split(" | ")[0].removeprefix("| ") for line in body]
        assert len(models) == count, title
    fid_table = tables["FID"]
    assert "| model | runs | REC | N | GMM | 2-stage | Interp |" in fid_table
    # 4 batches of training: every model is flagged collapsed (⚠) beside its name
    assert "| VAE ⚠ | 1/2: seed 1 diverged |" in fid_table
    assert "° A model without that metric: FID of decoded codes of a Gaussian fitted" in fid_table
    (ae,) = [line for line in fid_table.splitlines() if line.startswith("| AE ⚠ |")]
    assert ae.split(" | ")[3].endswith("°")  # N: the Gaussian fitted to the AE's codes
    (w_vae,) = [line for line in fid_table.splitlines() if line.startswith("| W-VAE ⚠ |")]
    assert "†1" in w_vae.split(" | ")[3] and "†1 W-VAE, `fid/samples/prior`: " in fid_table
    runs = find_runs([study])
    mmd = [r.entries["latent_mmd/test"]["value"] for r in runs if r.model == "WAE-MMD"]
    mean, std = sum(mmd) / 2, abs(mmd[0] - mmd[1]) / 2**0.5
    shown = definition_of("latent_mmd/test").format(mean, std)
    assert f"{shown} (n=2)" in tables["Codes and reconstructions"]
    assert "the 3-seed Fashion-MNIST study of 2026-11-23" in text  # the notes' seed spread
    assert "extractor tf-inception (paper) (ours: classifier-mnist)" in tables[
        "Published: Ghosh et al. 2020, Table 1"]  # fmt: skip
    findings = [line for line in tables["Findings"].splitlines() if line[:1].isdigit()]
    assert 1 <= len(findings) <= 5 and all(any(c.isdigit() for c in f[3:]) for f in findings)
    for name in ("reconstructions.png", "interpolation_1.png", "interpolation_2.png",
                 "latent_pca.png", "samples.png", "training_curves.png"):  # fmt: skip
        assert f"]({name})" in text and (page / name).stat().st_size > 1000
    for table in metric_tables(build_tables(runs)[0]):
        assert f"[LaTeX]({table.slug}.tex) · [CSV]({table.slug}.csv)" in text
        assert (page / f"{table.slug}.tex").is_file() and (page / f"{table.slug}.csv").is_file()
    assert "- Command: `make study DATASET=mnist`" in text
    assert "waebench-train " in text and "sweep=mnist_study" in text
    assert "| VAE | 1 | diverged | training diverged at step 3 (epoch 0): nan |" in text


@pytest.mark.slow
def test_the_index_is_made_from_the_same_runs_and_code_with_the_prose_kept(study, results):
    index = (results / "README.md").read_text()
    notes = (REPO / "docs" / "results" / "notes.md").read_text()
    assert "## What changes between the datasets" in index and "Ex-post density" in notes
    assert index.index("# Published results") < index.index("| dataset | page | runs |")
    assert "| MNIST | [mnist/](mnist/README.md) | 14 models × 2 seeds, 15/16 completed |" in index
    samples = index.split("## Samples: FID of generated images")[1].split("\n## ")[0]
    assert "| model | MNIST N | MNIST GMM | MNIST 2-stage |" in samples
    assert len([line for line in samples.splitlines() if line.startswith("| ")]) == 1 + 14
    page = (results / "mnist" / "README.md").read_text()
    (in_index,) = [cells(line) for line in samples.splitlines() if line.startswith("| RAE-GP |")]
    (on_page,) = [cells(line) for line in page.split("## FID")[1].split("\n## ")[0].splitlines()
                  if line.startswith("| RAE-GP ⚠ |")]  # fmt: skip
    assert in_index[1:4] == on_page[3:6]  # N, GMM, 2-stage: the same numbers, marks and all


def cells(line: str) -> list[str]:
    """The cells of a Markdown table's line."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@pytest.mark.slow
@pytest.mark.skipif(
    not PDFLATEX,
    reason="needs pdflatex with booktabs: apt-get install texlive-latex-base "
    "texlive-latex-recommended (.ci/run installs them)",
)
def test_every_table_of_the_page_compiles_in_latex(results, tmp_path):
    tables = sorted((results / "mnist").glob("*.tex"))
    assert len(tables) >= 3
    inputs = "\n".join(f"\\input{{{path}}}\\clearpage" for path in tables)
    (tmp_path / "page.tex").write_text(
        "\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
        f"{inputs}\n\\end{{document}}\n"
    )
    done = subprocess.run(
        [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "page.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.slow
def test_a_model_without_completed_run_keeps_its_rows_saying_why(study, tmp_path):
    copy = tmp_path / "sweep"
    for run in find_runs([study]):
        if run.model in ("AE", "VAE", "WAE-MMD"):
            shutil.copytree(run.run_dir, copy / run.run_dir.name)
    for run_dir in (r.run_dir for r in find_runs([copy]) if r.model == "WAE-MMD"):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        metrics.update(status="failed", error="RuntimeError: out of memory")
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    page = tmp_path / "page"
    main([str(copy), "--page", "--out", str(page), "--images", "2", "--pairs", "1",
          "--points", "50", "--no-tsne"])  # fmt: skip
    text = (page / "README.md").read_text()
    assert "| WAE-MMD | 0/2: seed 0 failed; seed 1 failed |" in text
    assert text.count("RuntimeError: out of memory") >= 2  # failed-runs table, one per seed
    assert "WAE-MMD: no completed run" in text or (page / "samples.png").is_file()


@pytest.mark.slow
@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver; .ci/run installs them)",
)
def test_chromium_shows_every_image_and_row_within_a_1400_pixel_window(results, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    page = results / "mnist"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_window_size(1400, 1000)
        driver.get((page / "index.html").as_uri())
        driver.execute_script("return document.readyState")
        width, inner = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert inner <= 1400 and width <= inner, (width, inner)  # no horizontal scrolling
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) == (page / "README.md").read_text().count("![") == 6
        for image in images:
            loaded = driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", image
            )
            assert loaded, image.get_attribute("src")
            driver.execute_script("arguments[0].scrollIntoView()", image)
            shot = Image.open(io.BytesIO(image.screenshot_as_png)).convert("L")
            low, high = shot.getextrema()
            assert high - low > 100, f"{image.get_attribute('src')} renders blank"
        tables = driver.find_elements(By.TAG_NAME, "table")
        body_rows = [len(t.find_elements(By.CSS_SELECTOR, "tbody tr")) for t in tables]
        # FID and codes (14 models each), RAE's and the CWAE code's published tables (9, 3),
        # failed runs (1), settings that differ (14)
        assert body_rows == [14, 14, 9, 3, 1, 14], body_rows
        height, frame = driver.execute_script(
            "return [document.documentElement.scrollHeight, outerHeight - innerHeight]"
        )
        driver.set_window_size(1400, height + frame)  # the whole page in one screenshot
        driver.save_screenshot(str(tmp_path / "screenshot.png"))
    finally:
        driver.quit()
    assert Image.open(tmp_path / "screenshot.png").size[1] >= height


def write_run(
    folder: Path,
    dataset: str,
    image_size: int,
    fid_num_fake: int,
    latent_codes: bool = True,
    evaluation: dict | None = None,
    seed: int = 0,
) -> Path:
    config = {
        "seed": seed,
        "dataset": {"name": dataset, "image_size": image_size, "channels": 1},
        "regularizer": {"_target_": "waebench.regularizers.MMDPenalty", "weight": 10.0},
        "model": {"latent_dim": 8},
        "eval": evaluation or {"samplers": ["auto"]},
    }
    folder.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    entry = {"value": 1.0, "extractor": "classifier-x", "num_fake": fid_num_fake,
             "num_real": 100, "real": f"{dataset}:test"}  # fmt: skip
    latent = {"value": 0.1, **({"codes": "deterministic"} if latent_codes else {})}
    metrics = {
        "status": "completed",
        "eval": {"fid/samples/prior@classifier-x": entry, "latent_mmd/test": latent},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_runs_of_other_datasets_sizes_or_fid_settings_are_never_mixed(tmp_path):
    write_run(tmp_path / "a", "mnist", 28, 1000)
    write_run(tmp_path / "b", "fashion_mnist", 32, 500)
    with pytest.raises(MixedRunsError) as error:
        check_comparable(find_runs([tmp_path]))
    message = str(error.value)
    for expected in ("dataset.name", "dataset.image_size", "fid/samples/prior@classifier-x"):
        assert expected in message
    assert "'num_fake': 1000" in message and "'num_fake': 500" in message
    with pytest.raises(SystemExit, match="cannot share one page"):
        main([str(tmp_path), "--page", "--out", str(tmp_path / "page")])
    assert not (tmp_path / "page").exists()


def test_a_latent_mmd_of_an_older_evaluation_is_read_as_what_it_scored(tmp_path):
    """A deterministic encoder's older latent MMD (no `codes`) is today's, on its codes."""
    write_run(tmp_path / "new", "mnist", 28, 1000)
    write_run(tmp_path / "old", "mnist", 28, 1000, latent_codes=False, seed=1)
    check_comparable(find_runs([tmp_path]))
    (table,) = build_tables(find_runs([tmp_path]))
    (column,) = [c for c in table.columns if c.metric == "latent_mmd/test"]
    assert table.rows[0].cells[column].n == 2


def test_runs_that_ran_other_samplers_are_not_mixed_and_older_switches_are_read(tmp_path):
    fid = {"reconstructions": True, "interpolations": False}
    new = {"samplers": ["prior", "gmm"], "sampler": {"gmm": {"n_components": 10}}, "fid": fid}
    write_run(tmp_path / "new", "mnist", 28, 1000, evaluation=new)
    older = {"fid": {"prior": True, "gmm": True, "reconstructions": True}, "gmm_components": 10}
    write_run(tmp_path / "old", "mnist", 28, 1000, evaluation=older)
    check_comparable(find_runs([tmp_path]))  # the same samplers, written two ways
    other = {**new, "samplers": ["auto", "gmm"]}
    write_run(tmp_path / "other", "mnist", 28, 1000, evaluation=other)
    with pytest.raises(MixedRunsError, match=r"eval.samplers: \('prior', 'gmm'\) in new, old"):
        check_comparable(find_runs([tmp_path]))


def test_notes_stand_next_to_their_numbers_and_a_wrong_note_names_the_choices(tmp_path):
    write_run(tmp_path / "runs" / "a", "mnist", 28, 1000)
    (table,) = build_tables(find_runs([tmp_path / "runs"]))
    notes_file = tmp_path / "notes.yaml"
    notes_file.write_text(
        "seed_spread: FID 1 to 16\ncells:\n"
        "  - model: WAE-MMD\n    column: fid/samples/prior\n    note: the samples are blank.\n"
        "  - model: WAE-MMD\n    column: eval.latent_mmd/test\n    note: an older spelling.\n"
    )
    notes = load_notes(notes_file, table)
    assert notes.seed_spread == "FID 1 to 16"
    fid_table, codes = metric_tables(table, notes)[:2]
    (cell,) = fid_table.rows[0][1]
    assert (cell.text, cell.marks) == ("1.0", ("†1",))
    assert "†1 WAE-MMD, `fid/samples/prior`: the samples are blank." in fid_table.footnotes
    assert codes.rows[0][1][-1].marks == ("†2",)
    notes_file.write_text("- model: WAE-MMD\n  column: fid/samples/gmm\n  note: x\n")
    with pytest.raises(NotesError, match=r"notes.yaml, entry 1: column 'fid/samples/gmm' is"):
        load_notes(notes_file, table)
    notes_file.write_text("- model: VAE\n  column: fid/samples/prior\n  note: x\n")
    with pytest.raises(NotesError, match=r"model 'VAE' is not on this page; models: \['WAE"):
        load_notes(notes_file, table)
    with pytest.raises(SystemExit, match="notes file .*missing.yaml does not exist"):
        main([str(tmp_path / "runs"), "--page", "--notes", str(tmp_path / "missing.yaml")])


def test_interpolation_pairs_are_fixed_distinct_and_of_two_classes():
    labels = torch.tensor([0] * 50 + [1] * 3)  # few images of the second class
    pairs = pick_pairs(labels, 3, seed=1)
    assert pairs.shape == (3, 2)
    assert torch.equal(pairs, pick_pairs(labels, 3, seed=1))
    assert len(set(pairs.flatten().tolist())) == 6
    assert all(labels[a] != labels[b] for a, b in pairs)
    unlabelled = pick_pairs(torch.full((10,), -1), 5, seed=0)
    assert sorted(unlabelled.flatten().tolist()) == list(range(10))


def test_a_page_of_one_papers_protocol_says_so_and_keeps_that_papers_numbers(tmp_path):
    for name, model in (("cwae", "mnist_cwae"), ("swae", "mnist_swae")):
        folder = write_run(tmp_path / name, "mnist", 28, 1000)
        (folder / ".hydra").mkdir()
        overrides = [f"experiment=cwae_paper/{model}", "seed=0"]
        (folder / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    runs = find_runs([tmp_path])
    (table,) = build_tables(runs)
    assert {v.source for v in table.published} > {"gmum/cwae-pytorch README (Knop et al. 2020)"}
    keep_protocols_numbers(table, runs)
    assert {v.source for v in table.published} == {"gmum/cwae-pytorch README (Knop et al. 2020)"}
    assert "Every run follows the protocol of the CWAE paper" in scale_line(runs, table)
    shortened = ["experiment=cwae_paper/mnist_swae", "trainer.max_epochs=150", "seed=0"]
    (tmp_path / "swae" / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(shortened))
    line = scale_line(find_runs([tmp_path]), table)
    assert "starts from the protocol of the CWAE paper, changed by `trainer.max_epochs=150`" in line
    (tmp_path / "swae" / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    runs = find_runs([tmp_path])
    assert protocol_of(runs) is None and "not with the paper's" in scale_line(runs, table)
