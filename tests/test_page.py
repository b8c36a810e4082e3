"""`waebench-report --page`: built from a real multirun (`sweep=fmnist_study`, shrunk to tiny
networks on the bundled digits), opened in a real headless Chromium that must load every
image and show every table row; and its refusal to mix runs that are not comparable."""

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
from omegaconf import OmegaConf
from PIL import Image

from waebench.report import main
from waebench.reporting.comparison import pick_pairs
from waebench.reporting.page import (
    MixedRunsError,
    check_comparable,
    fid_table,
    load_notes,
    note_lines,
    scale_line,
    surprises,
)
from waebench.reporting.runs import find_runs
from waebench.reporting.table import Cell, Column, Row, Table, build_tables

BIN = Path(sys.executable).parent
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# Without the background-networking flags, Chromium keeps dialling out of a closed network.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)  # fmt: skip
# The study's sweep, shrunk: 3 of its models, 2 seeds, a few steps of width-4 networks.
TINY_STUDY = [
    "sweep=fmnist_study", "dataset=digits", "regularizer=none,kl,mmd", "seed=0,1",
    "model.width=4", "dataset.batch_size=16", "trainer.max_epochs=1",
    "trainer.limit_train_batches=4", "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu", "eval.inception.enabled=false",
    "eval.classifier.num_samples=200", "eval.classifier.train_steps=30",
    "eval.latent_mmd_codes=200",
]  # fmt: skip
PAGE = ["--images", "6", "--pairs", "2", "--points", "300"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """The tiny study's sweep folder; seed 1 of the VAE then marked diverged, as train()
    records a divergence, so the page must show a model missing a seed."""
    root = tmp_path_factory.mktemp("study")
    command = [
        str(BIN / "waebench-train"), "-m", *TINY_STUDY, f"paths.log_dir={root}",
        f"paths.data_dir={root / 'data'}", f"hydra.sweep.dir={root / 'sweep'}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline"}
    subprocess.run(command, check=True, env=env, capture_output=True)
    vae_seed1 = next(
        r.run_dir for r in find_runs([root / "sweep"]) if (r.model, r.seed) == ("VAE", 1)
    )
    metrics = json.loads((vae_seed1 / "metrics.json").read_text())
    metrics.update(status="diverged", error="training diverged at step 3 (epoch 0): nan")
    (vae_seed1 / "metrics.json").write_text(json.dumps(metrics))
    return root / "sweep"


@pytest.fixture(scope="module")
def page(study, tmp_path_factory) -> Path:
    """The tiny study's page folder, as `waebench-report --page` writes it."""
    out = tmp_path_factory.mktemp("page")
    main([str(study), "--page", "--out", str(out), *PAGE])
    return out


@pytest.mark.slow
def test_page_of_a_study_has_every_model_figure_and_number(study, page):
    text = (page / "README.md").read_text()
    for model in ("AE", "VAE", "WAE-MMD"):
        assert f"\n| {model} (" in text
    assert "| 1/2 (seed 1 diverged) |" in text
    assert "| 2/2 |" in text
    runs = find_runs([study])
    mmd = [r.metrics["eval"]["latent_mmd/test"]["value"] for r in runs if r.model == "WAE-MMD"]
    assert f"{sum(mmd) / 2:.4g}" in text
    assert "★" in text
    figures = [
        "reconstructions.png", "interpolation_1.png", "interpolation_2.png",
        "latent_pca.png", "latent_tsne.png", "samples.png", "training_curves.png",
    ]  # fmt: skip
    for name in figures:
        assert f"]({name})" in text
        assert (page / name).stat().st_size > 1000
    assert "waebench-train " in text and "sweep=fmnist_study" in text
    # The study's samplers, [auto, gmm, two_stage]: the AE's N column is the Gaussian fitted
    # to its codes; the two-stage VAE is fitted again for the samples figure (under no_grad).
    for title in (
        "| FID samples [",
        "| FID samples (Gaussian fitted to the codes) [",
        "| FID samples (GMM) [",
        "| FID samples (two-stage VAE) [",
        "| FID interpolations [",
    ):
        assert title in text
    ae = next(r for r in runs if r.model == "AE")
    assert not [k for k in ae.metrics["eval"] if k.startswith("fid/samples/prior")]
    assert "regularizer._target_" in text  # a setting that differs between the rows
    scale = text.split("\n")[2]
    assert scale.startswith("**Scale:** 6 runs; DCGAN-like networks of width 4, d_z 8; 1 epochs")
    assert "2 seeds (0, 1)" in scale and "`classifier-digits`" in scale and "GPU job" in scale


@pytest.mark.slow
def test_a_model_without_completed_run_keeps_its_rows_saying_why(study, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(study, copy)
    for run_dir in (r.run_dir for r in find_runs([copy]) if r.model == "WAE-MMD"):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        metrics.update(status="failed", error="RuntimeError: out of memory")
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    main(
        [
            str(copy),
            "--page",
            "--out",
            str(tmp_path / "page"),
            "--images",
            "2",
            "--pairs",
            "1",
            "--points",
            "50",
            "--no-tsne",
        ]
    )
    text = (tmp_path / "page" / "README.md").read_text()
    assert "| 0/2 (seed 0 failed; seed 1 failed) |" in text
    assert text.count("RuntimeError: out of memory") >= 2  # failed-runs table, one per seed


@pytest.mark.slow
@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver; .ci/run installs them)",
)
def test_chromium_loads_every_image_and_table_row(page, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get((page / "index.html").as_uri())
        driver.execute_script("return document.readyState")
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) == (page / "README.md").read_text().count("![") == 7
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
        # losses, FID (3 models each), failed runs (1), settings that differ (>= 1)
        assert body_rows[:3] == [3, 3, 1] and body_rows[3] >= 1, body_rows
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
) -> Path:
    config = {
        "seed": 0,
        "dataset": {"name": dataset, "image_size": image_size, "channels": 1},
        "regularizer": {"_target_": "waebench.regularizers.MMDPenalty", "weight": 10.0},
        "model": {"latent_dim": 8},
        "eval": evaluation or {"samplers": ["auto"]},
    }
    folder.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    entry = {"value": 1.0, "extractor": "classifier-x", "num_fake": fid_num_fake,
             "num_real": 100, "real": f"{dataset}:test"}  # fmt: skip
    latent = {"value": 0.1, **({"codes": "sampled"} if latent_codes else {})}
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


def test_a_latent_mmd_of_an_older_evaluation_is_not_mixed_with_new_ones(tmp_path):
    write_run(tmp_path / "new", "mnist", 28, 1000)
    write_run(tmp_path / "old", "mnist", 28, 1000, latent_codes=False)
    with pytest.raises(MixedRunsError, match=r"latent_mmd/test: codes recorded in new; codes not"):
        check_comparable(find_runs([tmp_path]))
    shutil.rmtree(tmp_path / "new")
    check_comparable(find_runs([tmp_path]))  # all of one kind: one page


def test_runs_that_ran_other_samplers_are_not_mixed_and_older_switches_are_read(tmp_path):
    write_run(tmp_path / "new", "mnist", 28, 1000, evaluation={"samplers": ["prior", "gmm"]})
    older = {"fid": {"prior": True, "gmm": True}, "gmm_components": 10}
    write_run(tmp_path / "old", "mnist", 28, 1000, evaluation=older)
    check_comparable(find_runs([tmp_path]))  # the same samplers, written two ways
    write_run(tmp_path / "other", "mnist", 28, 1000, evaluation={"samplers": ["auto", "gmm"]})
    with pytest.raises(MixedRunsError, match=r"eval.samplers: \['prior', 'gmm'\] in new, old"):
        check_comparable(find_runs([tmp_path]))


def test_notes_stand_next_to_their_numbers_and_a_wrong_note_names_the_choices(tmp_path):
    write_run(tmp_path / "runs" / "a", "mnist", 28, 1000)
    (table,) = build_tables(find_runs([tmp_path / "runs"]))
    notes_file = tmp_path / "notes.yaml"
    notes_file.write_text(
        "- model: WAE-MMD\n  column: fid/samples/prior\n  note: the samples are blank.\n"
    )
    notes = load_notes(notes_file, table)
    text = "\n".join(fid_table(table, notes))
    assert "| **1 (n=1)** ★ †1 | n/a |" in text and text.count("†") == 1
    assert note_lines(notes, table)[-1] == "- †1 WAE-MMD, FID samples: the samples are blank."
    scale = scale_line(find_runs([tmp_path / "runs"]), table)
    assert "width ?, d_z 8" in scale and "of `classifier-x` on 1000 images." in scale
    notes_file.write_text("- model: WAE-MMD\n  column: fid/samples/gmm\n  note: x\n")
    with pytest.raises(MixedRunsError, match=r"notes.yaml, entry 1: column 'fid/samples/gmm' is"):
        load_notes(notes_file, table)
    notes_file.write_text("- model: VAE\n  column: fid/samples/prior\n  note: x\n")
    with pytest.raises(MixedRunsError, match=r"model 'VAE' is not on this page; models: \['WAE"):
        load_notes(notes_file, table)
    with pytest.raises(SystemExit, match="notes file .*missing.yaml does not exist"):
        main([str(tmp_path / "runs"), "--page", "--notes", str(tmp_path / "missing.yaml")])


def test_surprises_name_each_model_that_does_not_beat_the_ae():
    settings = (("extractor", "classifier-x"), ("num_fake", 100), ("num_real", 100), ("real", "t"))
    mmd, prior = Column("latent_mmd/test"), Column("fid/samples/prior", settings)
    gmm = Column("fid/samples/gmm", settings)
    ae = Row("AE", {}, cells={mmd: Cell([0.5, 0.4]), prior: Cell([200.0]), gmm: Cell([30.0])})
    wae = Row("WAE-MMD", {}, cells={mmd: Cell([0.6]), prior: Cell([70.0]), gmm: Cell([40.0])})
    vae = Row("VAE", {}, cells={mmd: Cell([0.01]), prior: Cell([100.0])})
    notes = surprises(Table("x", [ae, wae, vae], [mmd, prior, gmm]))
    assert notes[0].startswith("- WAE-MMD does not beat the AE on latent MMD: 0.6 (n=1) vs 0.45")
    assert "(best: WAE-MMD, 70 (n=1))" in notes[1] and "30 (n=1)" in notes[1]
    assert len(notes) == 2
    wae.cells[prior] = Cell([25.0])
    assert [
        n for n in surprises(Table("x", [ae, wae, vae], [mmd, prior, gmm])) if "mixture" in n
    ] == []
    # An AE evaluated today has no prior samples: its N column is its fitted Gaussian.
    fitted = Column("fid/samples/gaussian", settings)
    ae.cells = {mmd: Cell([0.5]), fitted: Cell([50.0])}
    (note,) = [n for n in surprises(Table("x", [ae, wae, vae], [mmd, prior, fitted])) if "FID" in n]
    assert note.startswith("- VAE does not beat the AE on FID samples [")
    assert note.endswith(
        "100 (n=1) vs 50 (n=1) (the AE, samples of the Gaussian fitted to its codes)."
    )


def test_interpolation_pairs_are_fixed_distinct_and_of_two_classes():
    labels = torch.tensor([0] * 50 + [1] * 3)  # few images of the second class
    pairs = pick_pairs(labels, 3, seed=1)
    assert pairs.shape == (3, 2)
    assert torch.equal(pairs, pick_pairs(labels, 3, seed=1))
    assert len(set(pairs.flatten().tolist())) == 6
    assert all(labels[a] != labels[b] for a, b in pairs)
    unlabelled = pick_pairs(torch.full((10,), -1), 5, seed=0)
    assert sorted(unlabelled.flatten().tolist()) == list(range(10))
