"""Coreset-study figures (docs/methods.md §5): forgetting counts, coreset accuracy, removal curve.

The figure rule passes every finished run of the study (proxy, core and removal runs). The
forgetting histogram reads the proxies' own `forgetting.npz` from their run folders and
recounts with coreset/forgetting_stats.py (the never-learned treatment the proxies' study
used is in the stats artifact; the histogram shows raw events and the never-learned count
separately, so it needs neither).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .figures import Run, new_figure, no_data, register_figure, seed_spread

# A core run on the trainable proxy's selection, or (suffix) on a frozen proxy's.
CORE = re.compile(r"^(forgetting|reverse|random)_(finetune|frozen|frozen_dropout)(_by_frozen_proxy)?$")
BACKBONES = ("finetune", "frozen", "frozen_dropout")
BY_FROZEN_PROXY = "_by_frozen_proxy"
PROXIES = ("proxy", "frozen_proxy")  # the histogram shows the first that ran: the trainable proxy's
REMOVAL = re.compile(r"^remove_(?:(forgetting|random)_)?(\d+)$")
METHOD_LABELS = {
    "forgetting": "forgetting\n(most forgotten)",
    "reverse": "reverse\n(least forgotten)",
    "random": "random",
}


def selected_acc(run: Run) -> float:
    """Test accuracy at the best-val epoch when the run holds out `val`, else the final one."""
    return run.metrics.get("test_at_best_val_acc", run.metrics["final_acc"])


@register_figure("coreset", "forgetting_histogram")
def forgetting_histogram(runs: list[Run]):
    """How many examples were forgotten 0, 1, 2, ... times (summed over proxy seeds)."""
    from ..coreset.forgetting_stats import forgetting_events, load_run

    fig, (ax,) = new_figure()
    recorded = [r for r in runs if r.variant in PROXIES and (r.folder / "forgetting.npz").exists()]
    if not recorded:
        no_data(ax, "proxy forgetting records")
        return fig
    shown = next(v for v in PROXIES if any(r.variant == v for r in recorded))
    proxies = [r for r in recorded if r.variant == shown]
    records = [load_run(r.folder / "forgetting.npz") for r in proxies]
    events = sum(forgetting_events(rec["correct"]) for rec in records)
    never = sum(((rec["correct"] == 1).sum(0) == 0).astype(int) for rec in records) > 0
    learned_events = events[~never]
    counts = np.bincount(learned_events, minlength=1)
    ax.bar(np.arange(len(counts)), counts, color="tab:blue", label="learned examples")
    ax.bar([len(counts)], [int(never.sum())], color="tab:red", label="never learned in some run")
    ax.set_xticks(list(range(len(counts))) + [len(counts)], [str(i) for i in range(len(counts))] + ["never"])
    total = len(events)
    ax.set(
        xlabel="forgetting events (summed over proxy seeds)",
        ylabel="examples",
        title=f"coreset: forgetting events of {total} training examples, {len(proxies)} {shown} run(s); "
        f"{100 * counts[0] / total:.1f} % unforgettable",
    )
    ax.title.set_fontsize(9)
    ax.legend()
    return fig


@register_figure("coreset", "coreset_accuracy")
def coreset_accuracy(runs: list[Run]):
    """Test accuracy (at the best-val epoch) per selection method, fine-tuned vs frozen backbone."""
    fig, (ax,) = new_figure()
    rows = [
        (m.group(1) + (m.group(3) or ""), m.group(2), selected_acc(r)) for r in runs if (m := CORE.match(r.variant))
    ]
    if not rows:
        no_data(ax, "core runs")
        return fig
    frame = pd.DataFrame(rows, columns=["method", "backbone", "acc"])
    labels = METHOD_LABELS | {f"{m}{BY_FROZEN_PROXY}": f"{m}\n(frozen proxy)" for m in ("forgetting", "reverse")}
    methods = [m for m in labels if m in set(frame["method"])]
    backbones = [b for b in BACKBONES if b in set(frame["backbone"])]
    width = 0.8 / len(backbones)
    for j, backbone in enumerate(backbones):
        stats = seed_spread(frame[frame.backbone == backbone], "method", "acc").set_index("method").reindex(methods)
        x = np.arange(len(methods)) + (j - (len(backbones) - 1) / 2) * width
        spread = [100 * (stats["mean"] - stats["min"]).fillna(0), 100 * (stats["max"] - stats["mean"]).fillna(0)]
        ax.bar(
            x,
            100 * stats["mean"],
            width,
            yerr=spread,
            capsize=3,
            label=f"{backbone} backbone ({int(stats['count'].max())} seeds)",
        )
        for xi, mean in zip(x, stats["mean"], strict=True):
            ax.text(xi, 100 * mean + 1, f"{100 * mean:.1f}", ha="center", fontsize=7)
    ax.set_xticks(np.arange(len(methods)), [labels[m] for m in methods])
    ax.set(ylabel="test accuracy at best-val epoch (%)", title="coreset: accuracy by selection method")
    ax.legend()
    return fig


@register_figure("coreset", "removal_curve")
def removal_curve(runs: list[Run]):
    """FE's removal curve: test accuracy after removing k examples, forgetting order vs random.

    Each order's curve starts at `remove_0` (nothing removed), shared by both."""
    fig, (ax,) = new_figure()
    rows = []
    for r in runs:
        m = REMOVAL.match(r.variant)
        if m:
            k = int(m.group(2))
            orders = [m.group(1)] if m.group(1) else ["forgetting", "random"]  # remove_0 starts both
            rows += [(order, k, r.metrics["num_train"], selected_acc(r)) for order in orders]
    if not rows:
        no_data(ax, "removal runs")
        return fig
    frame = pd.DataFrame(rows, columns=["order", "k", "num_train", "acc"])
    labels = {"forgetting": "least forgettable removed first", "random": "random removal"}
    for order in ("forgetting", "random"):
        stats = seed_spread(frame[frame.order == order], "k", "acc")
        if stats.empty:
            continue
        percent = 100 * stats["k"] / frame["num_train"].iloc[0]
        (line,) = ax.plot(percent, 100 * stats["mean"], marker="o", label=labels[order])
        ax.fill_between(percent, 100 * stats["min"], 100 * stats["max"], color=line.get_color(), alpha=0.2)
    with_val = any("test_at_best_val_acc" in r.metrics for r in runs if REMOVAL.match(r.variant))
    ax.set(
        xlabel="training examples removed (%)",
        ylabel="test accuracy at best-val epoch (%)" if with_val else "final test accuracy (%)",
        title="coreset: removal curve (Toneva et al. 2019, §5.1)",
    )
    ax.legend()
    return fig
