"""`waebench-report`: checked cell by cell against a real two-seed multirun (with the real
evaluation), and its rules (FID settings never share a column, published numbers, failures)
on run folders whose metrics.json the tests write."""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, compose_train_config
from omegaconf import OmegaConf
from PIL import Image

from waebench.evaluation.definitions import definition_of
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


def numbers(path: Path, metric: str) -> list[dict]:
    """The numbers of one metric in `<dataset>.csv` (a line per model, a column per metric
    key and its settings as JSON), one dict per model and settings that has one."""
    found = []
    for row in read_csv(path):
        for header in row:
            name, _, part = header.rpartition(" ")
            key, _, settings = name.partition(" ")
            if part == "mean" and key == metric and row[header]:
                found.append({"model": row["model"], "settings": json.loads(settings),
                              "mean": row[header], "std": row[f"{name} std"],
                              "n": row[f"{name} n"]})  # fmt: skip
    return found


@pytest.mark.slow
def test_report_of_a_multirun_matches_its_runs_cell_by_cell(two_seed_sweep):
    sweep = two_seed_sweep / "sweep"
    runs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    out = two_seed_sweep / "report"
    subprocess.run([str(BIN / "waebench-report"), str(sweep), "--out", str(out)], check=True,
                   capture_output=True)  # fmt: skip
    markdown = (out / "report.md").read_text()
    for name in runs[0]["eval"]:  # every metric of the record, none dropped
        definition = definition_of(name)
        (line,) = numbers(out / "digits.csv", definition.key)
        assert line["model"] == "WAE-MMD"
        values = [r["eval"][name]["value"] for r in runs]
        mean, std = statistics.fmean(values), statistics.stdev(values)
        assert float(line["mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(line["std"]) == pytest.approx(std, rel=1e-12)
        assert line["n"] == "2"
        assert f"| {definition.format(mean, std)} " in markdown
        if "extractor" in runs[0]["eval"][name]:
            assert line["settings"]["extractor"] == "classifier-digits"
    penalties = [r["test"]["penalty"] for r in runs]
    (line,) = numbers(out / "digits.csv", "test/penalty")
    assert float(line["mean"]) == pytest.approx(statistics.fmean(penalties), rel=1e-12)
    assert "Mean ± sample standard deviation over 2 seeds per model (seeds 0, 1)" in markdown
    assert "All runs completed." in markdown
    assert "\\toprule" in (out / "digits.tex").read_text()
    assert (out / "digits-test.csv").is_file() and "[CSV](digits-test.csv)" in markdown
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
    return {"status": "completed", "test": {"rec": 1.0, "penalty": 0.25}, "eval": eval_entries}


def test_fid_with_other_settings_gets_its_own_column(tmp_path):
    mnist = ["dataset=mnist", "regularizer=mmd"]
    write_run(tmp_path, "a", [*mnist, "seed=0"], completed(**{"fid/samples/prior": fid(10.0)}))
    write_run(tmp_path, "b", [*mnist, "seed=1"], completed(**{"fid/samples/prior": fid(12.0)}))
    write_run(tmp_path, "c", [*mnist, "seed=2"],
              completed(**{"fid/samples/prior": fid(30.0, num_fake=10000)}))  # fmt: skip
    write_run(tmp_path, "d", [*mnist, "seed=3"],
              completed(**{"fid/samples/prior": fid(50.0, extractor="inception-v3-compat")}))  # fmt: skip
    report([tmp_path], tmp_path / "out")
    lines = numbers(tmp_path / "out" / "mnist.csv", "fid/samples/prior")
    found = {(r["settings"]["extractor"], r["settings"]["num_fake"]): r for r in lines}
    assert set(found) == {("classifier-mnist", 1000), ("classifier-mnist", 10000),
                          ("inception-v3-compat", 1000)}  # fmt: skip
    few = found["classifier-mnist", 1000]
    assert (float(few["mean"]), few["n"]) == (11.0, "2")
    assert float(found["classifier-mnist", 10000]["mean"]) == 30.0
    assert float(found["inception-v3-compat", 1000]["mean"]) == 50.0
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| model | N (num_fake=1,000) | N (num_fake=10,000) |" in markdown
    assert "| WAE-MMD | 11.0 ± 1.4 (n=2) | 30.0 (n=1) |" in markdown  # 4 seeds, 2 in this cell
    assert "FID in the feature space of `inception-v3-compat`" in markdown  # a table of its own


def test_a_latent_mmd_of_an_older_evaluation_is_read_as_the_means_it_scored(tmp_path):
    vae = ["dataset=mnist", "regularizer=kl"]
    sampled = {"value": 0.02, "codes": "sampled"}
    write_run(tmp_path, "a", [*vae, "seed=0"], completed(**{"latent_mmd/test": sampled}))
    older = {"latent_mmd/test": {"value": 0.5}, "kl/test": {"value": 3.0}}  # no `codes`
    write_run(tmp_path, "b", [*vae, "seed=1"], completed(**older))
    report([tmp_path], tmp_path / "out")
    (new,) = numbers(tmp_path / "out" / "mnist.csv", "latent_mmd/test")
    (old,) = numbers(tmp_path / "out" / "mnist.csv", "latent_mmd_means/test")
    assert (float(new["mean"]), new["n"], float(old["mean"]), old["n"]) == (0.02, "1", 0.5, "1")


def test_published_numbers_stand_beside_ours_where_they_were_computed_alike(tmp_path):
    """CelebA, Inception FID of 10,000 samples of the best checkpoint against 10,000 test
    images: RAE's WAE in our cell; the WAE paper did not state its real images, so its
    numbers stand apart."""
    celeba = ["dataset=celeba", "regularizer=mmd", "regularizer.weight=100"]
    entry = {**fid(70.0, "inception-v3-compat", 10000), "real": "celeba:test", "checkpoint": "best"}
    write_run(tmp_path, "a", celeba, completed(**{"fid/samples/prior": entry}))
    report([tmp_path], tmp_path / "out")
    (cwae_code,) = (tmp_path / "out").glob("celeba-published-gmum-cwae-pytorch*.csv")
    (wae_mmd,) = read_csv(cwae_code)  # its real set (train + val) is not ours: apart
    assert (wae_mmd["model"], float(wae_mmd["N"])) == ("WAE-MMD", 51.29)
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| WAE-MMD | 70.0 (53.67ᵇ) |" in markdown
    assert "ᵇ beside ours: Ghosh et al. 2020, Table 1" in markdown
    assert "### Published: Tolstikhin et al. 2018, Table 1" in markdown
    assert "num_real not stated (ours: 10000)" in markdown
    (wae,) = read_csv(tmp_path / "out" / "celeba-published-tolstikhin-et-al-2018-table-1.csv")
    assert (wae["model"], float(wae["N"])) == ("WAE-MMD", 55.0)
    (rae,) = read_csv(tmp_path / "out" / "celeba-published-ghosh-et-al-2020-table-1.csv")
    assert (rae["model"], rae["REC"], rae["DP-GMM"], rae["Interp"]) == (
        "WAE (WAE-MMD)", "34.81", "42.73", "40.93")  # fmt: skip
    (ours,) = read_csv(tmp_path / "out" / "celeba-fid-inception-v3-compat-celeba-test-10000.csv")
    assert (float(ours["N"]), ours["N published"]) == (70.0, "53.67 (ᵇ)")


def test_the_rae_table_stands_apart_from_another_feature_space_in_its_layout(tmp_path):
    """RAE's N is the prior for the VAE, the fitted Gaussian (°) for the AE, the second
    VAE's samples for 2sVAE (beside our VAE: its 2-stage column)."""
    ae_entries = {"fid/samples/gaussian": fid(60.0), "fid/samples/gmm": fid(20.0)}
    write_run(tmp_path, "ae", ["dataset=mnist", "regularizer=none"], completed(**ae_entries))
    vae_entries = {"fid/samples/prior": fid(30.0), "fid/samples/two_stage": fid(25.0)}
    write_run(tmp_path, "vae", ["dataset=mnist", "regularizer=kl"], completed(**vae_entries))
    report([tmp_path], tmp_path / "out")
    (ours,) = [p for p in (tmp_path / "out").glob("mnist-fid-*.csv")]
    rows = {r["model"]: r for r in read_csv(ours)}
    assert (rows["AE"]["N"], rows["AE"]["N key"]) == ("60.0", "fid/samples/gaussian")
    assert (rows["VAE"]["N"], rows["VAE"]["N key"]) == ("30.0", "fid/samples/prior")
    published = {
        r["model"]: r
        for r in read_csv(tmp_path / "out" / "mnist-published-ghosh-et-al-2020-table-1.csv")
    }
    assert set(published) == {"AE", "VAE", "2sVAE (VAE, two-stage sampler)"}
    assert [published["AE"][k] for k in ("REC", "N", "DP-GMM", "Interp")] == [
        "12.95", "58.73", "10.66", "17.12"]  # fmt: skip
    assert (published["VAE"]["N"], published["VAE"]["2-stage"]) == ("19.21", "")
    two_stage = published["2sVAE (VAE, two-stage sampler)"]
    assert (two_stage["2-stage"], two_stage["N"], two_stage["DP-GMM"]) == ("18.81", "", "")
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| AE | 58.73°" not in markdown  # the paper's REC first, and what still differs:
    assert "| AE | 12.95‡1 | 58.73°‡4 | 10.66 | — | 17.12‡2 |" in markdown
    assert "‡4 Published, and still computed otherwise than ours: the code's own fitted" in markdown


def test_failed_runs_and_missing_evaluations_are_listed_with_the_command_that_fills_them(
    tmp_path,
):
    write_run(tmp_path, "ok", ["regularizer=gan"], completed() | {"evaluation": "pending"})
    write_run(tmp_path, "bad", ["regularizer=gan", "seed=1"],
              {"status": "diverged", "error": "loss is nan at step 12"})  # fmt: skip
    write_run(tmp_path, "killed", ["regularizer=gan", "seed=2"], None)
    report([tmp_path], tmp_path / "out")
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| diverged | loss is nan at step 12 |" in markdown
    assert "| unfinished | no metrics.json: still running, or killed |" in markdown
    assert (
        f"""| completed, evaluation pending | fill it with: waebench-eval 'ckpt_path="{tmp_path / "ok"}"'"""
        in markdown
    )
    assert (
        "| WAE-GAN | 1/3: seed 0 evaluation pending; seed 1 diverged; seed 2 unfinished |"
        in markdown
    )
    (line,) = numbers(tmp_path / "out" / "digits.csv", "test/penalty")
    assert (float(line["mean"]), line["n"]) == (0.25, "1")


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no runs under"):
        main([str(tmp_path)])
    with pytest.raises(SystemExit, match="does not exist"):
        main([str(tmp_path / "missing")])


def test_the_cwae_codes_numbers_stand_beside_ours_computed_alike_with_what_still_differs(
    tmp_path,
):
    """MNIST, FID of 10,000 prior samples of the last weights against train + test (70,000):
    the CWAE code's README numbers in our cells, marked ‡ with the epoch its README does not
    state."""
    entry = {
        **fid(25.0, "inception-v3-compat", 10000),
        "num_real": 70000,
        "real": "mnist:train+test",
        "checkpoint": "last",
    }
    for name, regularizer in (("cwae", "cwae"), ("swae", "sliced")):
        overrides = ["dataset=mnist", f"regularizer={regularizer}"]
        write_run(tmp_path, name, overrides, completed(**{"fid/samples/prior": entry}))
    report([tmp_path], tmp_path / "out")
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| CWAE | **25.0** (24.22ᵃ‡1) |" in markdown
    assert "| WAE-SW | **25.0** (30.94ᵃ‡1) |" in markdown
    assert (
        "‡1 Published, and still computed otherwise than ours: the README does not say" in markdown
    )
