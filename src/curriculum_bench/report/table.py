"""Study tables from finished runs: mean ± std over seeds, with the split and the cost.

Reads only `metrics.json` files, which the engine writes last, so a killed or half-written
run never reaches a table. Markdown (tabulate) and CSV come from the same summary frame.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
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


NO_REPORTED = ("No reported numbers for this study in config/reported.yaml, so the table has "
               "no `reported` column.")
REPORTED_TITLE = "Reported by the original authors (not measured here)"
REPORTED_INTRO = ("Quoted from the papers and repositories (spec/methods.md); rows of the table "
                  "above whose dataset, model and variant match show the same number in their "
                  "`reported` column.")


def reported_frame(reported: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": e["dataset"], "model": e["model"], "variant": e["variant"],
                          "reported acc (%)": f"{e['acc']:.2f}", "source": e["source"],
                          "note": e.get("note", "")} for e in reported])


def reported_markdown(reported: list[dict]) -> list[str]:
    if not reported:
        return [NO_REPORTED, ""]
    return [f"## {REPORTED_TITLE}", "", REPORTED_INTRO, "",
            reported_frame(reported).to_markdown(index=False, disable_numparse=True), ""]


@dataclass(frozen=True)
class TableOptions:
    """A study's `report:` section: extra columns for what that study is about."""

    per_class: tuple[int, ...] = ()   # final accuracy of these classes (weighted sampling: 0)
    at_epochs: tuple[int, ...] = ()   # test accuracy at these epochs (DP reports epoch 84)
    baseline: str = "baseline"        # the variant the Δ column compares against
    expected_seeds: tuple[int, ...] = ()  # the config's seeds (set by the workflow): fewer is flagged


def read_history(run_dir: Path) -> list[dict]:
    """The run's per-epoch records; [] when it has none (a probe's score, hand-made metrics)."""
    path = run_dir / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def extra_accuracies(m: dict, history: list[dict], options: TableOptions) -> dict:
    extra = {}
    for c in options.per_class:
        per_class = m.get("final_acc_per_class") or []
        extra[f"class {c}"] = per_class[c] if c < len(per_class) else float("nan")
    eval_acc = {record["epoch"]: record["eval_acc"] for record in history}
    for epoch in options.at_epochs:
        extra[f"epoch {epoch}"] = eval_acc.get(epoch, float("nan"))  # NaN: the run is shorter
    return extra


def diverged(m: dict, history: list[dict]) -> bool:
    """A run whose training loss became NaN/inf: its accuracy is real but flagged in the table."""
    if not math.isfinite(m["final_acc"]):
        return True
    losses = [record.get("train_loss") for record in history]
    return any(loss is None or not math.isfinite(loss) for loss in losses)


def load_runs(metrics_paths: list[Path], options: TableOptions = TableOptions()) -> pd.DataFrame:
    rows = []
    for path in metrics_paths:
        m = json.loads(Path(path).read_text())
        history = read_history(Path(path).parent)
        rows.append({**{k: m[k] for k in ("study", *KEYS, "seed", "final_acc", "best_acc",
                                          "best_epoch", "final_epoch", "eval_split", "num_train",
                                          "num_eval", "wall_s", "train_images_per_s",
                                          "peak_mem_mb", "device_name")},
                     "test_at_best_val_acc": m.get("test_at_best_val_acc", float("nan")),
                     "diverged": diverged(m, history),
                     **{f"acc_{k}": v for k, v in extra_accuracies(m, history, options).items()},
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
        diverged_runs=("diverged", "sum"),
        **{f"{col}_{stat}": (col, stat) for col in runs.columns if col.startswith("acc_")
           for stat in ("mean", "std")},
    ).reset_index()
    return summary


def delta_to_baseline(summary: pd.DataFrame, baseline: str) -> list[float]:
    """Final accuracy minus the baseline variant's, same dataset and model (percentage points)."""
    base = {(d, m): acc for d, m, v, acc in zip(summary.dataset, summary.model, summary.variant,
                                                summary.final_acc_mean) if v == baseline}
    return [100 * (acc - base[(d, m)]) if (d, m) in base and v != baseline else float("nan")
            for d, m, v, acc in zip(summary.dataset, summary.model, summary.variant, summary.final_acc_mean)]


def mean_std_percent(mean: float, std: float) -> str:
    return f"{100 * mean:.2f}" if pd.isna(std) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def extra_columns(summary: pd.DataFrame) -> dict[str, list[str]]:
    return {f"{col[len('acc_'):-len('_mean')]} acc (%)": [
                "—" if pd.isna(m) else mean_std_percent(m, s)
                for m, s in zip(summary[col], summary[col[:-len("_mean")] + "_std"])]
            for col in summary.columns if col.startswith("acc_") and col.endswith("_mean")}


def row_notes(summary: pd.DataFrame, options: TableOptions) -> list[str]:
    """What a reader must know about a row: missing seeds, diverged runs."""
    notes = []
    for seeds, seed_list, diverged_runs in zip(summary.seeds, summary.seed_list, summary.diverged_runs):
        note = []
        if options.expected_seeds and seeds < len(options.expected_seeds):
            have = {int(s) for s in seed_list.split()}
            missing = [s for s in options.expected_seeds if s not in have]
            note.append(f"{seeds} of {len(options.expected_seeds)} seeds (missing {' '.join(map(str, missing))})")
        if diverged_runs:
            note.append(f"{int(diverged_runs)} run(s) diverged (non-finite loss)")
        notes.append("; ".join(note))
    return notes


def display_frame(summary: pd.DataFrame, reported: list[dict], options: TableOptions) -> pd.DataFrame:
    """The table as a reader sees it: formatted strings, one column per fact."""
    deltas = summary["delta_to_baseline_pp"] if "delta_to_baseline_pp" in summary else None
    notes = row_notes(summary, options)
    return pd.DataFrame({
        "dataset": summary["dataset"],
        "model": summary["model"],
        "variant": summary["variant"],
        "final acc (%)": [mean_std_percent(m, s) for m, s in zip(summary.final_acc_mean, summary.final_acc_std)],
        # A score with no epoch to choose (a linear probe) has best == final: one column then.
        **({"best-epoch acc (%)": [mean_std_percent(m, s) for m, s in zip(summary.best_acc_mean, summary.best_acc_std)]}
           if not summary.best_acc_mean.equals(summary.final_acc_mean) else {}),
        **({"acc at best-val epoch (%)": [
            "—" if pd.isna(m) else mean_std_percent(m, s)
            for m, s in zip(summary.test_at_best_val_mean, summary.test_at_best_val_std)]}
           if summary.test_at_best_val_mean.notna().any() else {}),
        **({f"Δ final vs {options.baseline} (pp)": ["—" if pd.isna(d) else f"{d:+.2f}" for d in deltas]}
           if deltas is not None and deltas.notna().any() else {}),
        **extra_columns(summary),
        **({"reported acc (%)": reported_for(summary, reported)} if reported else {}),
        "split": [f"{s} (n={n})" for s, n in zip(summary.split, summary.num_eval)],
        "seeds": [f"{n} ({lst})" for n, lst in zip(summary.seeds, summary.seed_list)],
        "epochs": summary["epochs"].astype(str),
        "wall s": summary["wall_s_mean"].map(lambda v: f"{v:.1f}"),
        "train img/s": summary["images_per_s_mean"].map(lambda v: f"{v:.0f}"),
        "peak MB": summary["peak_mem_mb_max"].map(lambda v: f"{v:.0f}"),
        "device": summary["device"],
        **({"notes": notes} if any(notes) else {}),
    })


INTRO = ("Measured here. Accuracy in % on the named split, mean ± sample std over seeds; "
         "`best-epoch` is the best per-epoch accuracy on that same split (optimistic, as the "
         "original repositories report it; omitted where every row's equals its final one, as "
         "for a linear-probe score); `at best-val epoch`, where a run holds out a "
         "validation split, is the accuracy at the epoch chosen on that split. Cost columns "
         "are means per run (peak MB: max).")


def caveats(summary: pd.DataFrame, options: TableOptions) -> list[str]:
    lines = []
    if options.expected_seeds and (summary.seeds < len(options.expected_seeds)).any():
        lines.append(f"**Fewer seeds than configured ({len(options.expected_seeds)}) in some rows**: "
                     "their mean and std are over the finished runs only (see `notes`).")
    if summary.diverged_runs.any():
        lines.append("**Some runs diverged** (non-finite training loss); they are included in the "
                     "means with the accuracy they reached, and flagged in `notes`.")
    return lines


def to_markdown(summary: pd.DataFrame, study: str, reported: list[dict] | None = None,
                options: TableOptions = TableOptions()) -> str:
    reported = reported or []
    table = display_frame(summary, reported, options)
    lines = [f"# {study}", "", INTRO, "", *[line + "\n" for line in caveats(summary, options)],
             table.to_markdown(index=False, disable_numparse=True),  # keep "75.00", not 75
             "", *reported_markdown(reported)]
    return "\n".join(lines)


def to_html(summary: pd.DataFrame, study: str, reported: list[dict], options: TableOptions) -> str:
    """A standalone page of the same table, for Snakemake's report."""
    from html import escape

    parts = [f"<h1>{escape(study)}</h1>", f"<p>{escape(INTRO)}</p>",
             *[f"<p>{escape(line)}</p>" for line in caveats(summary, options)],
             display_frame(summary, reported, options).to_html(index=False, border=0)]
    if reported:
        parts += [f"<h2>{escape(REPORTED_TITLE)}</h2>", f"<p>{escape(REPORTED_INTRO)}</p>",
                  reported_frame(reported).to_html(index=False, border=0)]
    else:
        parts.append(f"<p>{escape(NO_REPORTED)}</p>")
    style = ("body{font-family:sans-serif;font-size:14px;margin:1em}table{border-collapse:collapse}"
             "th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(study)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def write_table(metrics_paths: list[Path], study: str, out_md: Path, out_csv: Path,
                reported_path: Path | None = None, options: dict | None = None,
                out_html: Path | None = None) -> pd.DataFrame:
    from ..config import config_from_dict

    table_options = config_from_dict(TableOptions, {k: tuple(v) if isinstance(v, list) else v
                                                    for k, v in (options or {}).items()},
                                     where=f"studies.{study}.report")
    runs = load_runs(metrics_paths, table_options)
    summary = summarize(runs)
    summary["delta_to_baseline_pp"] = delta_to_baseline(summary, table_options.baseline)
    reported = load_reported(reported_path, study)
    summary["reported_acc"] = [float("nan") if c == "—" else float(c) for c in reported_for(summary, reported)]
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text(to_markdown(summary, study, reported, table_options))
    if out_html is not None:
        Path(out_html).write_text(to_html(summary, study, reported, table_options))
    summary.to_csv(out_csv, index=False)
    print(f"{study}: {len(runs)} runs -> {len(summary)} rows in {out_md}, {out_csv}", flush=True)
    return summary
