"""Every paper protocol is one table (waebench/papers/<paper>.py, docs/protocols.md), held to
the configs: each `experiment=<paper>_paper/*`, composed with the paper's table sweep, has
every row's value, every setting its files (and the sweep) make has a row, each published
number's estimator is the one our run of that experiment records, and the committed
docs/protocols.md is the generated text. Then the protocol options the experiments select:
the official initialisations and input noise, the estimators (reconstructions of sampled
codes, the RAE code's interpolation pairs, the best checkpoint), and their bad values."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import CONFIG_DIR, REPO, TINY, compose_config, compose_train_config
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from torch import nn

from waebench import samplers
from waebench.build import build_model
from waebench.config_check import ConfigValueError, check_config
from waebench.eval import evaluate_checkpoint
from waebench.evaluation import estimators
from waebench.evaluation.definitions import differences
from waebench.model import load_model
from waebench.papers import (
    NOT_APPLICABLE,
    PAPERS,
    Paper,
    PublishedValue,
    same_value,
)
from waebench.papers.document import markdown
from waebench.reporting.runs import Run
from waebench.train import train

# The splits' sizes (official ones; MNIST-like datasets with dataset.val_size=0 train on all 60,000).
SPLIT_IMAGES = {
    "mnist": {"train": 60_000, "test": 10_000},
    "fashion_mnist": {"train": 60_000, "test": 10_000},
    "celeba": {"train": 162_770, "val": 19_867, "test": 19_962},
}
ABSENT = object()


def experiment_names(paper: Paper) -> list[str]:
    """The paper's experiments: its folder's files but the shared protocols."""
    folder = CONFIG_DIR / "experiment" / paper.experiments
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.endswith("_protocol"))


def composed(paper_name: str, experiment: str, tmp: Path) -> dict:
    paper = next(p for p in PAPERS if p.name == paper_name)
    overrides = [f"experiment={paper.experiments}/{experiment}", f"sweep={paper.sweep}"]
    cfg = compose_train_config(tmp / paper.experiments / experiment, overrides)
    GlobalHydra.instance().clear()
    check_config(cfg)  # the paper's settings are valid ones
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[str, dict[str, dict]]:
    """{paper: {experiment: its composed config, resolved}}."""
    tmp = tmp_path_factory.mktemp("compose")
    return {
        paper.name: {name: composed(paper.name, name, tmp) for name in experiment_names(paper)}
        for paper in PAPERS
    }


def lookup(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ABSENT
        node = node[part]
    return node


def leaves(node, prefix: str = ""):
    """Dotted keys of the values a config file sets (a list is one value)."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from leaves(value, f"{prefix}.{name}" if prefix else str(name))
    else:
        yield prefix


def file_settings(path: Path, folder: Path) -> set[str]:
    """The keys `path` sets: its values, `<group>.` for each `override /<group>` of its
    defaults, and those of the experiment files it includes."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    keys = set(leaves({k: v for k, v in raw.items() if k != "defaults"}))
    for entry in raw.get("defaults", []):
        if isinstance(entry, dict):
            for name in entry:
                keys.add(name.removeprefix("override ").strip("/") + ".")
        elif entry != "_self_":
            keys |= file_settings(folder / f"{Path(entry).name}.yaml", folder)
    return keys


def set_keys(paper: Paper, experiment: str) -> set[str]:
    """What the experiment's files and the paper's sweep set (the sweep's `hydra` excepted)."""
    folder = CONFIG_DIR / "experiment" / paper.experiments
    sweep = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "sweep" / f"{paper.sweep}.yaml"))
    sweep_keys = set(leaves({k: v for k, v in sweep.items() if k != "hydra"}))
    return file_settings(folder / f"{experiment}.yaml", folder) | sweep_keys


def missing_rows(paper: Paper, experiment: str) -> list[str]:
    """Keys set for `experiment` that no row covering it holds (a group override: no row of
    a key in that group)."""
    rows = [s.key for s in paper.settings if s.in_config and s.covers(experiment)]
    return sorted(
        key
        for key in set_keys(paper, experiment)
        if not any(r == key or (key.endswith(".") and r.startswith(key)) for r in rows)
    )


def mismatches(paper: Paper, experiment: str, cfg: dict) -> list[str]:
    """Rows whose value for `experiment` is not the composed config's."""
    found = []
    for setting in paper.settings:
        ours = setting.ours_for(experiment)
        if not setting.in_config or ours is NOT_APPLICABLE:
            continue
        value = lookup(cfg, setting.key)
        if value is ABSENT:
            found.append(f"{setting.key}: not in the composed config")
        elif not same_value(ours, value):
            found.append(f"{setting.key}: the table says {ours!r}, the config has {value!r}")
    return found


def our_estimator(cfg: dict, metric: str) -> dict | None:
    """The estimator fields our evaluation of `cfg` records on `metric`, or None when it
    does not compute that metric."""
    evaluation, dataset = cfg["eval"], cfg["dataset"]["name"]
    splits = evaluation["fid"]["real_splits"] or [evaluation["split"]]
    fields = {
        "num_fake": evaluation["inception"]["num_samples"],
        "num_real": evaluation["inception"]["num_real"]
        or sum(SPLIT_IMAGES[dataset][s] for s in splits),
        "real": f"{dataset}:{'+'.join(splits)}",
        "checkpoint": evaluation["checkpoint"],
    }
    if metric.startswith("fid/samples/"):
        name = metric.removeprefix("fid/samples/")
        uses_prior = get_class(cfg["regularizer"]["_target_"]).uses_prior
        if name not in samplers.resolve(evaluation["samplers"], uses_prior):
            return None
        options = samplers.recorded_options(name, evaluation["sampler"])
        return {**fields, **({"sampler": options} if options else {})}
    source = metric.removeprefix("fid/")
    if not evaluation["fid"][source]:
        return None
    option = "reconstruction" if source == "reconstructions" else "interpolation"
    return {**fields, option: evaluation[option]}


def estimator_problems(value: PublishedValue, experiments: dict[str, dict]) -> list[str]:
    """Why our run of the published value's experiment does not compute its number alike
    (fields the paper does not state aside)."""
    matching = [
        cfg
        for name, cfg in experiments.items()
        if cfg["dataset"]["name"] == value.dataset
        and Run(Path(name), cfg, None).model == value.model
    ]
    if len(matching) != 1:
        return [f"{len(matching)} experiments of ours are {value.model} on {value.dataset}"]
    ours = our_estimator(matching[0], value.metric)
    if ours is None:
        return [f"our {value.model} on {value.dataset} computes no {value.metric}"]
    stated = {k: v for k, v in value.settings if v != "not stated"}
    return differences(ours, stated)


PAPER_EXPERIMENTS = [
    pytest.param(paper, name, id=f"{paper.name}-{name}")
    for paper in PAPERS
    for name in experiment_names(paper)
]


def test_every_paper_has_experiments_rows_and_a_sweep():
    for paper in PAPERS:
        assert experiment_names(paper) and paper.settings and paper.commit
        assert (CONFIG_DIR / "sweep" / f"{paper.sweep}.yaml").is_file(), paper.sweep
        names = experiment_names(paper)
        for setting in paper.settings:
            covered = [n for n in names if setting.ours_for(n) is not NOT_APPLICABLE]
            assert covered or not setting.in_config, f"{paper.name}: {setting.key} covers none"


@pytest.mark.parametrize(("paper", "experiment"), PAPER_EXPERIMENTS)
def test_each_setting_of_a_paper_experiment_is_a_row_of_its_table(configs, paper, experiment):
    cfg = configs[paper.name][experiment]
    assert mismatches(paper, experiment, cfg) == []
    assert missing_rows(paper, experiment) == []


def test_the_check_fails_on_a_missing_row_and_a_wrong_value(configs):
    """The two checks above can fail: a table without its `model.latent_dim` row misses a key
    the protocol sets; a row with another value than the config's is named."""
    paper = next(p for p in PAPERS if p.name == "WAE")
    without = dataclasses.replace(
        paper, settings=tuple(s for s in paper.settings if s.key != "model.latent_dim")
    )
    assert "model.latent_dim" in missing_rows(without, "mnist_wae_mmd")
    wrong = dataclasses.replace(
        paper,
        settings=tuple(
            dataclasses.replace(s, ours=16) if s.key == "model.latent_dim" else s
            for s in paper.settings
        ),
    )
    found = mismatches(wrong, "mnist_wae_mmd", configs["WAE"]["mnist_wae_mmd"])
    assert found == ["model.latent_dim: the table says 16, the config has 8"]


def test_each_published_number_stands_beside_ours_computed_alike(configs):
    for paper in PAPERS:
        for value in paper.published:
            problems = estimator_problems(value, configs[paper.name])
            assert problems == [], (paper.name, value.dataset, value.label, value.metric)


def test_a_published_number_names_what_differs_from_ours():
    """The comparison the reports use to put a published number beside ours: every setting
    both state, a sampler's options one by one; what still differs is the number's note."""
    rae = next(p for p in PAPERS if p.name == "RAE")
    value = rae.published[0]
    entry = {key: v for key, v in value.settings}
    assert differences(entry, dict(value.settings)) == []
    assert value.note.startswith("reconstructs 10,000 validation images")
    entry["checkpoint"] = "last"
    assert differences(entry, dict(value.settings)) == ["checkpoint best (ours: last)"]
    dpgmm = next(v for v in rae.published if v.metric == "fid/samples/dpgmm")
    ours = {**dict(dpgmm.settings), "sampler": {"n_components": 1, "max_iter": 100}}
    assert differences(ours, dict(dpgmm.settings)) == ["sampler n_components=10 (ours: 1)"]


def test_the_committed_protocols_page_is_the_generated_one():
    committed = (REPO / "docs" / "protocols.md").read_text()
    assert committed == markdown(PAPERS), "run `python -m waebench.papers` and commit"


# ----- the protocol options the experiments select -----


def conv_and_linear(network: nn.Module) -> list[nn.Module]:
    return [m for m in network.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]


def test_the_official_initialisations_and_batch_norm_constants(train_config):
    """`wae`: N(0, 0.01^2) weights, the encoder's convolutions truncated at 2 std, biases 0;
    `keras`: Glorot-uniform weights within their bound, biases 0; batch norm's momentum and
    eps as configured."""
    wae = build_model(train_config("model.width=16", "model.init=wae", "regularizer=gan"))
    for network in (wae.encoder, wae.decoder, wae.regularizer.adversary):
        for layer in conv_and_linear(network):
            assert layer.bias is None or not layer.bias.any()
            assert layer.weight.std().item() == pytest.approx(0.01, rel=0.2)
    assert all(
        m.weight.abs().max() <= 0.02 for m in wae.encoder.modules() if isinstance(m, nn.Conv2d)
    )
    keras = build_model(
        train_config(
            "model.width=16", "model.init=keras", "model.batch_norm={momentum: 0.01, eps: 1.0e-3}"
        )
    )
    for layer in conv_and_linear(keras.decoder):
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        assert layer.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out))
    norms = [m for m in keras.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all((m.momentum, m.eps) == (0.01, 1e-3) for m in norms)


def test_input_noise_reaches_the_encoder_in_training_only(train_config):
    cfg = train_config("model.input_noise=0.01")
    model = build_model(cfg)
    seen: list[torch.Tensor] = []
    forward = model.encoder.forward
    model.encoder.forward = lambda x: (seen.append(x), forward(x))[1]
    x = torch.rand(256, 1, cfg.dataset.image_size, cfg.dataset.image_size)
    model.train()
    model.codes(x)
    noise = seen[-1] - x
    assert noise.abs().max() <= 0.02 and noise.std().item() == pytest.approx(0.0088, rel=0.1)
    model.eval()
    model.codes(x)
    assert torch.equal(seen[-1], x)
    rae = build_model(train_config("+model.decoder.head_relu=false"))
    assert isinstance(rae.decoder.body[0], nn.ConvTranspose2d)


@pytest.fixture
def digits(train_config):
    datamodule = instantiate(train_config(run="data").dataset)
    datamodule.setup()
    return datamodule


def test_sampled_reconstructions_draw_the_posterior_and_deterministic_ones_do_not(
    train_config, digits
):
    images = digits.splits["test"][0][:64]
    vae = build_model(train_config("regularizer=kl")).eval()
    mean = estimators.reconstruct_images(vae, digits, images, 32, "mean")
    sample = estimators.reconstruct_images(vae, digits, images, 32, "sample", seed=3)
    assert not torch.equal(mean, sample)
    assert torch.equal(sample, estimators.reconstruct_images(vae, digits, images, 32, "sample", 3))
    ae = build_model(train_config("regularizer=none")).eval()
    assert torch.equal(
        estimators.reconstruct_images(ae, digits, images, 32, "mean"),
        estimators.reconstruct_images(ae, digits, images, 32, "sample"),
    )


def test_the_rae_pairs_use_each_code_at_most_three_times():
    pairs = estimators.pairs(1000, 1500, "rae", seed=0)
    assert pairs.shape == (1500, 2)
    assert torch.bincount(pairs.flatten(), minlength=1000).tolist() == [3] * 1000
    more = estimators.pairs(10, 20, "rae", seed=0)  # beyond 3n / 2: three more copies
    assert more.shape == (20, 2) and torch.bincount(more.flatten()).max() <= 6
    uniform = estimators.pairs(1000, 1500, "test_pairs", seed=0)
    assert (uniform[:, 0] != uniform[:, 1]).all()


def test_the_best_checkpoints_weights_are_the_ones_scored(train_config):
    cfg = train_config("regularizer=none")
    train(cfg)
    run = Path(cfg.paths.output_dir)
    last = load_model(run / "checkpoints" / "last.ckpt")
    model, label = estimators.weights_to_score(last, run, "best")
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert label == "best"
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, best["state_dict"][name])
    assert estimators.weights_to_score(last, run, "last") == (last, "last")


def test_estimator_options_are_refused_before_training(tmp_path):
    cases = [
        (["eval.checkpoint=newest"], "eval.checkpoint=newest: must be one of last, best"),
        (["eval.checkpoint=best", "~callbacks.best_checkpoint"], "writes no best checkpoint"),
        (["eval.checkpoint=best", "trainer.limit_val_batches=0"], "runs no validation"),
        (["eval.reconstruction=median"], "eval.reconstruction=median: must be one of mean"),
        (["eval.interpolation=random"], "eval.interpolation=random: must be one of test_pairs"),
    ]
    for i, (overrides, message) in enumerate(cases):
        run = tmp_path / f"run{i}"
        cfg = compose_train_config(run, [*TINY, *overrides])
        with pytest.raises(ConfigValueError, match=message):
            train(cfg)
        assert not run.exists()  # nothing trained, nothing written


def test_waebench_eval_refuses_best_for_a_run_without_one(train_config, tmp_path):
    cfg = train_config("~callbacks.best_checkpoint")
    train(cfg)
    run = Path(cfg.paths.output_dir)
    before = (run / "metrics.json").read_text()
    eval_cfg = compose_config(
        "eval", tmp_path / "eval", [f"ckpt_path={run}", "eval.checkpoint=best"]
    )
    with pytest.raises(FileNotFoundError, match="eval.checkpoint=best: .*valid values: last, best"):
        evaluate_checkpoint(eval_cfg)
    assert (run / "metrics.json").read_text() == before
    assert json.loads(before)["status"] == "completed"
