"""The report of a hyper-parameter search (a sweep folder holding `search.yaml`): the best
trials (the Pareto front of a multi-objective study), the failed and pruned trials with why,
and Optuna's own analysis as PNG: optimization history and parameter importances (and the
Pareto front)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

from waebench.search.study import (  # noqa: E402
    CANCELLED,
    PRUNED_BY,
    REASON,
    folder_of,
    load_study,
    read_search_file,
    shown,
)

log = logging.getLogger(__name__)
TOP = 10


def search_report(paths: list[str | Path], out_dir: Path) -> str:
    """The Markdown sections of every search folder among `paths` ('' when there is none)."""
    sections = []
    for path in map(Path, paths):
        description = read_search_file(path)
        if description is not None:
            sections.append(study_section(path, description, Path(out_dir)))
    return "".join("\n" + section for section in sections)


def study_section(sweep_dir: Path, description: dict[str, Any], out_dir: Path) -> str:
    study = load_study(description)
    objectives = list(description["objective"])
    trials = [t for t in study.get_trials() if not t.user_attrs.get(CANCELLED)]
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    name = description["study_name"]
    out = [
        f"## Search: {name}",
        "",
        f"Study `{name}` in `{shown(description['storage'])}`: "
        + ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        + f" of {description['n_trials']} trials asked for. Objective: "
        + ", ".join(f"{m} ({d})" for m, d in zip(objectives, description["direction"], strict=True))
        + ".",
        "",
    ]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(objectives) == 1:
        sign = 1 if description["direction"][0] == "minimize" else -1
        best = sorted(complete, key=lambda t: sign * t.values[0])[:TOP]
        out += [f"### Best trials (top {TOP})", ""]
    else:
        best = sorted(study.best_trials, key=lambda t: t.number)
        out += ["### Pareto front", ""]
    out += [trials_table(best, objectives, sweep_dir), ""]
    for title, figure in figures(
        study, description["direction"], objectives, out_dir / f"search-{name}"
    ):
        out += [f"![{title}]({figure.relative_to(out_dir)})", ""]
    others = [t for t in trials if t.state in (TrialState.FAIL, TrialState.PRUNED)]
    out += ["### Failed and pruned trials", ""]
    if not others:
        out += ["None.", ""]
    else:
        out += ["| trial | state | folder | why |", "|---|---|---|---|"]
        for t in others:
            why = str(t.user_attrs.get(PRUNED_BY) or t.user_attrs.get(REASON, "")).replace(
                "|", "\\|"
            )
            out.append(f"| {t.number} | {t.state.name.lower()} | {folder_of(t)} | {why} |")
        out.append("")
    return "\n".join(out)


def trials_table(trials: list[FrozenTrial], objectives: list[str], sweep_dir: Path) -> str:
    params = sorted({p for t in trials for p in t.params})
    lines = [
        "| " + " | ".join(["trial", *objectives, *params, "seed", "folder"]) + " |",
        "|" + "---|" * (len(objectives) + len(params) + 3),
    ]
    for t in trials:
        cells = [str(t.number), *(f"{v:.5g}" for v in t.values)]
        cells += [format_param(t.params.get(p)) for p in params]
        cells += [str(seed_of(sweep_dir / folder_of(t))), folder_of(t)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def seed_of(run_dir: Path) -> Any:
    config = run_dir / "config.yaml"
    return OmegaConf.load(config).get("seed") if config.is_file() else "n/a"


def figures(
    study: optuna.Study, directions: list[str], objectives: list[str], stem: Path
) -> list[tuple[str, Path]]:
    """Optimization history and parameter importances per objective, and the Pareto front.
    Optuna's importance evaluator (PED-ANOVA) takes low targets as good: a maximized objective
    of a multi-objective study is negated for it."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    plots = []
    for i, (metric, direction) in enumerate(zip(objectives, directions, strict=True)):
        target = None if len(objectives) == 1 else (lambda t, i=i: t.values[i])
        sign = -1 if direction == "maximize" else 1
        good_low = None if target is None else (lambda t, i=i, sign=sign: sign * t.values[i])
        safe = metric.replace("/", "_").replace("@", "_")
        plots += [
            (f"Optimization history: {metric}", f"{stem.name}-history-{safe}.png",
             lambda t=target, m=metric: optuna_plots.plot_optimization_history(study, target=t, target_name=m)),
            (f"Parameter importances: {metric}", f"{stem.name}-importances-{safe}.png",
             lambda t=good_low, m=metric: optuna_plots.plot_param_importances(study, target=t, target_name=m)),
        ]  # fmt: skip
    if len(objectives) in (2, 3):
        plots.append(
            ("Pareto front", f"{stem.name}-pareto.png",
             lambda: optuna_plots.plot_pareto_front(study, target_names=objectives)),
        )  # fmt: skip
    written = []
    for title, filename, plot in plots:
        try:
            axes = plot()
        except Exception as error:  # e.g. importances need two completed trials
            log.warning("%s: not drawn (%s)", title, error)
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        path = stem.parent / filename
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append((title, path))
    return written
