"""Study tables from finished runs: mean ± std over seeds, with the split and the cost.

Reads only `metrics.json` files, which the engine writes last, so a killed or half-written
run never reaches a table. Markdown (tabulate) and CSV come from the same summary frame.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

KEYS = ["dataset", "model", "variant"]
REPORTED_FIELDS = {"dataset", "model", "variant", "acc", "source", "note"}


def load_reported(path: Path | None, study: str) -> list[dict]:
    """The numbers the original authors report for `study` (config/reported.yaml).

    Each entry: dataset, model, variant (the names paper.yaml uses), acc in %, source,
    and an optional note on the protocol. They are shown beside ours, never mixed in.
    """
    if path is None:
        return []
    entries = (yaml.safe_load(Path(path).read_text()) or {}).get(study) or []
    for i, entry in enumerate(entries):
        unknown = set(entry) - REPORTED_FIELDS
        missing = {"dataset", "model", "variant", "acc", "source"} - set(entry)
        if unknown or missing:
            raise ValueError(f"{path}: {study}[{i}]: "
                             + (f"unknown keys {sorted(unknown)}" if unknown else f"missing {sorted(missing)}"))
    return entries


def reported_for(summary: pd.DataFrame, reported: list[dict]) -> list[str]:
    """Per summary row, the reported accuracy for the same dataset/model/variant, or '—'."""
    index = {(e["dataset"], e["model"], e["variant"]): e for e in reported}
    cells = []
    for dataset, model, variant in zip(summary["dataset"], summary["model"], summary["variant"]):
        entry = index.get((dataset, model, variant))
        cells.append("—" if entry is None else f"{entry['acc']:.2f}")
    return cells


def reported_markdown(reported: list[dict]) -> list[str]:
    if not reported:
        return []
    frame = pd.DataFrame([{"dataset": e["dataset"], "model": e["model"], "variant": e["variant"],
                           "reported acc (%)": f"{e['acc']:.2f}", "source": e["source"],
                           "note": e.get("note", "")} for e in reported])
    return ["## Reported by the original authors (not measured here)", "",
            "Quoted from the papers and repositories (spec/methods.md); rows of the table "
            "above whose dataset, model and variant match show the same number in their "
            "`reported` column.", "", frame.to_markdown(index=False, disable_numparse=True), ""]


def load_runs(metrics_paths: list[Path]) -> pd.DataFrame:
    rows = []
    for path in metrics_paths:
        m = json.loads(Path(path).read_text())
        rows.append({**{k: m[k] for k in ("study", *KEYS, "seed", "final_acc", "best_acc",
                                          "best_epoch", "final_epoch", "eval_split", "num_train",
                                          "num_eval", "wall_s", "train_images_per_s",
                                          "peak_mem_mb", "device_name")},
                     "test_at_best_val_acc": m.get("test_at_best_val_acc", float("nan")),
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
        test_at_best_val_mean=("test_at_best_val_acc", "mean"),
        test_at_best_val_std=("test_at_best_val_acc", "std"),
        wall_s_mean=("wall_s", "mean"),
        images_per_s_mean=("train_images_per_s", "mean"),
        peak_mem_mb_max=("peak_mem_mb", "max"),
        device=("device_name", "first"),
    ).reset_index()
    return summary


def mean_std_percent(mean: float, std: float) -> str:
    return f"{100 * mean:.2f}" if pd.isna(std) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def to_markdown(summary: pd.DataFrame, study: str, reported: list[dict] | None = None) -> str:
    reported = reported or []
    table = pd.DataFrame({
        "dataset": summary["dataset"],
        "model": summary["model"],
        "variant": summary["variant"],
        "final acc (%)": [mean_std_percent(m, s) for m, s in zip(summary.final_acc_mean, summary.final_acc_std)],
        "best-epoch acc (%)": [mean_std_percent(m, s) for m, s in zip(summary.best_acc_mean, summary.best_acc_std)],
        **({"acc at best-val epoch (%)": [
            "—" if pd.isna(m) else mean_std_percent(m, s)
            for m, s in zip(summary.test_at_best_val_mean, summary.test_at_best_val_std)]}
           if summary.test_at_best_val_mean.notna().any() else {}),
        "reported acc (%)": reported_for(summary, reported),
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
        "original repositories report it); `at best-val epoch`, where a run holds out a "
        "validation split, is the accuracy at the epoch chosen on that split. Cost columns "
        "are means per run (peak MB: max).",
        "",
        table.to_markdown(index=False),
        "",
        *reported_markdown(reported),
    ]
    return "\n".join(lines)


def write_table(metrics_paths: list[Path], study: str, out_md: Path, out_csv: Path,
                reported_path: Path | None = None) -> pd.DataFrame:
    runs = load_runs(metrics_paths)
    summary = summarize(runs)
    reported = load_reported(reported_path, study)
    summary["reported_acc"] = [float("nan") if c == "—" else float(c) for c in reported_for(summary, reported)]
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text(to_markdown(summary, study, reported))
    summary.to_csv(out_csv, index=False)
    print(f"{study}: {len(runs)} runs -> {len(summary)} rows in {out_md}, {out_csv}", flush=True)
    return summary
