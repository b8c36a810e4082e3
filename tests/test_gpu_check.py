"""`benchmarks/gpu_check.sh`, what a GPU session runs, works end to end: every stage on the
CPU with `--tiny` (numbers meaningless, code paths real), so that the script is known to work
before a GPU session spends its budget on it; the study's two calls (`prepare`, then `study`
in a fresh OUT, as the device tool empties it) bring back what the tool lets come back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import DEBIAN_FASHION_MNIST, REPO
from conftest import SHARED_INCEPTION_WEIGHTS as INCEPTION_WEIGHTS

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_study  # noqa: E402


def gpu_check(stage: str, out: Path, weights: Path, **env_vars) -> subprocess.CompletedProcess:
    python = Path(sys.executable)
    env = {
        **os.environ,
        "PYTHON": str(python),
        "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}",
        "WAEBENCH_INCEPTION_WEIGHTS": str(weights),
        **env_vars,
    }
    return subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), stage, str(out), "--tiny"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def test_missing_inception_weights_stop_the_script_before_any_training(tmp_path):
    missing = tmp_path / "missing.pth"
    result = gpu_check("all", tmp_path / "out", missing)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"WAEBENCH_INCEPTION_WEIGHTS={missing}: no such file" in result.stderr
    assert "needs the Inception weights" in result.stderr
    assert not (tmp_path / "out" / "results.jsonl").exists()
    assert not (tmp_path / "out" / "paper_run").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(),
    reason=f"real Fashion-MNIST absent from {DEBIAN_FASHION_MNIST}: "
    "apt-get install dataset-fashion-mnist",
)
@pytest.mark.skipif(not INCEPTION_WEIGHTS.is_file(), reason=f"no {INCEPTION_WEIGHTS}")
def test_every_stage_runs_end_to_end_on_a_cpu(tmp_path):
    out = tmp_path / "out"
    result = gpu_check("all", out, INCEPTION_WEIGHTS)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    exit_codes = {
        (row["stage"], row.get("benchmark")): row["exit_code"] for row in rows if "exit_code" in row
    }
    assert set(exit_codes) == {
        ("tests", None),
        ("bench", "train_speed"),
        ("bench", "celeba_synthetic"),
        ("bench", "jobs_per_gpu"),
        ("fid", "fid_speed"),
        ("paper", None),
    }, exit_codes
    assert set(exit_codes.values()) == {0}, exit_codes

    def rows_of(benchmark: str) -> list[dict]:
        return [row for row in rows if row.get("benchmark") == benchmark and "exit_code" not in row]

    (speed,) = rows_of("train_speed")
    assert {"plain", "stripped", "user"} <= set(speed["ms_per_step"])
    assert "framework_ms_per_step_median" in speed
    assert [row["k"] for row in rows_of("jobs_per_gpu")] == [1, 2]
    assert rows_of("fid_speed") and rows_of("celeba_synthetic") and rows_of("paper_budget")
    (paper,) = [row for row in rows if row.get("stage") == "paper"]
    assert paper["status"] == "completed", paper
    assert paper["eval"]["fid/samples/prior"] > 0, paper


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(),
    reason=f"real Fashion-MNIST absent from {DEBIAN_FASHION_MNIST}: "
    "apt-get install dataset-fashion-mnist",
)
def test_the_study_calls_run_end_to_end_on_a_cpu(tmp_path):
    """Call 1 (`prepare`: the jobs timed at once, the page timed) then call 2 (`study`: the
    plan from that calibration, training, evaluation, page, archives), each into its own OUT;
    --tiny: 2 models, 2 epochs (the cap that stands for the protocol's 100), CPU."""
    work, first, second = tmp_path / "work", tmp_path / "out1", tmp_path / "out2"
    options = {"STUDY_ARGS": f"--work {work} --no-tests"}
    no_weights = tmp_path / "absent.pth"  # --tiny scores in the classifier's space only
    prepared = gpu_check("prepare", first, no_weights, **options)
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    (calibration,) = [r for r in rows(first) if r.get("kind") == "calibration"]
    assert calibration["jobs_timed"] == 2 and calibration["epoch_s"] > 0
    assert calibration["eval_s"] > 0 and calibration["page"]["skipped"] == "--tiny"
    assert sorted(p.name for p in first.iterdir()) == [
        "calibration.json", "calibration_runs.tar.gz", "prepare.log", "results.jsonl",
    ]  # fmt: skip

    done = gpu_check("study", second, no_weights, **options)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "timing one epoch now" not in done.stdout  # the calibration of call 1 was used
    assert sorted(p.name for p in second.iterdir()) == [
        "page.tar.gz", "results.jsonl", "runs.tar.gz", "study.log",
    ]  # fmt: skip
    assert gpu_study.check_returned(second) == []
    found = rows(second)
    (plan,) = [r for r in found if r.get("kind") == "plan"]
    assert plan["epochs"] == 2 and plan["lr_milestones"] == [1, 1]
    assert plan["calibration"]["extra_fid_set_s"] > 0  # one FID pass timed before the jobs
    # Seed 0 of Fashion-MNIST first; MNIST's wave too where the budget had room for it.
    waves = [tuple(w) for w in plan["waves"]]
    assert waves[0] == ("fmnist_study", 0) and set(waves) <= {waves[0], ("mnist_study", 0)}
    runs = [r for r in found if r.get("kind") == "run"]
    assert len(runs) == 2 * len(waves) and {r["status"] for r in runs} == {"completed"}
    for run in runs:
        assert run["epochs"] == 2 and run["epochs_planned"] == 2
        space = "mnist" if "dataset=mnist," in run["run"] else "fashion_mnist"
        # The study's samplers: N (the prior, or the AE's fitted Gaussian), GMM, two-stage.
        n_column = {f"fid/samples/{s}@classifier-{space}" for s in ("prior", "gaussian")}
        assert len(n_column & set(run["eval"])) == 1
        for name in ("samples/gmm", "samples/two_stage", "reconstructions", "interpolations"):
            assert run["eval"][f"fid/{name}@classifier-{space}"] > 0, name
        assert "latent_mmd/test" in run["eval"] and run["test"]["rec"] > 0
    (summary,) = [r for r in found if r.get("kind") == "summary"]
    assert summary["wall_s"] < summary["budget_s"] and summary["left_out_of_archives"] == []
    with tarfile.open(second / "runs.tar.gz") as tar:
        names = tar.getnames()
    assert not [n for n in names if n.endswith(".ckpt")]
    for wanted in ("metrics.json", "config.yaml", "csv/metrics.csv"):
        assert sum(n.endswith(f"/{wanted}") for n in names) == len(runs), wanted
    with tarfile.open(second / "page.tar.gz") as tar:
        page = tar.extractfile("page/fashion_mnist/README.md").read().decode()
        assert "page/fashion_mnist/samples.png" in tar.getnames()
    assert "2 epochs, the protocol's 100" in page and "AE" in page and "VAE" in page
