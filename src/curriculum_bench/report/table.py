"""Study tables from finished runs: mean ± std over seeds, with the split and the cost.

Reads only `metrics.json` files, which the engine writes last, so a killed or half-written
run never reaches a table. Markdown (tabulate) and CSV come from the same summary frame.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

KEYS = ["dataset", "model", "variant"]


def load_runs(metrics_paths: list[Path]) -> pd.DataFrame:
    rows = []
    for path in metrics_paths:
        m = json.loads(Path(path).read_text())
        rows.append({**{k: m[k] for k in ("study", *KEYS, "seed", "final_acc", "best_acc",
                                          "best_epoch", "final_epoch", "eval_split", "num_train",
                                          "num_eval", "wall_s", "train_images_per_s",
                                          "peak_mem_mb", "device_name")},
                     "source": m["dataset_source"].get("source", m["dataset"])})
    if not rows:
        raise ValueError("no runs to tabulate")
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, variant), in the order the runs were given."""
    grouped = runs.groupby(KEYS, sort=False)
    summary = grouped.agg(
        seeds=("seed", "count"),
        seed_list=("seed", lambda s: " ".join(str(v) for v in sorted(s))),
        epochs=("final_epoch", "max"),
        split=("eval_split", "first"),
        num_train=("num_train", "first"),
        num_eval=("num_eval", "first"),
        final_acc_mean=("final_acc", "mean"),
        final_acc_std=("final_acc", "std"),   # sample std (ddof 1); NaN for one seed
        best_acc_mean=("best_acc", "mean"),
        best_acc_std=("best_acc", "std"),
        wall_s_mean=("wall_s", "mean"),
        images_per_s_mean=("train_images_per_s", "mean"),
        peak_mem_mb_max=("peak_mem_mb", "max"),
        device=("device_name", "first"),
    ).reset_index()
    return summary


def mean_std_percent(mean: float, std: float) -> str:
    return f"{100 * mean:.2f}" if pd.isna(std) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def to_markdown(summary: pd.DataFrame, study: str) -> str:
    table = pd.DataFrame({
        "dataset": summary["dataset"],
        "model": summary["model"],
        "variant": summary["variant"],
        "final acc (%)": [mean_std_percent(m, s) for m, s in zip(summary.final_acc_mean, summary.final_acc_std)],
        "best-epoch acc (%)": [mean_std_percent(m, s) for m, s in zip(summary.best_acc_mean, summary.best_acc_std)],
        "split": [f"{s} (n={n})" for s, n in zip(summary.split, summary.num_eval)],
        "seeds": [f"{n} ({lst})" for n, lst in zip(summary.seeds, summary.seed_list)],
        "epochs": summary["epochs"],
        "wall s": summary["wall_s_mean"].round(1),
        "train img/s": summary["images_per_s_mean"].round(0).astype(int),
        "peak MB": summary["peak_mem_mb_max"].round(0).astype(int),
        "device": summary["device"],
    })
    lines = [
        f"# {study}",
        "",
        "Measured here. Accuracy in % on the named split, mean ± sample std over seeds; "
        "`best-epoch` is the best per-epoch accuracy on that same split (optimistic, as the "
        "original repositories report it). Cost columns are means per run (peak MB: max).",
        "",
        table.to_markdown(index=False),
        "",
    ]
    return "\n".join(lines)


def write_table(metrics_paths: list[Path], study: str, out_md: Path, out_csv: Path) -> pd.DataFrame:
    runs = load_runs(metrics_paths)
    summary = summarize(runs)
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text(to_markdown(summary, study))
    summary.to_csv(out_csv, index=False)
    print(f"{study}: {len(runs)} runs -> {len(summary)} rows in {out_md}, {out_csv}", flush=True)
    return summary
