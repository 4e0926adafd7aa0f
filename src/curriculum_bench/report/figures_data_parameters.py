"""Data-parameter figures (docs/methods.md §4): what the learned temperatures look like.

The official repository's introspection plots (DP README, media/histogram_class_temperature_
over_iterations.png and its tensorboard histograms of clean vs corrupt instance σ):
- `instance_sigma_histogram`: learned instance σ of clean vs corrupted samples at several
  epochs (from each run's `data_parameters.npz` snapshots), one row per dataset/model/variant.
- `instance_sigma_mean`: mean instance σ of clean and corrupted samples per epoch (history),
  seeds as a band.
- `class_sigma`: every class's σ over training (history's `data_parameters/class_sigma`),
  one panel per dataset/model/variant.
Each figure draws the lowest seed of a group where one run stands for it.
"""

from __future__ import annotations

import numpy as np

from .figures import STYLE, Run, new_figure, no_data, plot_seed_band, register_figure

STUDIES = ("data_parameters", "data_parameters_imagenet")
KEY = "data_parameters"
MAX_ROWS = 8  # a figure stays readable; the remaining groups are named in the title


def groups_of(runs: list[Run]) -> dict[tuple, list[Run]]:
    """Runs by (dataset, model, variant) in config order, each group sorted by seed."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        m = run.metrics
        groups.setdefault((m["dataset"], m["model"], m["variant"]), []).append(run)
    return {k: sorted(v, key=lambda r: r.metrics["seed"]) for k, v in groups.items()}


def label(key: tuple, groups: dict) -> str:
    several_models = len({k[1] for k in groups}) > 1
    return f"{key[0]}/{key[1]}/{key[2]}" if several_models else f"{key[0]}/{key[2]}"


def load_sigmas(run: Run) -> dict | None:
    path = run.folder / "data_parameters.npz"
    if not path.exists():
        return None
    with np.load(path) as saved:
        return {k: saved[k] for k in saved.files}


def sigma_bins(sigmas: np.ndarray, count: int = 40) -> np.ndarray:
    """Bins even in log σ over the values present (within the clamp range [1/20, 20]):
    early in training every σ sits near its init, and the full range would hide it."""
    low, high = max(1 / 20, float(sigmas.min()) * 0.97), min(20.0, float(sigmas.max()) * 1.03)
    if high <= low * 1.01:
        low, high = low / 1.05, high * 1.05
    return np.geomspace(low, high, count + 1)


def instance_sigma_histogram(runs: list[Run]):
    groups = groups_of(runs)
    rows = []
    for key, members in groups.items():
        saved = load_sigmas(members[0])
        if saved is not None and "inst_sigma_snapshots" in saved and len(saved["snapshot_epochs"]):
            rows.append((key, members[0].metrics["seed"], saved))
    if not rows:
        fig, (ax,) = new_figure()
        no_data(ax, "instance data parameters")
        return fig
    shown, hidden = rows[:MAX_ROWS], rows[MAX_ROWS:]
    ncols = max(len(saved["snapshot_epochs"]) for _, _, saved in shown)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            len(shown), ncols, figsize=(2.8 * ncols, 2.3 * len(shown) + 0.8), squeeze=False, layout="constrained"
        )
    for r, (key, seed, saved) in enumerate(shown):
        corrupted = saved["corrupted"].astype(bool)
        bins = sigma_bins(saved["inst_sigma_snapshots"])
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(saved["snapshot_epochs"]):
                ax.axis("off")
                continue
            sigma = saved["inst_sigma_snapshots"][c]
            ax.hist(sigma[~corrupted], bins=bins, alpha=0.6, label=f"clean ({(~corrupted).sum()})")
            if corrupted.any():
                ax.hist(sigma[corrupted], bins=bins, alpha=0.6, label=f"corrupted ({corrupted.sum()})")
            if bins[-1] / bins[0] > 10:  # a log axis only where σ spans a decade
                ax.set_xscale("log")
            ax.set_title(f"{label(key, groups)} s{seed}, epoch {saved['snapshot_epochs'][c]}", fontsize=7)
            if r == len(shown) - 1:
                ax.set_xlabel("instance σ")
            if c == 0:
                ax.set_ylabel("samples")
                ax.legend()
    more = f" ({len(hidden)} more groups not shown)" if hidden else ""
    fig.suptitle(f"{runs[0].metrics['study']}: learned instance σ, clean vs corrupted{more}")
    return fig


def instance_sigma_mean(runs: list[Run]):
    fig, (ax,) = new_figure()
    groups = groups_of(runs)
    drawn = False
    for key, members in groups.items():
        for part in ("clean", "corrupted"):
            drawn |= plot_seed_band(ax, members, f"{KEY}/inst_sigma_{part}_mean", f"{label(key, groups)} {part}")
    if not drawn:
        no_data(ax, "instance data parameters")
    else:
        ax.legend()
    ax.set(xlabel="epoch", ylabel="mean instance σ", title=f"{runs[0].metrics['study']}: mean instance σ per epoch")
    return fig


def class_sigma(runs: list[Run]):
    groups = groups_of(runs)
    panels = [
        (key, members[0]) for key, members in groups.items() if f"{KEY}/class_sigma" in members[0].history.columns
    ][:MAX_ROWS]
    if not panels:
        fig, (ax,) = new_figure()
        no_data(ax, "class data parameters")
        return fig
    fig, axes = new_figure(ncols=len(panels), width=3.4 * len(panels), height=3.2)
    for ax, (key, run) in zip(axes, panels, strict=True):
        history = run.history.dropna(subset=[f"{KEY}/class_sigma"])
        sigma = np.array(history[f"{KEY}/class_sigma"].tolist())  # epochs x classes
        epochs = history["epoch"].to_numpy()
        ax.plot(epochs, sigma, color="tab:blue", alpha=max(0.05, min(0.5, 5 / sigma.shape[1])), linewidth=0.8)
        ax.plot(epochs, sigma.mean(1), color="black", linewidth=1.5, label="mean over classes")
        ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel="class σ", title=f"{label(key, groups)} s{run.metrics['seed']}")
        ax.legend()
    fig.suptitle(f"{runs[0].metrics['study']}: class σ over training ({sigma.shape[1]} classes)")
    return fig


for _study in STUDIES:
    register_figure(_study, "instance_sigma_histogram")(instance_sigma_histogram)
    register_figure(_study, "instance_sigma_mean")(instance_sigma_mean)
    register_figure(_study, "class_sigma")(class_sigma)
