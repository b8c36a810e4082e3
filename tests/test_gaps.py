"""What a table alone would hide (issue 32): a model that collapsed, two runs of one config and
seed counted as two seeds, and a page note that cannot name one of two rows of one model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from waebench.build import build_model
from waebench.evaluation.collapse import collapse_findings
from waebench.report import report
from waebench.reporting.layout import metric_tables
from waebench.reporting.notes import NotesError, load_notes
from waebench.reporting.runs import find_runs
from waebench.reporting.table import build_tables
from waebench.train import train


def test_a_decoder_or_an_encoder_that_ignores_its_input_is_flagged(train_config):
    cfg = train_config()
    model = build_model(cfg).eval()
    datamodule = instantiate(cfg.dataset)
    datamodule.setup()
    check = (datamodule, "test", 100, 0)
    untrained = collapse_findings(model, *check)  # its codes hardly differ between images
    assert untrained == [
        "the reconstructions of 359 different test images are one image (per-pixel std "
        f"{untrained[0].split('std ')[1].split(' ')[0]} grey levels, below 0.5)"
    ]
    model.encoder.head.weight.data.mul_(1000)  # codes spread like the prior's: images differ
    assert collapse_findings(model, *check) == []
    model.decoder.head.weight.data.zero_()  # every code decodes to one image
    decoder = collapse_findings(model, *check)
    assert decoder[0].startswith("the reconstructions of 359 different test images are one")
    assert decoder[1].startswith("the 359 decoded prior samples are one image (per-pixel std 0 ")
    assert decoder[1].endswith(": the decoder ignores the code")
    model.encoder.head.weight.data.zero_()  # every image encodes to one code
    assert collapse_findings(model, *check)[-1].startswith(
        "the encoder ignores the image: the codes of 359 test images do not vary"
    )


def test_a_learning_rate_far_too_large_ends_completed_and_flagged_collapsed(train_config):
    """The probe of issue 32: `model.optimizer.lr=1e6` trains to finite losses and a decoder
    whose every sample is the same image; the record says so."""
    cfg = train_config(
        "model.optimizer.lr=1e6", "++eval.enabled=true", "eval.inception.enabled=false",
        "eval.classifier.enabled=false", "eval.figures.enabled=false",
        "eval.latent_mmd_codes=100",
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["status"] == "completed" and metrics["evaluation"] == "completed"
    assert any(
        f.startswith("the 359 decoded prior samples are one image (per-pixel std 0 ")
        for f in metrics["collapse"]
    ), metrics["collapse"]
    assert json.loads(Path(cfg.paths.output_dir, "metrics.json").read_text()) == metrics


def write_run(folder: Path, seed: int, weight: float, fid: float, ended: float) -> Path:
    """A completed, evaluated run folder: its config and metrics.json, last written `ended`."""
    config = {
        "seed": seed,
        "dataset": {"name": "mnist", "image_size": 28, "channels": 1},
        "regularizer": {"_target_": "waebench.regularizers.MMDPenalty", "weight": weight},
        "model": {"latent_dim": 8},
        "eval": {"samplers": ["auto"]},
    }
    folder.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(config), folder / "config.yaml")
    entry = {"value": fid, "extractor": "classifier-x", "num_fake": 100, "num_real": 100,
             "real": "mnist:test"}  # fmt: skip
    metrics = {"status": "completed", "evaluation": "completed",
               "eval": {"fid/samples/prior@classifier-x": entry}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    os.utime(folder / "metrics.json", (ended, ended))
    return folder


def test_two_runs_of_one_config_and_seed_count_as_one_seed(tmp_path):
    write_run(tmp_path / "runs" / "a", seed=0, weight=10.0, fid=10.0, ended=1000)
    newer = write_run(tmp_path / "runs" / "b", seed=0, weight=10.0, fid=20.0, ended=2000)
    write_run(tmp_path / "runs" / "c", seed=1, weight=10.0, fid=40.0, ended=1500)
    (table,) = build_tables(find_runs([tmp_path / "runs"]))
    (cell,) = table.rows[0].cells.values()
    assert sorted(cell.values) == [20.0, 40.0]  # seed 0 once, from its newest run
    markdown = report([tmp_path / "runs"], tmp_path / "out").read_text()
    assert "| WAE-MMD | 30.0 ± 14.1 |" in markdown and "over 2 seeds per model" in markdown
    assert (
        f"- Not counted: {tmp_path / 'runs' / 'a'} has the config and seed (0) of {newer}, "
        "counted once"
    ) in markdown


def test_a_note_names_one_of_two_rows_of_one_model_by_its_label(tmp_path):
    write_run(tmp_path / "runs" / "a", seed=0, weight=1.0, fid=10.0, ended=1000)
    write_run(tmp_path / "runs" / "b", seed=0, weight=10.0, fid=20.0, ended=1000)
    (table,) = build_tables(find_runs([tmp_path / "runs"]))
    labels = sorted(r.label for r in table.rows)
    assert labels == ["WAE-MMD (λ=1.0)", "WAE-MMD (λ=10.0)"]
    notes_file = tmp_path / "notes.yaml"
    notes_file.write_text("- model: WAE-MMD\n  column: fid/samples/prior\n  note: blank\n")
    with pytest.raises(NotesError, match=r"model 'WAE-MMD' names 2 rows; give the label of"):
        load_notes(notes_file, table)
    notes_file.write_text(f"- model: {labels[1]}\n  column: fid/samples/prior\n  note: blank\n")
    shown = metric_tables(table, load_notes(notes_file, table))
    marked = [
        label for t in shown for label, cells in t.rows if any("†1" in c.marks for c in cells)
    ]
    assert marked == [labels[1]]
    notes_file.write_text("- model: [WAE-MMD\n")
    with pytest.raises(NotesError, match=f"notes file {notes_file} is not YAML"):
        load_notes(notes_file, table)
