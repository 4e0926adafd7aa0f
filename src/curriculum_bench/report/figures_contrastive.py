"""Contrastive study figures: the hardness schedule mu(t) and the contrastive loss per epoch."""

from __future__ import annotations

import pandas as pd

from .figures import new_figure, no_data, plot_seed_band, register_figure, seed_spread, variants_in_order


def _per_variant(runs, key: str, ylabel: str, title: str):
    fig, (ax,) = new_figure()
    drawn = False
    for variant in variants_in_order(runs):
        drawn |= plot_seed_band(ax, [r for r in runs if r.variant == variant], key, variant)
    if not drawn:
        no_data(ax, key)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.legend()
    return fig


@register_figure("contrastive", "mean_schedule")
def mean_schedule(runs):
    """Desired hardness mu of the negatives per epoch, per variant (ETH's mean schedules)."""
    return _per_variant(runs, "simclr/mean", "mu (cosine similarity)", "contrastive: hardness schedule mu(t)")


@register_figure("contrastive", "contrastive_loss")
def contrastive_loss(runs):
    """(Weighted) NT-Xent loss per epoch, per variant, mean over anchors."""
    return _per_variant(runs, "simclr/contrastive_loss", "loss per anchor", "contrastive: NT-Xent per epoch")


@register_figure("contrastive", "probe_accuracy")
def probe_accuracy(runs):
    """Linear-probe test accuracy at each evaluated epoch, per variant (ETH's model score)."""
    fig, (ax,) = new_figure()
    drawn = False
    for variant in variants_in_order(runs):
        points = [
            (int(e), acc, r.metrics["seed"])
            for r in runs
            if r.variant == variant
            for e, acc in (r.metrics.get("probe_per_epoch") or {}).items()
        ]
        if not points:
            continue
        stats = seed_spread(pd.DataFrame(points, columns=["epoch", "acc", "seed"]), "epoch", "acc")
        seeds = int(stats["count"].max())
        (line,) = ax.plot(
            stats["epoch"], 100 * stats["mean"], marker="o", label=f"{variant} ({seeds} seed{'s' * (seeds > 1)})"
        )
        if seeds > 1:
            ax.fill_between(stats["epoch"], 100 * stats["min"], 100 * stats["max"], color=line.get_color(), alpha=0.2)
        drawn = True
    if not drawn:
        no_data(ax, "linear-probe scores")
    ax.set(
        xlabel="pretraining epoch",
        ylabel="test accuracy, linear probe (%)",
        title="contrastive: linear evaluation over pretraining",
    )
    ax.legend()
    return fig
