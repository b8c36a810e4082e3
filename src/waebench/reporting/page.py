"""`waebench-report --page`: one page comparing the models of one dataset side by side.

Writes `README.md` (Markdown) and `index.html` (the same content, opens offline, fits a
1,400-pixel window) with, beside them, the PNG figures and each table's LaTeX and CSV: the
scale of the runs, the metric tables in a paper's layout (`layout`), the findings
(`findings`), the figures of every model (recomputed from the checkpoints, `comparison`),
the failed runs and missing evaluations with the commands that fill them, and where every
number came from. `--notes` puts a person's remarks next to the numbers the figures
contradict (`notes`).
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import markdown
import yaml

from waebench.evaluation.definitions import definition_of
from waebench.reporting import comparison, provenance
from waebench.reporting.comparability import check_comparable
from waebench.reporting.findings import findings, seed_line
from waebench.reporting.layout import ShownTable, metric_tables, number, seeds_of
from waebench.reporting.notes import Notes, load_notes
from waebench.reporting.render import (
    attention_lines,
    failure_rows,
    markdown_rows,
    markdown_table,
    write_csv,
    write_latex,
)
from waebench.reporting.runs import Run
from waebench.reporting.table import Row, Table, build_tables
from waebench.run.record import NOT_MODEL_KEYS, flatten

# The WAE paper's scale, which the first line of every page compares its runs with.
PAPER_SCALE = (
    "the WAE paper trains width-128 networks for 100 epochs and scores 10,000 samples in "
    "Inception's feature space: that study is a GPU job (docs/gpu.md)"
)
NETWORKS = {"ConvEncoder": "DCGAN-like", "MLPEncoder": "MLP"}  # by the encoder's class
# How datasets are named in titles.
DATASET_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "celeba": "CelebA"}


def dataset_title(name: str) -> str:
    return DATASET_TITLES.get(name, name)


def scale_line(runs: list[Run], table: Table) -> str:
    """The page's first words: the scale of its runs beside the paper's (or the protocol of
    the paper all of them follow, `experiment=<paper>/...`)."""
    paper = protocol_of(runs)
    if paper is not None:
        changed = protocol_changes(runs, paper)
        follows = (
            f"Every run follows the protocol of the {paper.name} paper"
            if not changed
            else f"Every run starts from the protocol of the {paper.name} paper, changed by "
            + ", ".join(f"`{o}`" for o in changed)
        )
        return (
            f"**Scale:** {scale_facts(runs, table)}. {follows} (`experiment="
            f"{paper.experiments}/*`, docs/protocols.md); its published numbers stand beside "
            "ours where they were computed alike, else in a table of their own that says what "
            "differs."
        )
    return (
        f"**Scale:** {scale_facts(runs, table)}. The numbers compare these models with each "
        f"other at this scale, not with the paper's: {PAPER_SCALE}."
    )


def protocol_of(runs: list[Run]):
    """The paper (`waebench.papers.PAPERS`) whose `experiment=<paper>/...` every run was
    launched with; None when they do not share one."""
    from waebench.papers import PAPERS

    folders = set()
    for run in runs:
        named = [o.lstrip("+").split("=", 1)[1] for o in map(str, run.overrides or [])
                 if o.lstrip("+").startswith("experiment=")]  # fmt: skip
        if not named:
            return None
        folders.add(named[-1].split("/")[0])
    return next((p for p in PAPERS if {p.experiments} == folders), None)


def protocol_changes(runs: list[Run], paper) -> list[str]:
    """The launch overrides of `runs` that set a key of `paper`'s protocol table to another
    value than the protocol's (e.g. `trainer.max_epochs=150`), each once."""
    from waebench.papers import NOT_APPLICABLE, same_value

    settings = {setting.key: setting for setting in paper.settings if setting.in_config}
    changes = set()
    for run in runs:
        overrides = [o.lstrip("+~") for o in map(str, run.overrides or [])]
        named = [o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")]
        experiment = named[-1].split("/")[-1] if named else ""
        for override in overrides:
            key, _, text = override.partition("=")
            ours = settings[key].ours_for(experiment) if key in settings else NOT_APPLICABLE
            if ours is not NOT_APPLICABLE and not same_value(ours, yaml.safe_load(text)):
                changes.add(override)
    return sorted(changes)


def keep_protocols_numbers(table: Table, runs: list[Run]) -> None:
    """On a page of one paper's protocol (`protocol_of`), that paper's published numbers
    only: another paper's table of the same dataset ran another protocol."""
    paper = protocol_of(runs)
    if paper is not None:
        table.published = [v for v in table.published if v in paper.published]


def scale_facts(runs: list[Run], table: Table) -> str:
    """The scale of the runs: networks, epochs, seeds, the FID's feature space."""

    def values(key: str) -> str:
        found = dict.fromkeys(str(flatten(r.config).get(key, "?")) for r in runs)
        return "/".join(found) or "?"

    seeds = sorted({r.seed for r in runs}, key=str)
    scored = [dict(c.settings) for c in table.columns if c.definition.group == "FID"]
    extractors = dict.fromkeys(str(s.get("extractor")) for s in scored)
    images = dict.fromkeys(str(s.get("num_fake")) for s in scored)
    fid = (
        f"FID in the feature space of `{'`, `'.join(extractors)}` on {'/'.join(images)} images"
        if extractors
        else "no FID"
    )
    families = dict.fromkeys(
        NETWORKS.get(str(flatten(r.config).get("model.encoder._target_")).rsplit(".")[-1], "?")
        for r in runs
    )
    networks = f"{'/'.join(families)} networks of width {values('model.width')}"
    return (
        f"{len(runs)} runs; {networks}, d_z {values('model.latent_dim')}; {values('trainer.max_epochs')} epochs of batch "
        f"{values('dataset.batch_size')}; {len(seeds)} seed{'s' * (len(seeds) != 1)} "
        f"({', '.join(map(str, seeds))}); {fid}"
    )


def write_tables(tables: list[ShownTable], out_dir: Path) -> dict[str, str]:
    """Each table's LaTeX and CSV beside the page; slug -> the Markdown links to them."""
    links = {}
    for table in tables:
        write_latex([table], out_dir / f"{table.slug}.tex")
        write_csv(table, out_dir / f"{table.slug}.csv")
        links[table.slug] = f"[LaTeX]({table.slug}.tex) · [CSV]({table.slug}.csv)"
    return links


def config_differences(rows: list[Row]) -> list[str]:
    """Per model, the config keys (model-defining ones) whose values differ between rows."""
    ours = [r for r in rows if r.runs]
    flats = [flatten(r.runs[0].config) for r in ours]
    keys = sorted({k for f in flats for k in f})
    keys = [
        k
        for k in keys
        if not any(k == p or k.startswith(p + ".") for p in NOT_MODEL_KEYS)
        and len({repr(f.get(k)) for f in flats}) > 1
    ]
    if not keys:
        return ["None: one model, or rows that differ only in seed."]
    lines = [
        [row.label, "; ".join(f"`{k}`={flat[k]}" for k in keys if k in flat)]
        for row, flat in zip(ours, flats, strict=True)
    ]
    return markdown_rows(["model", "settings"], lines)


def provenance_lines(table: Table) -> list[str]:
    """Each number's `metrics.json` key, what it is and the settings that computed it."""
    out = []
    for column in table.columns:
        definition = definition_of(column.metric)
        settings = dict(column.settings)
        key = column.metric
        extractor = settings.get("extractor")
        if extractor and not str(extractor).startswith("inception"):
            key += f"@{extractor}"
        where = (
            "`test." + key.removeprefix("test/") + "`"
            if definition.record == "test"
            else (f"`eval.{key}`")
        )
        shown = "; ".join(f"{k} {number(v)}" for k, v in settings.items()) or "no settings"
        out.append(f"- {where}: {definition.title} ({shown})")
    return out


def figure_sections(rows, out_dir: Path, settings: comparison.FigureSettings) -> list[str]:
    entries = comparison.load_entries(rows)
    drawable = [e for e in entries if e.run is not None]
    if not drawable:
        return ["", "No completed run with a checkpoint: no figures."]
    datamodule = comparison.load_datamodule(drawable[0].run)
    n, s = settings.n_images, settings.seed
    return [
        *section(
            "Reconstructions",
            f"The same {n} test images (drawn with seed {s}) in the first row; below, each "
            "model's reconstruction of them (its lowest completed seed).",
            [
                comparison.reconstructions(
                    entries, datamodule, settings, out_dir / "reconstructions.png"
                )
            ],
        ),
        *section(
            "Interpolations",
            f"For the same {settings.pairs} pairs of test images (of two different classes where "
            "the data is labelled): the pixel-space cross-fade "
            "(1 − t) a + t b, then each model's decoding of (1 − t) enc(a) + t enc(b).",
            comparison.interpolations(entries, datamodule, settings, out_dir),
        ),
        *section(
            "Latent maps",
            f"The same {settings.points} test images: their raw pixels, then each model's codes, "
            f"coloured by class, over {settings.prior_points} samples of the model's prior "
            "(grey). PCA: the codes' first two principal axes (prior samples projected on them); "
            "t-SNE: codes and prior samples embedded together.",
            comparison.latent_maps(entries, datamodule, settings, out_dir),
        ),
        *section(
            "Samples",
            f"{n} decoded samples per model of each sampler its evaluation ran "
            "(eval.samplers): its prior, or for a model without one the Gaussian fitted to its "
            "training codes, and the ex-post samplers (GMM, two-stage VAE, flow) fitted to "
            "them; the evaluation's samplers, settings and seed, so these are the first images "
            "its FIDs scored.",
            [comparison.samples(entries, datamodule, settings, out_dir / "samples.png")],
        ),
        *section(
            "Training curves",
            "Per logged step, every completed seed; one colour per model; faint the logged "
            "values, bold their running mean over 10 logged steps. The penalties are different "
            "divergences (KL, MMD, adversarial, ...): compare their trends, not levels; an "
            "unbiased estimator's values scatter around 0 and can be negative.",
            [comparison.training_curves(rows, out_dir / "training_curves.png")],
        ),
    ]


def section(title: str, text: str, figures: list[Path]) -> list[str]:
    """A page section: its heading, what it shows, then its figures (beside the page)."""
    out = ["", f"## {title}", "", text]
    for path in figures:
        out += ["", f"![{path.stem.replace('_', ' ')}]({path.name})"]
    return out


def page_markdown(
    runs: list[Run],
    table: Table,
    out_dir: Path,
    settings: comparison.FigureSettings,
    command: str,
    started: float,
    notes: Notes,
    not_started: list[dict] = (),
) -> str:
    rows = table.rows
    completed = sum(r.status == "completed" for r in runs)
    seeds = seeds_of(rows)
    out = [
        f"# {dataset_title(table.dataset)}: {len(rows)} models side by side",
        "",
        scale_line(runs, table),
        "",
        f"{len(runs)} runs ({completed} completed) of {len(rows)} models. Bold: the best of "
        "a column (↓ lower, ↑ higher is better; → closest to). Each table's LaTeX (booktabs) "
        "and CSV are linked under it.",
    ]
    caveat = seed_line(seeds, notes.seed_spread)
    if caveat:
        out += ["", f"**{caveat}**"]
    tables = metric_tables(table, notes)
    links = write_tables(tables, out_dir)
    for shown in tables:
        out += ["", *markdown_table(shown, links[shown.slug])]
    out += ["", "## Findings", ""]
    found = findings(table)
    out += [f"{i}. {text}" for i, text in enumerate(found, 1)] or [
        "None: no model trained toward the prior misses it, and no fitted sampler beats the "
        "prior, by more than the spread between seeds."
    ]
    out += figure_sections(rows, out_dir, settings)
    out += ["", "## Failed and unfinished runs", ""]
    failed = failure_rows(runs, not_started)
    columns = ["run", "model", "seed", "status", "why", "overrides"]
    lines = [[Path(row["run"]).name] + [row[c] for c in columns[1:]] for row in failed]
    out += markdown_rows(columns, lines) if failed else ["All runs completed."]
    attention = attention_lines(runs, [table])
    out += [""] + attention if attention else []
    out += ["", "## How these numbers were made", ""]
    window = provenance.span(runs)
    page_seconds = time.time() - started
    if window:
        first, last = window
        out.append(
            f"- Runs: first started {provenance.stamp(first)}, last finished "
            f"{provenance.stamp(last)} ({(last - first) / 60:.1f} min of training and evaluation, "
            f"from the run folders' file times)."
        )
    out.append(
        f"- This page: built {provenance.stamp(time.time())} in {page_seconds / 60:.1f} min."
    )
    out.append(f"- Machine (where the page was built): {provenance.machine()}.")
    out.append(f"- Command: `{command}`")
    out += [
        "",
        "Each row's runs, as launched (one seed shown per row; the wall times its record holds):",
        "",
    ]
    out += [
        f"- {r.label}: `{provenance.run_command(r.runs[0])}`{provenance.run_times(r.runs[0])}"
        for r in rows
        if r.runs
    ]
    out += ["", "### Settings that differ between the rows", "", *config_differences(rows)]
    out += ["", "### Where each number comes from", "", *provenance_lines(table)]
    out += ["", "### Software", ""]
    out += [f"- {name}: {version}" for name, version in provenance.versions().items()]
    return "\n".join(out) + "\n"


# Fits a 1,400-pixel window: long words and code wrap, tables shrink their text, images
# scale down. The tables are a paper's: rules above and below, none between cells.
STYLE = """
body { font-family: sans-serif; max-width: 1360px; margin: 1.5em auto; padding: 0 1em;
       line-height: 1.4; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 0.6em 0 0.4em; font-size: 0.88em;
        border-top: 2px solid #333; border-bottom: 2px solid #333; max-width: 100%; }
th { border-bottom: 1px solid #333; text-align: left; padding: 0.25em 0.7em; }
td { text-align: left; padding: 0.2em 0.7em; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #f6f6f6; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
code { background: #f4f4f4; font-size: 0.85em; word-break: break-all; }
"""
HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{style}</style></head>
<body>
{body}
</body></html>
"""


def write_html(text: str, title: str, path: Path) -> Path:
    """The Markdown `text` as a standalone HTML page."""
    body = markdown.markdown(text, extensions=["tables"])
    path.write_text(HTML.format(title=html.escape(title), style=STYLE, body=body))
    return path


def write_page(
    runs: list[Run],
    out_dir: str | Path,
    settings: comparison.FigureSettings | None = None,
    command: str = "",
    notes_path: str | Path | None = None,
    not_started: list[dict] = (),
) -> Path:
    """Write README.md, index.html, the figures and the tables' LaTeX and CSV for `runs`
    (one dataset) into `out_dir`, with the remarks of the `notes_path` file next to their
    numbers, and the sweep jobs that never started listed with the failed runs; returns
    index.html's path."""
    started = time.time()
    settings = settings or comparison.FigureSettings()
    check_comparable(runs)
    (table,) = build_tables(runs)
    keep_protocols_numbers(table, runs)
    notes = load_notes(notes_path, table) if notes_path else Notes()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = page_markdown(runs, table, out_dir, settings, command, started, notes, not_started)
    (out_dir / "README.md").write_text(text)
    return write_html(text, f"waebench: {dataset_title(table.dataset)}", out_dir / "index.html")
