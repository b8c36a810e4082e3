"""`benchmarks/gpu_check.sh`, the one call a GPU session makes, runs end to end: every stage
on the CPU with `--tiny` (numbers meaningless, code paths real), so that the script is known
to work before a GPU session spends its budget on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEBIAN_FASHION_MNIST, REPO
from conftest import SHARED_INCEPTION_WEIGHTS as INCEPTION_WEIGHTS


def gpu_check(stage: str, out: Path, weights: Path) -> subprocess.CompletedProcess:
    python = Path(sys.executable)
    env = {
        **os.environ,
        "PYTHON": str(python),
        "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}",
        "WAEBENCH_INCEPTION_WEIGHTS": str(weights),
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
