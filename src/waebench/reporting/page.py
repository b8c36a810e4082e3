"""`waebench-report --page`: one page comparing the models of one dataset side by side.

Writes `README.md` (Markdown) and `index.html` (the same content, opens offline) with the
PNG figures beside them: the loss and FID tables (mean ± std over seeds, best marked),
reconstructions, interpolations, latent maps, samples and training curves of every model
(recomputed from the checkpoints, `comparison`), and where every number came from. Its first
line states the runs' scale; `--notes` puts a person's remarks next to the numbers that the
figures contradict.
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass
from pathlib import Path

import markdown
import yaml

from waebench.evaluation.evaluate import configured_samplers, sampler_settings
from waebench.reporting import comparison, provenance
from waebench.reporting.render import format_cell, markdown_rows, runs_done
from waebench.reporting.runs import Run
from waebench.reporting.table import NOT_MODEL_KEYS, Cell, Column, Row, Table, build_tables
from waebench.run.record import flatten

# Settings that must agree between all runs of one page: what the images are, and how FID
# was computed (per FID entry of metrics.json, extractor and sample counts are checked too);
# and the samplers the evaluations ran, with their settings (`sampler_settings_of`).
SAME_ON_A_PAGE = (
    "dataset.name", "dataset.image_size", "dataset.channels", "dataset.value_range",
    "eval.split", "eval.seed", "eval.inception.enabled", "eval.inception.num_samples",
    "eval.inception.num_real", "eval.classifier.enabled", "eval.classifier.num_samples",
    "eval.classifier.num_real", "eval.classifier.train_steps", "eval.fid.reconstructions",
    "eval.fid.interpolations", "eval.latent_mmd_codes",
)  # fmt: skip
# The loss table: (where in metrics.json, title, lower is better across models).
LOSS_COLUMNS = (
    ("test.rec", "test reconstruction cost", True),
    ("test.penalty", "test penalty (each model its own divergence)", False),
    ("eval.mse/test", "test MSE/pixel", True),
    ("eval.latent_mmd/test", "latent MMD to the prior (same estimator for all)", True),
    ("eval.mardia_skewness/test", "Mardia skewness of the codes (CWAE paper's)", True),
    ("eval.mardia_kurtosis/test", "Mardia kurtosis of the codes (CWAE paper's)", True),
)


# The WAE paper's scale, which the first line of every page compares its runs with.
PAPER_SCALE = (
    "the WAE paper trains width-128 networks for 100 epochs and scores 10,000 samples in "
    "Inception's feature space: that study is a GPU job (docs/gpu.md)"
)


class MixedRunsError(ValueError):
    """Runs that cannot share a page (another dataset, image size or FID setting)."""


@dataclass(frozen=True)
class CellNote:
    """A remark printed next to one number of a page (`--notes`): what the figures show
    that the number does not."""

    model: str
    column: str
    text: str


def load_notes(path: str | Path, table: Table) -> list[CellNote]:
    """Read a `--notes` YAML file: a list of `{model, column, note}`, where `model` is a row's
    model name and `column` a loss key of LOSS_COLUMNS or an FID metric (`fid/samples/prior`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notes file {path} does not exist; pass an existing YAML file")
    entries = yaml.safe_load(path.read_text())
    models = sorted({r.model for r in table.rows if not r.source})
    columns = [w for w, _, _ in LOSS_COLUMNS] + list(
        dict.fromkeys(c.metric for c in fid_columns(table) if not c.published)
    )
    if not isinstance(entries, list):
        raise MixedRunsError(f"notes file {path}: expected a list of {{model, column, note}}")
    notes = []
    for number, entry in enumerate(entries, 1):
        where = f"notes file {path}, entry {number}"
        if not isinstance(entry, dict) or set(entry) != {"model", "column", "note"}:
            raise MixedRunsError(f"{where}: expected exactly the keys model, column, note")
        if entry["model"] not in models:
            raise MixedRunsError(
                f"{where}: model {entry['model']!r} is not on this page; models: {models}"
            )
        if entry["column"] not in columns:
            raise MixedRunsError(
                f"{where}: column {entry['column']!r} is not on this page; columns: {columns}"
            )
        notes.append(CellNote(entry["model"], entry["column"], str(entry["note"]).strip()))
    return notes


def marked(text: str, row: Row, column: str, notes: list[CellNote]) -> str:
    """`text` followed by the number of each note on this cell (†1, †2...); a published
    row's cells take none (its model may be named like ours)."""
    marks = [
        f"†{i}"
        for i, n in enumerate(notes, 1)
        if (n.model, n.column) == (row.model, column) and not row.source
    ]
    return " ".join([text, *marks])


def note_lines(notes: list[CellNote], table: Table) -> list[str]:
    if not notes:
        return []
    titles = {w: t for w, t, _ in LOSS_COLUMNS} | {
        c.metric: c.title.split(" [")[0] for c in fid_columns(table) if not c.published
    }
    lines = ["", "What the figures show that a number does not (looked at by a person):", ""]
    return lines + [
        f"- †{i} {n.model}, {titles[n.column]}: {n.text}" for i, n in enumerate(notes, 1)
    ]


def scale_line(runs: list[Run], table: Table) -> str:
    """The page's first words: the scale of its runs (networks, epochs, seeds, the FID's
    feature space) beside the paper's."""

    def values(key: str) -> str:
        found = dict.fromkeys(str(flatten(r.config).get(key, "?")) for r in runs)
        return "/".join(found) or "?"

    seeds = sorted({r.seed for r in runs}, key=str)
    scored = [dict(c.settings) for c in fid_columns(table) if not c.published and c.settings]
    extractors = dict.fromkeys(str(s.get("extractor")) for s in scored)
    images = dict.fromkeys(str(s.get("num_fake")) for s in scored)
    fid = (
        f"FID in the feature space of `{'`, `'.join(extractors)}` on {'/'.join(images)} images"
        if extractors
        else "no FID"
    )
    return (
        f"**Scale:** {len(runs)} runs; DCGAN-like networks of width {values('model.width')}, "
        f"d_z {values('model.latent_dim')}; {values('trainer.max_epochs')} epochs of batch "
        f"{values('dataset.batch_size')}; {len(seeds)} seed{'s' * (len(seeds) != 1)} "
        f"({', '.join(map(str, seeds))}); {fid}. The numbers compare these models with each "
        f"other at this scale, not with the paper's: {PAPER_SCALE}."
    )


def page_settings(run: Run) -> dict[str, object]:
    """The run's values of SAME_ON_A_PAGE, its evaluation's samplers (as configured: `auto`
    is the same setting for every model) and those samplers' settings."""
    flat = flatten(run.config)
    values: dict[str, object] = {key: flat.get(key) for key in SAME_ON_A_PAGE}
    evaluation = run.config.get("eval") or {}
    names = configured_samplers(evaluation)
    values["eval.samplers"] = names
    for name, section in dict(sampler_settings(evaluation)).items():
        if name in names:
            values[f"eval.sampler.{name}"] = dict(section or {})
    return values


def check_comparable(runs: list[Run]) -> None:
    """Raise MixedRunsError listing every setting in which the runs differ."""
    problems = []
    per_run = [page_settings(run) for run in runs]
    for key in dict.fromkeys(k for values in per_run for k in values):
        values: dict[str, list[str]] = {}
        for run, settings in zip(runs, per_run, strict=True):
            values.setdefault(repr(settings.get(key)), []).append(run.run_dir.name)
        if len(values) > 1:
            problems.append(
                f"{key}: " + "; ".join(f"{v} in {', '.join(r)}" for v, r in values.items())
            )
    settings: dict[str, dict[str, list[str]]] = {}
    for run in runs:
        for name, entry in (run.metrics or {}).get("eval", {}).items():
            if not isinstance(entry, dict):
                continue
            if name.startswith(("fid/", "kid/")):
                shown = repr(
                    {k: entry.get(k) for k in ("extractor", "num_fake", "num_real", "real")}
                )
            elif name == "latent_mmd/test":  # an older evaluation scored a Gaussian's means
                shown = "codes recorded" if "codes" in entry else "codes not recorded (older)"
            else:
                continue
            settings.setdefault(name, {}).setdefault(shown, []).append(run.run_dir.name)
    for name, values in settings.items():
        if len(values) > 1:
            problems.append(
                f"{name}: " + "; ".join(f"{v} in {', '.join(r)}" for v, r in values.items())
            )
    if problems:
        raise MixedRunsError(
            "these runs cannot share one page, they differ in:\n  "
            + "\n  ".join(problems)
            + "\npass the runs of one dataset and one evaluation setting (e.g. one sweep "
            "folder), or re-evaluate the odd ones with `waebench-eval ckpt_path=<run> eval....`"
        )


def lookup(metrics: dict, where: str) -> float | None:
    section, key = where.split(".", 1)
    entry = (metrics.get(section) or {}).get(key)
    if isinstance(entry, dict):
        entry = entry.get("value")
    return None if entry is None else float(entry)


def loss_cells(row: Row) -> dict[str, Cell]:
    cells = {}
    for where, _, _ in LOSS_COLUMNS:
        values = [lookup(r.metrics or {}, where) for r in row.completed]
        cells[where] = Cell([v for v in values if v is not None])
    return cells


def best(cells: list[Cell | None]) -> float | None:
    means = [c.mean for c in cells if c is not None and c.n and not math.isnan(c.mean)]
    return min(means) if means else None


def shown(cell: Cell | None, row: Row, lowest: float | None) -> str:
    text = format_cell(cell, row)
    if lowest is not None and cell is not None and cell.n and cell.mean == lowest:
        return f"**{text}** ★"
    return text


def status_text(row: Row) -> str:
    """`completed/all`, then each run that did not complete, with its status."""
    odd = [f"seed {r.seed} {r.status}" for r in row.runs if r.status != "completed"]
    return runs_done(row) + (f" ({'; '.join(odd)})" if odd else "")


def loss_table(rows: list[Row], notes: list[CellNote]) -> list[str]:
    cells = {id(row): loss_cells(row) for row in rows}
    lowest = {
        where: best([cells[id(r)][where] for r in rows]) if ranked else None
        for where, _, ranked in LOSS_COLUMNS
    }
    lines = [
        [row.label, status_text(row)]
        + [
            marked(shown(cells[id(row)][w], row, lowest[w]), row, w, notes)
            for w, _, _ in LOSS_COLUMNS
        ]
        for row in rows
    ]
    return markdown_rows(["model", "runs", *(t for _, t, _ in LOSS_COLUMNS)], lines)


def fid_columns(table: Table) -> list[Column]:
    return [c for c in table.columns if c.metric.startswith(("fid/", "kid/"))]


def fid_table(table: Table, notes: list[CellNote]) -> list[str]:
    columns = fid_columns(table)
    ours = [r for r in table.rows if not r.source]
    lowest = {c: best([r.cells.get(c) for r in ours]) for c in columns}
    lines = [
        [row.label, status_text(row)]
        + [
            marked(
                shown(row.cells.get(c), row, None if row.source else lowest[c]),
                row,
                "" if c.published else c.metric,
                notes,
            )
            for c in columns
        ]
        for row in table.rows
    ]
    return markdown_rows(["model", "runs", *(c.title for c in columns)], lines)


def surprises(table: Table) -> list[str]:
    """Where a regularized model does not beat the plain AE (mean over seeds) on latent MMD
    or on the FID of its prior samples: the comparisons the regularizers exist to win. The
    AE's samples are those of its N column: its prior in older evaluations, else the
    Gaussian fitted to its codes (an AE has no prior)."""
    ours = [r for r in table.rows if not r.source]
    baseline = next((r for r in ours if r.model == "AE"), None)
    if baseline is None:
        return []
    mmd = Column("latent_mmd/test")
    checks = [(mmd, mmd, "latent MMD", "")]
    for prior in (c for c in fid_columns(table) if c.metric == "fid/samples/prior"):
        fitted = Column("fid/samples/gaussian", prior.settings)
        ae_column = prior if baseline.cells.get(prior, Cell()).n else fitted
        how = "" if ae_column is prior else ", samples of the Gaussian fitted to its codes"
        checks.append((prior, ae_column, prior.title, how))
    notes = []
    for column, ae_column, title, how in checks:
        ae = baseline.cells.get(ae_column)
        if ae is None or not ae.n:
            continue
        for row in ours:
            cell = row.cells.get(column)
            if row is not baseline and cell is not None and cell.n and cell.mean >= ae.mean:
                notes.append(
                    f"- {row.model} does not beat the AE on {title}: {format_cell(cell, row)} "
                    f"vs {format_cell(ae, baseline)}{f' (the AE{how})' if how else ''}."
                )
    return notes + ex_post_density_notes(table, baseline)


def ex_post_density_notes(table: Table, baseline: Row) -> list[str]:
    """Where the AE's samples from a Gaussian mixture fitted to its codes score a lower FID
    than every regularized model's prior samples (same feature space and sample counts)."""
    notes = []
    for prior in [c for c in fid_columns(table) if c.metric == "fid/samples/prior"]:
        ae_gmm = baseline.cells.get(Column("fid/samples/gmm", prior.settings))
        others = [
            (row, row.cells[prior])
            for row in table.rows
            if not row.source and row is not baseline and row.cells.get(prior, Cell()).n
        ]
        if ae_gmm is None or not ae_gmm.n or not others:
            continue
        row, cell = min(others, key=lambda other: other[1].mean)
        if ae_gmm.mean < cell.mean:
            notes.append(
                f"- The AE sampled from a Gaussian mixture fitted to its training codes "
                f"({format_cell(ae_gmm, baseline)}) beats every regularized model's prior "
                f"samples (best: {row.model}, {format_cell(cell, row)}) on {prior.title}."
            )
    return notes


def config_differences(rows: list[Row]) -> list[str]:
    """The config keys (model-defining ones) whose values differ between the rows."""
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
    header = ["key", *(r.model for r in ours)]
    return markdown_rows(header, [[k, *(str(f.get(k, "—")) for f in flats)] for k in keys])


def provenance_lines(table: Table) -> list[str]:
    """Each column's metrics.json key and settings (extractor, image counts, real split)."""
    out = [f"- `{w}` in each run's `metrics.json`: {t}" for w, t, _ in LOSS_COLUMNS]
    for column in fid_columns(table):
        if column.published:
            continue
        settings = dict(column.settings)
        key = column.metric
        if not str(settings.get("extractor", "")).startswith("inception"):
            key += f"@{settings.get('extractor')}"
        out.append(
            f"- `eval.{key}`: {column.title.split(' [')[0]}, feature extractor "
            f"`{settings.get('extractor')}`, {settings.get('num_fake')} generated images against "
            f"{settings.get('num_real')} real ones ({settings.get('real')})"
        )
    return out


def figure_sections(rows, out_dir: Path, settings: comparison.FigureSettings) -> list[str]:
    ours = [r for r in rows if not r.source]
    entries = comparison.load_entries(ours)
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
            "(eval.samplers): its prior, or for a model without one (the AE) the Gaussian "
            "fitted to its training codes, and the ex-post samplers (GMM, two-stage VAE, flow) "
            "fitted to them; the evaluation's samplers, settings and seed, so these are the "
            "first images its FIDs scored.",
            [comparison.samples(entries, datamodule, settings, out_dir / "samples.png")],
        ),
        *section(
            "Training curves",
            "Per logged step, every completed seed; one colour per model; faint the logged "
            "values, bold their running mean over 10 logged steps. The penalties are different "
            "divergences (KL, MMD, adversarial, ...): compare their trends, not levels; an "
            "unbiased estimator's values scatter around 0 and can be negative.",
            [comparison.training_curves(ours, out_dir / "training_curves.png")],
        ),
    ]


def section(title: str, text: str, figures: list[Path]) -> list[str]:
    """A page section: its heading, what it shows, then its figures (beside the page)."""
    out = ["", f"## {title}", "", text]
    for path in figures:
        out += ["", f"![{path.stem.replace('_', ' ')}]({path.name})"]
    return out


def page_markdown(
    runs, table, out_dir, settings, command: str, started: float, notes: list[CellNote]
) -> str:
    rows = table.rows
    completed = sum(r.status == "completed" for r in runs)
    seeds = sorted({str(r.seed) for r in runs})
    models = " vs ".join(r.model for r in rows if not r.source)
    out = [f"# {table.dataset}: {models}, side by side", "", scale_line(runs, table), ""]
    out.append(
        f"{len(runs)} runs ({completed} completed), seeds {', '.join(seeds)}. Cells: mean ± "
        "sample std over the completed seeds (n = seeds); ★ marks the lowest mean of a column "
        "(all these columns are lower-is-better)."
    )
    out += ["", "## Losses (test split)", "", *loss_table([r for r in rows if not r.source], notes)]
    out += ["", "## FID", "", *fid_table(table, notes), *note_lines(notes, table)]
    surprising = surprises(table)
    out += ["", "## What surprised us", ""]
    if not any(r.model == "AE" and not r.source for r in table.rows):
        surprising = surprising or [
            "- No plain AE (`regularizer=none`) among these runs to compare with."
        ]
    out += surprising or [
        "- Every regularized model beats the AE on latent MMD and on the FID of its samples."
    ]
    out += figure_sections(rows, out_dir, settings)
    out += ["", "## Failed and unfinished runs", ""]
    failed = [r for r in runs if r.status != "completed"]
    out += (
        markdown_rows(
            ["run", "model", "seed", "status", "error"],
            [
                [
                    r.run_dir.name,
                    r.model,
                    str(r.seed),
                    r.status,
                    r.error.splitlines()[0][:200] if r.error else "",
                ]
                for r in failed
            ],
        )
        if failed
        else ["All runs completed."]
    )
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
    out += ["", "Each row's runs, as launched (one seed shown per row):", ""]
    out += [f"- {r.model}: `{provenance.run_command(r.runs[0])}`" for r in rows if r.runs]
    out += ["", "### Settings that differ between the rows", "", *config_differences(rows)]
    out += ["", "### Where each number comes from", "", *provenance_lines(table)]
    out += ["", "### Software", ""]
    out += [f"- {name}: {version}" for name, version in provenance.versions().items()]
    return "\n".join(out) + "\n"


HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; }}
th {{ background: #eee; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0; }}
code {{ background: #f4f4f4; font-size: 0.85em; word-break: break-all; }}
</style></head>
<body>
{body}
</body></html>
"""


def write_page(
    runs: list[Run],
    out_dir: str | Path,
    settings: comparison.FigureSettings | None = None,
    command: str = "",
    notes_path: str | Path | None = None,
) -> Path:
    """Write README.md, index.html and the figures for `runs` (one dataset) into `out_dir`,
    with the remarks of the `notes_path` file next to their numbers; returns index.html's
    path."""
    started = time.time()
    settings = settings or comparison.FigureSettings()
    check_comparable(runs)
    (table,) = build_tables(runs)
    notes = load_notes(notes_path, table) if notes_path else []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = page_markdown(runs, table, out_dir, settings, command, started, notes)
    (out_dir / "README.md").write_text(text)
    body = markdown.markdown(text, extensions=["tables"])
    title = html.escape(f"waebench: {table.dataset}")
    path = out_dir / "index.html"
    path.write_text(HTML.format(title=title, body=body))
    return path
