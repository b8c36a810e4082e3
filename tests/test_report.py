"""`waebench-report`: checked cell by cell against a real two-seed multirun (with the real
evaluation), and its rules (FID settings never share a column, published numbers, failures)
on run folders whose metrics.json the tests write."""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, compose_train_config
from omegaconf import OmegaConf
from PIL import Image

from waebench.report import main, report

BIN = Path(sys.executable).parent
QUICK_EVAL = [
    "eval=quick",
    "eval.inception.enabled=false",
    "eval.classifier.num_samples=200",
    "eval.classifier.train_steps=30",
    "eval.figures.enabled=false",
    "eval.latent_mmd_codes=200",
]


def sweep_command(root: Path) -> list[str]:
    tiny = [o for o in TINY if not o.startswith("++eval")]
    return [
        str(BIN / "waebench-train"), "-m", *tiny, *QUICK_EVAL, "seed=0,1",
        f"paths.log_dir={root}", f"paths.data_dir={root / 'data'}",
        f"hydra.sweep.dir={root / 'sweep'}",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def two_seed_sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    env = {**os.environ, "WANDB_MODE": "offline"}
    subprocess.run(sweep_command(root), check=True, env=env, capture_output=True)
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def ours(path: Path) -> list[dict[str, str]]:
    """The CSV's rows of our runs (published rows, e.g. RAE's MNIST table, left out)."""
    return [r for r in read_csv(path) if not r["published_source"]]


def column_for(header: list[str], title: str, settings: dict) -> str:
    """The one CSV column (without its ' mean' suffix) of this metric with these settings."""
    names = {h.rsplit(" ", 1)[0] for h in header if h.endswith(" mean")}
    matches = []
    for name in names:
        base, _, details = name.partition(" [")
        parts = details.rstrip("]").split(", ")
        if base == title and all(f"{k}={v}" in parts for k, v in settings.items()):
            matches.append(name)
    assert len(matches) == 1, (title, settings, names)
    return matches[0]


TITLES = {
    "fid/samples/prior": "FID samples",
    "fid/reconstructions": "FID reconstructions",
    "mse/test": "reconstruction MSE/pixel",
    "rec/test": "test reconstruction cost",
    "latent_mmd/test": "latent MMD",
}


@pytest.mark.slow
def test_report_of_a_multirun_matches_its_runs_cell_by_cell(two_seed_sweep):
    sweep = two_seed_sweep / "sweep"
    runs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    out = two_seed_sweep / "report"
    subprocess.run([str(BIN / "waebench-report"), str(sweep), "--out", str(out)], check=True,
                   capture_output=True)  # fmt: skip
    (row,) = read_csv(out / "digits.csv")
    assert (row["model"], row["runs_completed"], row["runs_total"]) == ("WAE-MMD", "2", "2")
    markdown = (out / "report.md").read_text()
    checked = 0
    for name in runs[0]["eval"]:
        metric = name.split("@")[0]
        if metric not in TITLES:
            continue
        entries = [r["eval"][name] for r in runs]
        settings = {k: entries[0][k] for k in ("extractor", "num_fake") if k in entries[0]}
        column = column_for(list(row), TITLES[metric], settings)
        values = [e["value"] for e in entries]
        mean, std = statistics.fmean(values), statistics.stdev(values)
        assert float(row[f"{column} mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(row[f"{column} std"]) == pytest.approx(std, rel=1e-12)
        assert row[f"{column} n"] == "2"
        assert f"{mean:.4g} ± {std:.2g} (n=2)" in markdown
        checked += 1
    assert checked == 5  # FID of samples and of reconstructions, MSE, cost, latent MMD
    assert "All runs completed." in markdown
    assert "\\begin{tabular}" in (out / "digits.tex").read_text()
    with Image.open(out / "digits.png") as figure:
        assert figure.width > 300 and figure.height > 300


@pytest.mark.slow
def test_relaunching_a_finished_sweep_redoes_nothing(two_seed_sweep):
    sweep = two_seed_sweep / "sweep"
    before = {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    env = {**os.environ, "WANDB_MODE": "offline"}
    subprocess.run(sweep_command(two_seed_sweep), check=True, env=env, capture_output=True)
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")} == before
    for metrics in before:
        assert "Skipping" in (metrics.parent / "train.log").read_text()


def write_run(root: Path, name: str, overrides: list[str], metrics: dict | None) -> Path:
    """A run folder as train() leaves it: the composed config, and metrics.json if given."""
    run_dir = root / name
    cfg = compose_train_config(run_dir, overrides)
    run_dir.mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def fid(value: float, extractor: str = "classifier-mnist", num_fake: int = 1000) -> dict:
    return {"value": value, "extractor": extractor, "num_fake": num_fake, "num_real": 10000,
            "real": "mnist:test", "seed": 0}  # fmt: skip


def completed(**eval_entries) -> dict:
    return {"status": "completed", "test": {"rec": 1.0}, "eval": eval_entries}


def test_fid_with_other_settings_gets_its_own_column(tmp_path):
    mnist = ["dataset=mnist", "regularizer=mmd"]
    write_run(tmp_path, "a", [*mnist, "seed=0"], completed(**{"fid/samples/prior": fid(10.0)}))
    write_run(tmp_path, "b", [*mnist, "seed=1"], completed(**{"fid/samples/prior": fid(12.0)}))
    write_run(tmp_path, "c", [*mnist, "seed=2"],
              completed(**{"fid/samples/prior": fid(30.0, num_fake=10000)}))  # fmt: skip
    write_run(tmp_path, "d", [*mnist, "seed=3"],
              completed(**{"fid/samples/prior": fid(50.0, extractor="inception-v3-compat")}))  # fmt: skip
    report([tmp_path], tmp_path / "out")
    (row,) = ours(tmp_path / "out" / "mnist.csv")
    header = list(row)
    a = column_for(header, "FID samples", {"extractor": "classifier-mnist", "num_fake": 1000})
    b = column_for(header, "FID samples", {"extractor": "classifier-mnist", "num_fake": 10000})
    c = column_for(header, "FID samples", {"extractor": "inception-v3-compat"})
    assert (float(row[f"{a} mean"]), row[f"{a} n"]) == (11.0, "2")
    assert (float(row[f"{b} mean"]), row[f"{b} n"]) == (30.0, "1")
    assert (float(row[f"{c} mean"]), row[f"{c} n"]) == (50.0, "1")
    assert row["runs_completed"] == "4"


def test_a_latent_mmd_of_an_older_evaluation_gets_its_own_column(tmp_path):
    vae = ["dataset=mnist", "regularizer=kl"]
    sampled = {"value": 0.02, "codes": "sampled"}
    write_run(tmp_path, "a", [*vae, "seed=0"], completed(**{"latent_mmd/test": sampled}))
    write_run(tmp_path, "b", [*vae, "seed=1"], completed(**{"latent_mmd/test": {"value": 0.5}}))
    report([tmp_path], tmp_path / "out")
    (row,) = ours(tmp_path / "out" / "mnist.csv")
    assert (float(row["latent MMD mean"]), row["latent MMD n"]) == (0.02, "1")
    (older,) = [
        h for h in row if h.startswith("latent MMD [codes=unrecorded") and h.endswith(" mean")
    ]
    assert float(row[older]) == 0.5


def test_published_numbers_stand_beside_ours_in_their_own_column(tmp_path):
    celeba = ["dataset=celeba", "regularizer=mmd", "regularizer.weight=100"]
    entries = {"fid/samples/prior": fid(70.0, "inception-v3-compat", 10000)}
    write_run(tmp_path, "a", celeba, completed(**entries))
    report([tmp_path], tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "celeba.csv")
    assert [(r["model"], r["published_source"]) for r in rows] == [
        ("WAE-MMD", ""), ("WAE-MMD", "Tolstikhin et al. 2018, Table 1"),
        ("WAE (WAE-MMD)", "Ghosh et al. 2020, Table 1"),
        ("WAE-MMD", "gmum/cwae-pytorch README (Knop et al. 2020)"),
    ]  # fmt: skip
    wae_paper = column_for(list(rows[0]), "published FID samples", {"num_real": "not stated"})
    rae_paper = column_for(list(rows[0]), "published FID samples", {"num_real": 10000})
    ours_column = column_for(list(rows[0]), "FID samples", {"extractor": "inception-v3-compat"})
    assert (rows[0][f"{wae_paper} mean"], float(rows[0][f"{ours_column} mean"])) == ("", 70.0)
    assert (float(rows[1][f"{wae_paper} mean"]), rows[1][f"{ours_column} mean"]) == (55.0, "")
    assert (float(rows[2][f"{rae_paper} mean"]), rows[2][f"{wae_paper} mean"]) == (53.67, "")
    cwae_code = column_for(list(rows[0]), "published FID samples", {"real": "celeba:train+val"})
    assert float(rows[3][f"{cwae_code} mean"]) == 51.29
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "WAE-MMD (published: Tolstikhin et al. 2018, Table 1)" in markdown
    assert "WAE (WAE-MMD) (published: Ghosh et al. 2020, Table 1)" in markdown


def test_the_rae_table_stands_beside_our_ae_and_vae_in_the_columns_that_match(tmp_path):
    """RAE's N is the prior for the VAE, the fitted Gaussian for the AE, the second VAE for
    2sVAE (beside our VAE); REC, GMM and Interp map to their own keys."""
    paper_fid = {"extractor": "tf-inception (paper)", "num_real": 10000}
    ae_entries = {"fid/samples/gaussian": fid(60.0), "fid/samples/gmm": fid(20.0)}
    write_run(tmp_path, "ae", ["dataset=mnist", "regularizer=none"], completed(**ae_entries))
    vae_entries = {"fid/samples/prior": fid(30.0), "fid/samples/two_stage": fid(25.0)}
    write_run(tmp_path, "vae", ["dataset=mnist", "regularizer=kl"], completed(**vae_entries))
    report([tmp_path], tmp_path / "out")
    (ae,) = [r for r in ours(tmp_path / "out" / "mnist.csv") if r["model"] == "AE"]
    fitted = column_for(list(ae), "FID samples (Gaussian fitted to the codes)", {"num_fake": 1000})
    assert float(ae[f"{fitted} mean"]) == 60.0
    rows = {
        r["model"]: r for r in read_csv(tmp_path / "out" / "mnist.csv") if r["published_source"]
    }
    assert set(rows) == {"AE", "VAE", "2sVAE (VAE, two-stage sampler)"}
    header = list(rows["AE"])

    def published(title: str, model: str) -> str:
        return rows[model][f"{column_for(header, f'published {title}', paper_fid)} mean"]

    assert published("FID reconstructions", "AE") == "12.95"
    assert published("FID samples (Gaussian fitted to the codes)", "AE") == "58.73"
    assert published("FID samples (GMM)", "AE") == "10.66"
    assert published("FID interpolations", "AE") == "17.12"
    assert published("FID samples", "AE") == ""  # the AE has no prior
    assert published("FID samples", "VAE") == "19.21"
    assert published("FID samples (two-stage VAE)", "2sVAE (VAE, two-stage sampler)") == "18.81"
    assert published("FID samples (GMM)", "2sVAE (VAE, two-stage sampler)") == ""  # "-"
    assert all(r["runs_total"] == "" for r in rows.values())  # never counted as our runs


def test_failed_and_unfinished_runs_are_listed_with_their_errors(tmp_path):
    write_run(tmp_path, "ok", ["regularizer=gan"], completed())
    write_run(tmp_path, "bad", ["regularizer=gan", "seed=1"],
              {"status": "diverged", "error": "loss is nan at step 12"})  # fmt: skip
    write_run(tmp_path, "killed", ["regularizer=gan", "seed=2"], None)
    report([tmp_path], tmp_path / "out")
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| diverged | loss is nan at step 12 |" in markdown
    assert "| unfinished | no metrics.json: still running, or killed |" in markdown
    (row,) = read_csv(tmp_path / "out" / "digits.csv")
    assert (row["runs_completed"], row["runs_total"]) == ("1", "3")
    assert math.isclose(float(row["test reconstruction cost mean"]), 1.0)


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no runs under"):
        main([str(tmp_path)])
    with pytest.raises(SystemExit, match="does not exist"):
        main([str(tmp_path / "missing")])
