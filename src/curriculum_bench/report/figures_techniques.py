"""Techniques study figures: the curricula's own schedules, per epoch.

`schedules`: left, the dropout probability each progressive-dropout variant trained with
(`progressive_dropout/p_<kind>`, the epoch's last step); right, the share of the unlabelled
pool that trained with pseudo-labels (`<method>/pool_fraction_used`) for the self-labelling
variants. Test accuracy per epoch per variant is the common `accuracy` figure.
"""

from __future__ import annotations

from .figures import Run, new_figure, no_data, plot_seed_band, register_figure, variants_in_order

DROPOUT_KEYS = tuple(f"progressive_dropout/p_{kind}" for kind in ("input", "conv", "fc"))
POOL_KEYS = ("self_labeling/pool_fraction_used", "curriculum_labeling/pool_fraction_used")


def _plot_keys(ax, runs: list[Run], keys: tuple[str, ...], scale: float) -> bool:
    drawn = False
    for variant in variants_in_order(runs):
        members = [r for r in runs if r.variant == variant]
        present = [k for k in keys if any(k in r.history.columns for r in members)]
        for key in present:
            label = variant if len(present) == 1 else f"{variant} ({key.rsplit('_', 1)[-1]})"
            drawn |= plot_seed_band(ax, members, key, label, scale)
    return drawn


@register_figure("techniques", "schedules")
def schedules(runs: list[Run]):
    fig, (dropout_ax, pool_ax) = new_figure(ncols=2, width=11.0)
    if _plot_keys(dropout_ax, runs, DROPOUT_KEYS, 1.0):
        dropout_ax.legend()
    else:
        no_data(dropout_ax, "dropout schedule")
    dropout_ax.set(xlabel="epoch", ylabel="dropout p", title="progressive dropout: p per epoch")
    if _plot_keys(pool_ax, runs, POOL_KEYS, 100.0):
        pool_ax.legend()
    else:
        no_data(pool_ax, "pseudo-labels")
    pool_ax.set(
        xlabel="epoch",
        ylabel="pool trained with pseudo-labels (%)",
        title="self-labelling: pseudo-labelled share per epoch",
    )
    return fig
