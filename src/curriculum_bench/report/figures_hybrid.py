"""Hybrid-study figures (docs/methods.md §1): each LeRaC group's learning rate over the first epochs, and
the blur curriculum's sigma and blurred share per epoch, read from history.jsonl.

LeRaC's schedule is a pure function of time, so one run per dataset/model shows it; the
engine logs each group's LR at the epoch's last step (`lr`), and the hook logs its multiplier
at the first and last step (`lerac/lr_scale_first_step`, `lerac/lr_scale_last_step`), which
gives the LR at both ends of every epoch.
"""

from __future__ import annotations

from .figures import Run, new_figure, no_data, register_figure

EXTRA_EPOCHS = 3  # epochs shown after the curriculum ends, to see that nothing drops back


def _first_run_per_setting(runs: list[Run], method: str) -> dict[tuple, Run]:
    chosen: dict[tuple, Run] = {}
    for run in sorted(runs, key=lambda r: r.metrics["seed"]):
        m = run.metrics
        key = (m["dataset"], m["model"], m["variant"])
        if method in m["run"]["methods"] and key not in chosen:
            chosen[key] = run
    return chosen


def lerac_lr_points(run: Run) -> tuple[list[str], list[float], list[list[float]]]:
    """(group names, x in epochs, LR per group at x): both ends of each epoch."""
    k = run.metrics["run"]["methods"]["lerac"].get("lerac_epochs", 5)
    history = run.history.head(k + EXTRA_EPOCHS)
    names = list(history["lerac/groups"].iloc[0])
    xs, lrs = [], []
    for _, row in history.iterrows():
        last = list(row["lr"])
        base = last[0] / row["lerac/lr_scale_last_step"][0]  # the base schedule in this epoch
        xs += [row["epoch"] - 1, row["epoch"]]
        lrs += [[base * s for s in row["lerac/lr_scale_first_step"]], last]
    return names, xs, lrs


@register_figure("hybrid", "lerac_lr")
def lerac_learning_rates(runs: list[Run]):
    """Each block's LR (log scale) over the first epochs, one panel per dataset/model."""
    settings: dict[tuple, Run] = {}
    for (dataset, model, _), run in _first_run_per_setting(runs, "lerac").items():
        settings.setdefault((dataset, model), run)
    fig, axes = new_figure(ncols=max(len(settings), 1), width=6.4 * max(len(settings), 1))
    if not settings:
        no_data(axes[0], "LeRaC runs")
        return fig
    for ax, ((dataset, model), run) in zip(axes, settings.items(), strict=True):
        names, xs, lrs = lerac_lr_points(run)
        for j, name in enumerate(names):
            ax.plot(xs, [lr[j] for lr in lrs], label=name, marker=".", markersize=3)
        rule = run.metrics["run"]["methods"]["lerac"].get("rule", "paper")
        ax.set(
            yscale="log",
            xlabel="epoch",
            ylabel="learning rate",
            title=f"{dataset}/{model}: LeRaC ({rule}), {run.variant} seed {run.metrics['seed']}",
        )
        ax.legend(ncol=2)
    return fig


@register_figure("hybrid", "blur_schedule")
def blur_schedule(runs: list[Run]):
    """Blur sigma and share of blurred images per epoch, one line per blur variant."""
    fig, (sigma_ax, share_ax) = new_figure(ncols=2, width=11)
    chosen = _first_run_per_setting(runs, "blur")
    if not chosen:
        no_data(sigma_ax, "blur runs")
        return fig
    several = len({key[:2] for key in chosen}) > 1
    for (dataset, model, variant), run in chosen.items():
        label = f"{dataset}/{model}/{variant}" if several else variant
        h = run.history
        sigma_ax.plot(h["epoch"], h["blur/sigma"], label=label, marker=".", drawstyle="steps-mid")
        share_ax.plot(h["epoch"], h["blur/probability"], label=label, marker=".", drawstyle="steps-mid")
    sigma_ax.set(xlabel="epoch", ylabel="blur sigma (px)", title="blur sigma per epoch")
    share_ax.set(xlabel="epoch", ylabel="share of images blurred", title="blurred share per epoch", ylim=(-0.05, 1.05))
    sigma_ax.legend()
    return fig
