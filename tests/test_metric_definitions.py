"""One definition per metric and the typed `eval` settings: bad settings refused at once,
older records read as today's, a metric added in one place shown everywhere (report, page,
LaTeX, CSV), published numbers beside ours only on our scale, findings keyed on a model's
properties, the results index from the same code as the pages, LaTeX that compiles. Run
folders are written here as `waebench-train` leaves them (composed config, metrics.json)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CONFIG_DIR, TINY, compose_config, compose_train_config
from omegaconf import OmegaConf

from waebench.config_check import ConfigValueError, check_config
from waebench.evaluation import definitions, legacy
from waebench.evaluation.definitions import (
    HIGHER,
    LOWER,
    MetricDefinition,
    closest_to,
    definition_of,
)
from waebench.evaluation.settings import EvalSettings
from waebench.report import main, report
from waebench.reporting.findings import LIMIT, findings
from waebench.reporting.index import write_index
from waebench.reporting.layout import metric_tables
from waebench.reporting.notes import NotesError, load_notes
from waebench.reporting.page import config_differences
from waebench.reporting.runs import find_runs
from waebench.reporting.table import build_tables

PDFLATEX = shutil.which("pdflatex")


def write_run(root: Path, name: str, overrides: list[str], entries: dict, **record) -> Path:
    """A completed run folder: the composed config and a metrics.json with these entries."""
    run_dir = root / name
    cfg = compose_train_config(run_dir, overrides)
    run_dir.mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    metrics = {"status": "completed", "test": {"rec": 1.0, "penalty": 0.5}, "eval": entries}
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, **record}))
    return run_dir


def fid(value: float, extractor="classifier-mnist", num_fake=10000, real="mnist:test", **more):
    return {"value": value, "extractor": extractor, "num_fake": num_fake, "num_real": 10000,
            "real": real, "seed": 0, **more}  # fmt: skip


def test_bad_eval_settings_are_refused_at_once_with_key_value_and_range(tmp_path):
    cfg = compose_train_config(
        tmp_path / "run",
        [*TINY, "regularizer=none", "eval.samplers=[prior]", "eval.device=gpu",
         "eval.inception.num_samples=1", "eval.classifier.enabled=maybe",
         "+eval.sampler.gmm.n_compnents=3", "eval.sampler.two_stage.lr=0",
         "+eval.gmm_componentz=3"],
    )  # fmt: skip
    with pytest.raises(ConfigValueError) as error:
        check_config(cfg)
    message = str(error.value)
    for expected in (
        "eval.device=gpu: must be one of auto, cpu, cuda",
        "eval.inception.num_samples=1: must be an integer >= 2",
        "eval.classifier.enabled=maybe: must be one of true, false, auto",
        "eval.sampler.gmm.n_compnents: unknown option; valid: max_iter, n_components",
        "eval.sampler.two_stage.lr=0: must be a finite number > 0",
        "eval.gmm_componentz: unknown setting; valid: ",
        "`prior` decodes samples of the prior P_Z, which regularizer `none`",
    ):
        assert expected in message
    empty = compose_train_config(tmp_path / "run", [*TINY, "eval.samplers=[]"])
    with pytest.raises(ConfigValueError, match=r"eval.samplers=\[\]: must be a list of auto"):
        check_config(empty)


@pytest.mark.parametrize(
    "overrides",
    [["eval=default"], ["eval=quick"], ["sweep=fmnist_study"], ["sweep=mnist_study"],
     ["sweep=wae_paper_table"], ["sweep=rae_paper_table"], ["experiment=quickstart"]],
    ids=lambda o: o[0],
)  # fmt: skip
def test_every_shipped_eval_config_builds_its_typed_settings(tmp_path, overrides):
    cfg = compose_config("train", tmp_path / "run", overrides)
    settings = EvalSettings.from_config(cfg.eval)
    assert settings.samplers and settings.split == "test"
    recorded = {"seed": settings.seed, "checkpoint": settings.checkpoint}
    assert settings.recorded("fid/samples/gmm") == recorded
    assert settings.recorded("fid/reconstructions") == {**recorded, "reconstruction": "mean"}


def test_the_overrides_of_a_runs_settings_give_them_back_to_waebench_eval(tmp_path):
    """The command that fills a missing evaluation evaluates with the run's own settings."""
    study = EvalSettings.from_config(
        compose_config("train", tmp_path / "a", ["sweep=mnist_study"]).eval
    )
    overrides = study.overrides()
    assert "eval.inception.enabled=false" in overrides and "eval.batch_size" not in str(overrides)
    again = compose_config("eval", tmp_path / "b", [f"ckpt_path={tmp_path}", *overrides]).eval
    assert EvalSettings.from_config(again).numbers_settings() == study.numbers_settings()


def test_an_older_eval_section_is_read_as_the_samplers_and_options_it_ran():
    """The `eval` section of a run from before `eval.samplers` (commit 162180f)."""
    older = OmegaConf.load(CONFIG_DIR / "eval" / "default.yaml")
    section = OmegaConf.to_container(older)
    for key in ("samplers", "sampler", "inception_weights"):
        section.pop(key)
    section["inception"].pop("weights")
    section.update(gmm_components=5, inception_weights="/w.pth", cache_dir="/cache")
    section["fid"] = {"prior": True, "gmm": True, "reconstructions": True}
    settings = EvalSettings.from_config(section)  # strict: read completely as today's
    assert settings.samplers == ("prior", "gmm")
    assert settings.sampler == {"gmm": {"n_components": 5, "max_iter": 100}}  # sklearn's then
    assert (settings.checkpoint, settings.reconstruction, settings.interpolation) == (
        "last", "mean", "test_pairs")  # fmt: skip
    assert settings.inception.weights == "/w.pth"
    assert settings.fid.interpolations is False  # not scored before eval.fid.interpolations
    section["fid"] = {"gmm": True}  # the prior's switch was on by default
    assert legacy.settings(section)["samplers"] == ["prior", "gmm"]


def test_older_entries_are_read_as_todays():
    """A latent MMD without `codes` scored the means: of a Gaussian encoder (its record has
    kl/test) it is today's latent_mmd_means/test; samples get their sampler's options, in
    today's terms; entries from before the estimators were recorded scored the last weights,
    reconstructions of the means and random test pairs."""
    gaussian = legacy.entries(
        {"latent_mmd/test": {"value": 0.5}, "kl/test": {"value": 3.0},
         "fid/samples/gmm@x": fid(10.0), "fid/reconstructions": fid(12.0),
         "kid/interpolations": fid(0.1), "fid/images": fid(30.0),
         "fid/samples/two_stage": fid(20.0, sampler={"hidden": 128, "steps": 1500})},
        {"gmm": {"n_components": 10}},
    )  # fmt: skip
    assert "latent_mmd/test" not in gaussian
    last = {"checkpoint": "last"}
    assert gaussian["latent_mmd_means/test"] == {"value": 0.5, "codes": "means", **last}
    assert gaussian["fid/samples/gmm@x"]["sampler"] == {"n_components": 10, "max_iter": 100}
    assert gaussian["fid/reconstructions"] == {**fid(12.0), **last, "reconstruction": "mean"}
    assert gaussian["kid/interpolations"]["interpolation"] == "test_pairs"
    assert gaussian["fid/images"] == fid(30.0)  # images made elsewhere: no checkpoint
    assert gaussian["fid/samples/two_stage"]["sampler"] == {"preset": "study"}
    deterministic = legacy.entries({"latent_mmd/test": {"value": 0.4}}, {})
    assert deterministic["latent_mmd/test"] == {"value": 0.4, "codes": "deterministic", **last}
    as_text = legacy.entries(  # the sampler written as text, with the estimators
        {"fid/samples/two_stage": fid(19.0, checkpoint="best",
                                      sampler="two_stage(beta=0.0015, preset=rae)"),
         "fid/samples/prior": fid(18.0, checkpoint="best", sampler="prior")}, {},
    )  # fmt: skip
    assert as_text["fid/samples/two_stage"] == {
        **fid(19.0),
        "checkpoint": "best",
        "sampler": {"preset": "rae", "beta": 0.0015},
    }
    assert as_text["fid/samples/prior"] == {**fid(18.0), "checkpoint": "best"}


def test_a_config_from_before_the_network_options_reads_as_what_it_ran(tmp_path):
    """A run trained before `model.init`, `model.batch_norm`, `model.input_noise` and
    `model.batches_per_step` had torch's initialisation and batch norm, no input noise and
    one batch a step: beside a run of today that sets them so, no setting differs between
    the rows."""
    runs = tmp_path / "runs"
    old = write_run(runs, "old", ["dataset=mnist", "regularizer=none"], {})
    cfg = OmegaConf.load(old / "config.yaml")
    for key in {**legacy.BEFORE_NETWORK_OPTIONS, **legacy.BEFORE_BATCHES_PER_STEP}:
        del cfg.model[key]
    OmegaConf.save(cfg, old / "config.yaml")
    write_run(runs, "new", ["dataset=mnist", "regularizer=mmd"], {})
    by_name = {run.run_dir.name: run for run in find_runs([runs])}
    assert by_name["old"].config["model"] == by_name["new"].config["model"]
    (table,) = build_tables(list(by_name.values()))
    differences = "\n".join(config_differences(table.rows))
    assert "regularizer._target_" in differences and "model." not in differences


def test_each_key_has_one_definition_and_an_unknown_key_its_own():
    assert definition_of("fid/samples/gmm@classifier-mnist").column == "GMM"
    assert definition_of("fid/samples/gaussian").stands_in_for == "fid/samples/prior"
    assert definition_of("prc/samples/prior/precision").better == HIGHER
    assert definition_of("kid/interpolations").better == LOWER
    made_up = definition_of("made_up/test@classifier-x")
    assert (made_up.key, made_up.group, made_up.better.way) == ("made_up/test", "other", "none")
    kurtosis = closest_to(setting="expected", label="d(d+2)")
    assert kurtosis.badness(78.0, {"expected": 80}) == 2.0 and kurtosis.mark == "→d(d+2)"
    assert closest_to(0.0).badness(-0.3, {}) == 0.3
    with pytest.raises(ValueError, match="either a target or the setting"):
        closest_to()
    entry = fid(1.0, sampler={"n_components": 10})
    assert dict(definition_of("fid/samples/gmm").comparable_settings(entry))["sampler"] == (
        ("n_components", 10),
    )  # seed and value are not settings
    assert "seed" not in dict(definition_of("fid/samples/gmm").comparable_settings(entry))


def test_a_metric_defined_in_one_place_is_in_the_report_page_latex_and_csv(tmp_path, monkeypatch):
    """One new definition, and a run whose record has its entry: it reaches every output;
    precision/recall (eval.prc) and a key without a definition are shown too."""
    definition = MetricDefinition(
        "mardia_kurtosis/test", "kurtosis", "Mardia's multivariate kurtosis of the test codes",
        "test", closest_to(setting="expected", label="d(d+2)"), fmt=".4g",
    )  # fmt: skip
    monkeypatch.setitem(definitions.METRICS, definition.key, definition)
    entries = {
        "fid/samples/prior@classifier-mnist": fid(20.0),
        "prc/samples/prior/precision@classifier-mnist": fid(0.625),
        "prc/samples/prior/recall@classifier-mnist": fid(0.375),
        "mardia_kurtosis/test": {"value": 81.25, "expected": 80, "num_codes": 1000},
        "made_up/test": {"value": 4.5},
    }
    runs = tmp_path / "runs"
    write_run(runs, "vae", ["dataset=mnist", "regularizer=kl"], entries)
    far = {**entries, "mardia_kurtosis/test": {**entries["mardia_kurtosis/test"], "value": 90.5}}
    write_run(runs, "wae", ["dataset=mnist", "regularizer=mmd"], far)
    out = tmp_path / "report"
    report([runs], out)
    page = tmp_path / "page"
    main([str(runs), "--page", "--out", str(page)])
    texts = {
        "report": (out / "report.md").read_text(),
        "page": (page / "README.md").read_text(),
        "html": (page / "index.html").read_text(),
        "latex": (out / "mnist.tex").read_text() + (page / "test.tex").read_text(),
        "csv": (out / "mnist.csv").read_text() + (out / "mnist-test.csv").read_text()
        + (page / "test.csv").read_text(),
    }  # fmt: skip
    for name, text in texts.items():
        assert "kurtosis" in text, name
        assert "81.25" in text and "90.5" in text, name
    assert "**81.25**" in texts["page"]  # the one closest to d(d + 2) = 80
    for name in ("report", "page"):
        assert "| precision |" not in texts[name]  # its own table, headed by the image set
        assert "## Precision" in texts[name] or "### Precision" in texts[name]
        assert "0.625" in texts[name] and "0.375" in texts[name] and "4.5" in texts[name]
        assert "Other metrics" in texts[name] and "made_up/test" in texts[name]


def test_published_numbers_stand_beside_ours_only_when_computed_alike(tmp_path):
    """Inception FID of 10,000 images against 10,000 of MNIST's test images, scored as RAE's
    code does (the best checkpoint, reconstructions of sampled codes): RAE's numbers in our
    cells, what still differs as a ‡ footnote; in the classifier's feature space, or from
    the last checkpoint: RAE's table apart, saying why."""
    runs = tmp_path / "runs"
    rae = {"checkpoint": "best"}
    inception = {
        "fid/samples/gaussian": fid(60.0, "inception-v3-compat", **rae),
        "fid/reconstructions": fid(15.0, "inception-v3-compat", reconstruction="sample", **rae),
        "fid/samples/dpgmm@classifier-mnist": fid(
            9.0, sampler={"n_components": 10, "max_iter": 100}, **rae
        ),
    }
    write_run(runs, "ae", ["dataset=mnist", "regularizer=none"], inception)
    (table,) = build_tables(find_runs([runs]))
    shown = {t.slug: t for t in metric_tables(table)}
    beside = shown["fid-inception-v3-compat-mnist-test-10000"]
    assert beside.header == ["REC", "N"]
    # two FID tables: each title names its feature space
    assert beside.title == "FID (inception-v3-compat)"
    assert shown["fid-classifier-mnist-mnist-test-10000"].title == "FID (classifier-mnist)"
    (label, cells), = beside.rows  # fmt: skip
    assert (label, cells[0].published, cells[1].published) == ("AE", (("ᵃ‡1", "12.95"),),
                                                               (("ᵃ‡2", "58.73"),))  # fmt: skip
    assert cells[1].marks == ("°",)  # the AE's N is the Gaussian fitted to its codes
    assert any("ᵃ beside ours: Ghosh et al. 2020, Table 1" in n for n in beside.footnotes)
    assert any(n.startswith("‡1 ") and "reconstructs 10,000 validation images" in n
               for n in beside.footnotes)  # fmt: skip
    apart = shown["published-ghosh-et-al-2020-table-1"]
    assert apart.header == ["DP-GMM", "Interp"]  # the numbers that are not beside ours
    assert [c.text for c in apart.rows[0][1]] == ["10.66", "17.12"]
    assert apart.rows[0][1][1].marks == ("‡1",)  # MNIST's pairs: still differs
    assert "extractor tf-inception (paper) (ours: classifier-mnist)" in apart.caption
    assert "we have no `fid/interpolations`" in apart.caption
    assert "DP-GMM: sampler n_components=10, max_iter=100" in apart.caption
    last = tmp_path / "last"
    write_run(
        last,
        "ae",
        ["dataset=mnist", "regularizer=none"],
        {"fid/samples/gaussian": fid(60.0, "inception-v3-compat")},
    )  # an older record
    (table,) = build_tables(find_runs([last]))
    shown = {t.slug: t for t in metric_tables(table)}
    (_, cells), = shown["fid-inception-v3-compat-mnist-test-10000"].rows  # fmt: skip
    assert cells[0].published == ()
    assert shown["fid-inception-v3-compat-mnist-test-10000"].title == "FID"  # the only one
    assert "checkpoint best (ours: last)" in shown["published-ghosh-et-al-2020-table-1"].caption


def test_a_note_names_the_feature_space_whose_table_alone_shows_it(tmp_path):
    """`fid/samples/prior@inception-v3-compat`: under the Inception table only; a bare key
    under both; a feature space the page lacks is refused, naming the ones it has."""
    runs = tmp_path / "runs"
    entries = {"fid/samples/prior": fid(30.0, "inception-v3-compat"),
               "fid/samples/prior@classifier-mnist": fid(50.0)}  # fmt: skip
    write_run(runs, "wae", ["dataset=mnist", "regularizer=mmd"], entries)
    (table,) = build_tables(find_runs([runs]))
    notes_file = tmp_path / "notes.yaml"
    notes_file.write_text(
        "- model: WAE-MMD\n  column: fid/samples/prior@inception-v3-compat\n  note: inception.\n"
        "- model: WAE-MMD\n  column: fid/samples/prior\n  note: both.\n"
    )
    shown = {t.slug: t for t in metric_tables(table, load_notes(notes_file, table))}
    inception = shown["fid-inception-v3-compat-mnist-test-10000"]
    classifier = shown["fid-classifier-mnist-mnist-test-10000"]
    assert inception.rows[0][1][0].marks == ("†1", "†2")
    assert classifier.rows[0][1][0].marks == ("†2",)
    assert "†1 WAE-MMD, `fid/samples/prior@inception-v3-compat`: inception." in inception.footnotes
    assert not any(n.startswith("†1") for n in classifier.footnotes)
    notes_file.write_text("- model: WAE-MMD\n  column: fid/samples/prior@clip\n  note: x\n")
    with pytest.raises(
        NotesError, match=r"no table in the feature space 'clip'.*'classifier-mnist'"
    ):
        load_notes(notes_file, table)


def test_findings_are_ranked_capped_and_keyed_on_the_prior_not_the_name(tmp_path):
    """No model named AE: RAE (no prior) is the baseline because of `uses_prior`."""
    runs = tmp_path / "runs"
    settings = {"sampler": {"n_components": 10}}
    two_stage = {"sampler": {"steps": 50}}
    cases = {  # model: (N, GMM, 2-stage, latent MMD, MSE)
        "rae": (70.0, 35.0, 60.0, 0.30, 0.018),
        "mmd": (98.0, 65.0, 89.0, 0.04, 0.021),
        "w2_gaussian_per_sample": (69.0, 47.0, 71.0, 0.70, 0.019),
        "sliced": (87.0, 63.0, 90.0, 0.03, 0.020),
    }
    for name, (n, gmm, stage, mmd, mse) in cases.items():
        key = "fid/samples/gaussian" if name == "rae" else "fid/samples/prior"
        write_run(runs, name, ["dataset=mnist", f"regularizer={name}"], {
            f"{key}@classifier-mnist": fid(n),
            "fid/samples/gmm@classifier-mnist": fid(gmm, **settings),
            "fid/samples/two_stage@classifier-mnist": fid(stage, **two_stage),
            "latent_mmd/test": {"value": mmd, "codes": "deterministic", "num_codes": 5000},
            "mse/test": {"value": mse, "num_images": 10000, "real": "mnist:test"},
        })  # fmt: skip
    (table,) = build_tables(find_runs([runs]))
    found = findings(table)
    assert 3 <= len(found) <= LIMIT
    assert found[:2] == [  # ranked by the relative gap: 0.57, then 0.49
        "Trained toward the prior, yet no closer to it than RAE, a model without a prior "
        "(latent MMD 0.3): W-VAE 0.7.",
        "A law fitted to the codes after training beats every prior: RAE with GMM, FID 35.0, "
        "against the best prior samples, W-VAE's 69.0 (`classifier-mnist` features).",
    ]
    assert any(f.startswith("2-stage samples are behind GMM samples for every one of the 4")
               for f in found)  # fmt: skip
    assert not any(" AE" in f for f in found)


def test_the_index_is_generated_from_the_runs_with_the_prose_around_it(tmp_path):
    runs = tmp_path / "runs"
    for dataset in ("mnist", "fashion_mnist"):
        real = f"{dataset}:test"
        write_run(runs, f"{dataset}-ae", [f"dataset={dataset}", "regularizer=none"], {
            f"fid/samples/gaussian@classifier-{dataset}": fid(60.5, f"classifier-{dataset}",
                                                               real=real),
            f"fid/reconstructions@classifier-{dataset}": fid(30.25, f"classifier-{dataset}",
                                                              real=real),
            "latent_mmd/test": {"value": 0.571, "codes": "deterministic", "num_codes": 5000},
        })  # fmt: skip
    write_run(runs, "wae", ["dataset=mnist", "regularizer=mmd"], {
        "fid/samples/prior@classifier-mnist": fid(97.75), "latent_mmd/test": {
            "value": 0.042, "codes": "deterministic", "num_codes": 5000}})  # fmt: skip
    out = tmp_path / "results"
    (out / "mnist").mkdir(parents=True)
    (out / "mnist" / "notes.yaml").write_text(
        "- model: WAE-MMD\n  column: fid/samples/prior\n  note: the samples are blank.\n"
    )
    notes = tmp_path / "notes.md"
    notes.write_text("<!-- what this file is -->\n# Results\n\nIntro.\n\n"
                     "<!-- waebench: samples -->\n\nAfter the samples.\n")  # fmt: skip
    text = write_index(find_runs([runs]), out, notes).read_text()
    assert "what this file is" not in text and text.count("<!-- Generated by") == 1
    assert text.index("Intro.") < text.index("## Samples") < text.index("After the samples.")
    assert text.index("After the samples.") < text.index("| dataset |") < text.index("## Codes")
    assert "| model | Fashion-MNIST N | MNIST N |" in text
    assert "| AE | 60.5° | **60.5**° |" in text  # a column of one value has no best
    assert "| WAE-MMD | — | 97.8†1 |" in text and "†1 WAE-MMD, `fid/samples/prior`" in text
    (page_table,) = [t for t in metric_tables(build_tables(find_runs([runs]))[1])
                     if t.slug.startswith("fid")]  # fmt: skip
    assert page_table.rows[1][1][1].text == "97.8"  # the page's number, the same code
    notes.write_text("<!-- waebench: nonsense -->\n")
    with pytest.raises(NotesError, match="unknown block"):
        write_index(find_runs([runs]), out, notes)


@pytest.mark.skipif(
    not PDFLATEX,
    reason="needs pdflatex with booktabs: apt-get install texlive-latex-base "
    "texlive-latex-recommended (.ci/run installs them)",
)
def test_the_latex_tables_compile(tmp_path):
    """Every table a report writes, published ones and every mark (°, †, ‡, ±, λ, ᵃ), through
    pdflatex."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_run(runs, f"ae{seed}", ["dataset=mnist", "regularizer=none", f"seed={seed}"], {
            "fid/samples/gaussian": fid(60.0 + seed, "inception-v3-compat", checkpoint="best"),
            "fid/reconstructions@classifier-mnist": fid(30.0 + seed),
            "latent_mmd/test": {"value": 0.5, "codes": "deterministic", "num_codes": 5000},
            "odd_metric/with_under_score": {"value": 1.0, "note": "100% & #1"},
        })  # fmt: skip
    write_run(runs, "wae", ["dataset=mnist", "regularizer=mmd"], {
        "fid/samples/prior": fid(70.0, "inception-v3-compat")})  # fmt: skip
    out = tmp_path / "report"
    report([runs], out)
    document = tmp_path / "tables.tex"
    document.write_text(
        "\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
        f"\\input{{{out / 'mnist.tex'}}}\n\\end{{document}}\n"
    )
    done = subprocess.run(
        [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", document.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 1000
    latex = (out / "mnist.tex").read_text()
    assert "\\toprule" in latex and "$^\\circ$" in latex and "$\\pm$" in latex
    assert "\\textsuperscript{a}" in latex  # RAE's N beside ours, computed alike
    assert "$^\\ddagger$" in latex  # with what still differs
    rows = list(csv.reader((out / "mnist.csv").open()))
    assert rows[0][:3] == ["model", "runs_completed", "runs_total"]
    assert 'odd_metric/with_under_score {"checkpoint": "last", "note": "100% & #1"} mean' in rows[0]
