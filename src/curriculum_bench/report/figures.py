"""Study figures from finished runs, drawn in one matplotlib style.

A figure is a function registered for a study under a name: it receives the study's
finished runs (metrics.json, history.jsonl as a frame, and the run folder for artifacts
such as `data_parameters.npz`) and returns a matplotlib Figure. Every study gets
`accuracy` (evaluation accuracy per epoch, one line per variant, seeds as a band);
study-specific figures live in `report/figures_<study>.py`, found automatically.

The names are declared in `report/figure_names.py`, which the Snakefile reads while it
plans without importing pandas or matplotlib; figure modules import matplotlib inside their
functions only.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .figure_names import ALL_STUDIES, FIGURE_NAMES
from .figure_names import figure_names as declared_figure_names

FIGURES: dict[str, dict[str, Callable]] = {}


@dataclass
class Run:
    metrics: dict
    history: pd.DataFrame
    folder: Path

    @property
    def variant(self) -> str:
        return self.metrics["variant"]


def register_figure(study: str, name: str):
    """File a figure function for `study` ("*" for every study) under `name`."""

    def add(fn):
        if name not in FIGURE_NAMES.get(study, ()):
            raise ValueError(f"figure {study}/{name} is not declared in report/figure_names.py")
        figures = FIGURES.setdefault(study, {})
        if name in figures:
            raise ValueError(f"figure {study}/{name} is registered twice")
        figures[name] = fn
        return fn

    return add


def _load_figure_modules() -> None:
    package = Path(__file__).parent
    for module in pkgutil.iter_modules([str(package)]):
        if module.name.startswith("figures_"):
            importlib.import_module(f"{__package__}.{module.name}")


def figure_names(study: str) -> list[str]:
    """The figures the workflow draws for `study`, common ones first (report/figure_names.py),
    each with its registered function."""
    _load_figure_modules()
    return declared_figure_names(study)


def load_runs(metrics_paths: list[Path]) -> list[Run]:
    runs = []
    for path in metrics_paths:
        path = Path(path)
        history = pd.read_json(path.parent / "history.jsonl", lines=True)
        runs.append(Run(json.loads(path.read_text()), history, path.parent))
    return runs


STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "savefig.bbox": "tight",
}


def new_figure(ncols: int = 1, width: float = 6.4, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])


def variants_in_order(runs: list[Run]) -> list[str]:
    return list(dict.fromkeys(r.variant for r in runs))


def seed_spread(values: pd.DataFrame, by: str, key: str) -> pd.DataFrame:
    """Per `by`: mean, lowest and highest over seeds, and the seed count.

    Bands span min-max over seeds, not mean ± std: with three seeds a std band claims values
    no seed reached, and an accuracy band would cross 100 % or fall below 0."""
    return values.groupby(by)[key].agg(["mean", "min", "max", "count"]).reset_index()


def plot_seed_band(ax, runs: list[Run], key: str, label: str, scale: float = 1.0) -> bool:
    """Mean over seeds of history column `key` per epoch, with a min-max band over seeds; False if absent."""
    frames = [r.history[["epoch", key]].assign(seed=r.metrics["seed"]) for r in runs if key in r.history.columns]
    if not frames:
        return False
    values = pd.concat(frames).dropna()
    if values.empty or not pd.api.types.is_numeric_dtype(values[key]):
        return False
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    stats = seed_spread(values, "epoch", key)
    seeds = int(stats["count"].max())
    (line,) = ax.plot(stats["epoch"], stats["mean"] * scale, label=f"{label} ({seeds} seed{'s' * (seeds > 1)})")
    if seeds > 1:
        ax.fill_between(stats["epoch"], stats["min"] * scale, stats["max"] * scale, color=line.get_color(), alpha=0.2)
    return True


def no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in these runs", ha="center", va="center", transform=ax.transAxes)


@register_figure(ALL_STUDIES, "accuracy")
def accuracy_per_epoch(runs: list[Run]):
    """Evaluation accuracy per epoch, per dataset/model/variant; mean over seeds, band min-max over seeds."""
    fig, (ax,) = new_figure()
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        m = run.metrics
        groups.setdefault((m["dataset"], m["model"], m["variant"]), []).append(run)
    several = len({key[:2] for key in groups}) > 1
    for (dataset, model, variant), members in groups.items():
        plot_seed_band(ax, members, "eval_acc", f"{dataset}/{model}/{variant}" if several else variant, 100)
    split = runs[0].metrics.get("eval_split", "test")
    if "online_probe_final_acc" in runs[0].metrics:  # contrastive: history holds the online probe
        split = "test (online linear probe)"
    ax.set(
        xlabel="epoch", ylabel=f"{split} accuracy (%)", title=f"{runs[0].metrics['study']}: {split} accuracy per epoch"
    )
    ax.legend()
    return fig


def write_figure(study: str, name: str, metrics_paths: list[Path], out_png: Path) -> None:
    figures = {**FIGURES.get(ALL_STUDIES, {})}
    _load_figure_modules()
    figures.update(FIGURES.get(study, {}))
    if name not in figures:
        raise KeyError(f"unknown figure {name!r} for study {study!r}; have {sorted(figures)}")
    runs = load_runs(metrics_paths)
    if not runs:
        raise ValueError("no runs to draw")
    fig = figures[name](runs)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    fig.savefig(out_png.with_suffix(".svg"))
    print(f"{study}/{name}: {len(runs)} runs -> {out_png} (+ .svg)", flush=True)
