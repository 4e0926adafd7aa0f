"""Contrastive study figures: the hardness schedule mu(t) and the contrastive loss per epoch."""
from __future__ import annotations

from .figures import new_figure, no_data, plot_seed_band, register_figure, variants_in_order


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
