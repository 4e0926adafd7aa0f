"""Study tables from finished runs: mean ± std over seeds, with the split and the cost.

Reads only `metrics.json` files (or a contrastive run's `probe_metrics.json`), which are
written last, so a killed or half-written run never reaches a table. Markdown (tabulate) and
CSV come from the same summary frame.

Each file is checked before it counts (an error names the file): the run it holds is the one
its path names (results/{study}/{dataset}/{model}/{variant}/seed{seed}/), of this study, given
once, and one the config asks for (`expected_runs`, set by the workflow); every accuracy it or
its history.jsonl holds is a fraction in [0, 1]. The CSV's dataset, model, variant and
seed_list columns are the runs the table holds: `rebuild_marker` compares them, and the run
files' existence, with what the config asks for, so the workflow rebuilds a table whenever
that set changes, without relying on Snakemake's .snakemake/metadata.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ..config import METRICS, PROBE_METRICS, RUN_DIR
from ..errors import InputFileError, read_json_file, read_json_lines
from . import FABRICATED_WARNING
from .stats import PairedDifference, paired_difference
from .table_rebuild import RUN_PATH, rebuild_marker, run_of_path, table_is_stale, tabulated_runs  # noqa: F401

KEYS = ["dataset", "model", "variant"]
RUN_FIELDS = ("study", "dataset", "model", "variant", "seed")
RUN_FILES = (Path(METRICS).name, Path(PROBE_METRICS).name)
# The keys a row is made of; a run file without one of them is refused, naming the key.
METRICS_KEYS = (
    *RUN_FIELDS,
    "final_acc",
    "best_acc",
    "best_epoch",
    "final_epoch",
    "eval_split",
    "num_train",
    "num_eval",
    "wall_s",
    "train_images_per_s",
    "peak_mem_mb",
    "device_name",
    "dataset_source",
)
RERUN = "delete the run's folder and rerun snakemake, which retrains it and rebuilds the table"


REPORTED_FIELDS = {"dataset", "model", "variant", "acc", "source", "note", "not_run"}


def load_reported(path: Path | None, study: str) -> list[dict]:
    """The numbers the original authors report for `study` (config/reported.yaml).

    Each entry: dataset, model, variant (the names paper.yaml uses), acc in %, source,
    and an optional note on the protocol. They are shown beside ours, never mixed in. An
    entry with `not_run: <reason>` has no row run under its protocol: it never fills a
    row's `reported` column, and the caption says why.
    """
    if path is None:
        return []
    entries = (yaml.safe_load(Path(path).read_text()) or {}).get(study) or []
    for i, entry in enumerate(entries):
        unknown = set(entry) - REPORTED_FIELDS
        missing = {"dataset", "model", "variant", "acc", "source"} - set(entry)
        if unknown or missing:
            raise ValueError(
                f"{path}: {study}[{i}]: "
                + (f"unknown keys {sorted(unknown)}" if unknown else f"missing {sorted(missing)}")
            )
    return entries


def reported_for(summary: pd.DataFrame, reported: list[dict]) -> list[str]:
    """Per summary row, the reported accuracy for the same dataset/model/variant, or '—'."""
    index = {(e["dataset"], e["model"], e["variant"]): e for e in reported if not e.get("not_run")}
    cells = []
    for dataset, model, variant in zip(summary["dataset"], summary["model"], summary["variant"], strict=True):
        entry = index.get((dataset, model, variant))
        cells.append("—" if entry is None else f"{entry['acc']:.2f}")
    return cells


NO_REPORTED = "No reported numbers for this study in config/reported.yaml, so the table has no `reported` column."
REPORTED_TITLE = "Reported by the original authors (not measured here)"
REPORTED_INTRO = (
    "Quoted from the papers and repositories (docs/methods.md); rows of the table "
    "above whose dataset, model and variant match show the same number in their "
    "`reported` column."
)


def reported_frame(reported: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                "dataset": e["dataset"],
                "model": e["model"],
                "variant": e["variant"],
                "reported acc (%)": f"{e['acc']:.2f}",
                "source": e["source"],
                "note": e.get("note", ""),
            }
            for e in reported
        ]
    )
    if any(e.get("not_run") for e in reported):
        frame["not run here because"] = [e.get("not_run") or "" for e in reported]
    return frame


def reported_markdown(reported: list[dict]) -> list[str]:
    if not reported:
        return [NO_REPORTED, ""]
    return [
        f"## {REPORTED_TITLE}",
        "",
        REPORTED_INTRO,
        "",
        reported_frame(reported).to_markdown(index=False, disable_numparse=True),
        "",
    ]


@dataclass(frozen=True)
class TableOptions:
    """A study's `report:` section: extra columns for what that study is about."""

    per_class: tuple[int, ...] = ()  # final accuracy of these classes (weighted sampling: 0)
    at_epochs: tuple[int, ...] = ()  # test accuracy at these epochs (DP reports epoch 84)
    baseline: str = "baseline"  # the variant the Δ column compares against
    # curriculum variant -> its random control (random order, random subset): a second Δ column
    controls: dict = field(default_factory=dict)
    # Every run the config asks for, as [dataset, model, variant, seed] (set by the workflow):
    # a run outside it is an error, one missing from the runs given is flagged in `notes`.
    expected_runs: tuple[tuple[str, str, str, int], ...] = ()
    fabricated_data: bool = False  # the config's `fabricated_data` (paper smoke run): said above the table
    # The study's `deviations` (protocol.py): settings that differ on purpose from the source
    # protocol, each {setting, reason, datasets/models/variants/methods}; said in the caption.
    deviations: tuple[dict, ...] = ()

    def __post_init__(self):
        runs = tuple(tuple(run) for run in self.expected_runs)
        bad = [run for run in runs if len(run) != 4 or not isinstance(run[3], int) or isinstance(run[3], bool)]
        if bad:
            raise ValueError(f"expected_runs: {list(bad[0])} is not [dataset, model, variant, seed]")
        object.__setattr__(self, "expected_runs", runs)

    def expected_seeds(self) -> dict[tuple[str, str, str], list[int]]:
        """Per (dataset, model, variant) row, the seeds the config asks for, in config order."""
        rows: dict[tuple[str, str, str], list[int]] = {}
        for dataset, model, variant, seed in self.expected_runs:
            rows.setdefault((dataset, model, variant), []).append(seed)
        return rows


# An accuracy's key: `acc` a word of it (final_acc, eval_acc_per_class, probe.val_acc_per_weight_decay,
# self_labeling/pseudo_label_acc), or a map of epoch -> accuracy.
ACCURACY_KEY = re.compile(r"(?:^|[_/])acc(?:_|$)")
ACCURACY_MAPS = {"probe_per_epoch"}
# Settings and provenance a run file carries: not measurements.
NOT_MEASURED = {"run", "train_config", "probe_config", "dataset_source", "versions", "speed", "inputs"}


def accuracies(record: dict) -> Iterator[tuple[str, object]]:
    """(key, value) of every accuracy in a metrics record or history line; nested keys dotted, list items [i]."""

    def walk(name: str, value, is_accuracy: bool):
        if isinstance(value, dict):
            for key, item in value.items():
                yield from walk(f"{name}.{key}", item, is_accuracy or bool(ACCURACY_KEY.search(str(key))))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from walk(f"{name}[{i}]", item, is_accuracy)
        elif is_accuracy:
            yield name, value

    for key, value in record.items():
        if key not in NOT_MEASURED:
            yield from walk(key, value, bool(ACCURACY_KEY.search(key)) or key in ACCURACY_MAPS)


def check_accuracies(path: Path, record: dict, where: str = "") -> None:
    """Every accuracy a fraction in [0, 1] (NaN: a diverged run, flagged; None: not measured), else an error
    naming the file and key. final_acc and best_acc must be numbers."""
    for key, value in accuracies(record):
        if value is None and key not in ("final_acc", "best_acc"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputFileError(path, f"{where}{key} is {value!r}, not a number (an accuracy in [0, 1])", RERUN)
        if not math.isnan(value) and not 0 <= value <= 1:
            raise InputFileError(
                path, f"{where}{key} = {value!r} is outside [0, 1]: accuracies are fractions (0.975, not 97.5)", RERUN
            )


def check_identity(path: Path, m: dict, study: str | None) -> None:
    """The run in the file is the one its path names, of this study."""
    named = run_of_path(path)
    if named is None or named["file"] not in RUN_FILES:
        raise InputFileError(
            path,
            f"not where a run's scores are: tables read {RUN_DIR}/{RUN_FILES[0]} (or {RUN_FILES[1]})",
            "pass the run files the workflow writes",
        )
    differ = [
        f"{key} {m[key]!r}"
        for key in RUN_FIELDS
        if m[key] != named[key] or (key == "seed" and isinstance(m[key], bool))
    ]
    if differ:
        raise InputFileError(
            path,
            f"holds another run than its path names: {', '.join(differ)} (its path says "
            f"{', '.join(f'{k} {named[k]!r}' for k in RUN_FIELDS)})",
            RERUN,
        )
    if study is not None and m["study"] != study:
        raise InputFileError(path, f"a run of study {m['study']!r}, not of {study!r}", "pass only the study's own runs")


def read_history(run_dir: Path) -> list[dict]:
    """The run's per-epoch records; [] when it has none (a probe's score, hand-made metrics)."""
    path = run_dir / "history.jsonl"
    if not path.exists():
        return []
    history = read_json_lines(path, "the run's per-epoch history")
    for record in history:
        check_accuracies(path, record, f"epoch {record.get('epoch', '?')}: ")
    return history


def read_run(path: Path, study: str | None = None) -> tuple[dict, list[dict]]:
    """A run file's metrics and its folder's history, checked: identity against the path, accuracies in [0, 1]."""
    path = Path(path)
    m = read_json_file(path, "a run's metrics", METRICS_KEYS)
    check_identity(path, m, study)
    check_accuracies(path, m)
    return m, read_history(path.parent)


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


def check_expected(path: Path, m: dict, options: TableOptions) -> None:
    """A run the config asks for (when the options say which): a seed set {0, 2} is not {0, 1}."""
    if not options.expected_runs:
        return
    row = (m["dataset"], m["model"], m["variant"])
    if (*row, m["seed"]) in options.expected_runs:
        return
    seeds = options.expected_seeds().get(row)
    raise InputFileError(
        path,
        f"seed {m['seed']} is not one of the config's seeds {seeds} for {'/'.join(row)}"
        if seeds
        else f"{'/'.join(row)} is not a row the config asks for",
        "tabulate only the runs the config asks for",
    )


def recipe_label(train: dict) -> str:
    """How a run trained around its method, from metrics.json's train_config (TrainConfig's
    recipe settings, train/recipe.py): "plain" when none is on."""
    parts = []
    if train.get("rand_augment"):
        parts.append(f"RandAugment {train['rand_augment']}")
    if train.get("auto_augment"):
        parts.append(f"AutoAugment {train['auto_augment']}")
    if train.get("random_erasing"):
        parts.append(f"erasing {train['random_erasing']:g}")
    mixing = [f"{kind} {train[kind + '_alpha']:g}" for kind in ("mixup", "cutmix") if train.get(kind + "_alpha")]
    if mixing and train.get("mix_prob", 1.0) > 0:
        parts.append(" / ".join(mixing))
    if train.get("label_smoothing"):
        parts.append(f"smoothing {train['label_smoothing']:g}")
    clip = [f"±{train['grad_clip_value']:g}" if train.get("grad_clip_value") else ""]
    clip.append(f"norm {train['grad_clip']:g}" if train.get("grad_clip") else "")
    if any(clip):
        parts.append("clip " + ", ".join(c for c in clip if c))
    if train.get("no_weight_decay_on_norm_and_bias"):
        parts.append("no WD on norms/biases")
    if train.get("grad_accumulation_steps", 1) > 1:
        parts.append(f"{train['grad_accumulation_steps']} batches per step")
    return "; ".join(parts) or "plain"


def load_runs(
    metrics_paths: list[Path], options: TableOptions = TableOptions(), study: str | None = None
) -> pd.DataFrame:
    rows, seen = [], {}
    for path in metrics_paths:
        m, history = read_run(path, study)
        run = tuple(m[k] for k in ("study", *KEYS, "seed"))  # the claims job reads every study's runs
        if run in seen:
            raise InputFileError(
                path, f"the same run as {seen[run]} (each run is tabulated once)", "pass each run file once"
            )
        seen[run] = path
        check_expected(path, m, options)
        rows.append(
            {
                **{
                    k: m[k]
                    for k in (
                        "study",
                        *KEYS,
                        "seed",
                        "final_acc",
                        "best_acc",
                        "best_epoch",
                        "final_epoch",
                        "eval_split",
                        "num_train",
                        "num_eval",
                        "wall_s",
                        "train_images_per_s",
                        "peak_mem_mb",
                    )
                },
                # bf16 autocast changes the numbers a little (auto turns it on where the hardware has it)
                "device_name": m["device_name"] + (", bf16" if (m.get("speed") or {}).get("bf16") else ""),
                "test_at_best_val_acc": m.get("test_at_best_val_acc", float("nan")),
                "diverged": diverged(m, history),
                **{f"acc_{k}": v for k, v in extra_accuracies(m, history, options).items()},
                "source": m["dataset_source"].get("source", m["dataset"]),
                "recipe": recipe_label(m.get("train_config") or {}),
            }
        )
    if not rows:
        raise ValueError("no runs to tabulate")
    return pd.DataFrame(rows)


def distinct(values: pd.Series) -> str:
    return " / ".join(dict.fromkeys(map(str, values)))


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
        final_acc_std=("final_acc", "std"),  # sample std (ddof 1); NaN for one seed
        best_acc_mean=("best_acc", "mean"),
        best_acc_std=("best_acc", "std"),
        test_at_best_val_mean=("test_at_best_val_acc", "mean"),
        test_at_best_val_std=("test_at_best_val_acc", "std"),
        wall_s_mean=("wall_s", "mean"),
        images_per_s_mean=("train_images_per_s", "mean"),
        peak_mem_mb_max=("peak_mem_mb", "max"),
        device=("device_name", distinct),  # a row whose seeds ran on different devices or precisions says so
        recipe=("recipe", "first"),
        diverged_runs=("diverged", "sum"),
        **{f"{col}_{stat}": (col, stat) for col in runs.columns if col.startswith("acc_") for stat in ("mean", "std")},
    ).reset_index()
    return summary


def headline_accuracy(runs: pd.DataFrame) -> tuple[pd.Series, str]:
    """The accuracy a row is compared on: at the best-val epoch where every run holds out a
    validation split (the protocol of those studies), else the final one."""
    if runs["test_at_best_val_acc"].notna().all():
        return runs["test_at_best_val_acc"], "acc at best-val epoch"
    return runs["final_acc"], "final acc"


def values_per_seed(runs: pd.DataFrame, values: pd.Series) -> dict[tuple[str, str, str], dict[int, float]]:
    """(dataset, model, variant) -> {seed: value}: what a paired comparison of two rows reads."""
    per_seed: dict[tuple[str, str, str], dict[int, float]] = {}
    for key, seed, value in zip(
        zip(runs.dataset, runs.model, runs.variant, strict=True), runs.seed, values, strict=True
    ):
        per_seed.setdefault(key, {})[int(seed)] = float(value)
    return per_seed


def paired_deltas(runs: pd.DataFrame, summary: pd.DataFrame, reference_of) -> list[PairedDifference | None]:
    """Per summary row, its paired difference from the row `reference_of(variant)` names (same
    dataset and model), over the seeds both ran; None where there is no such row."""
    per_seed = values_per_seed(runs, headline_accuracy(runs)[0])
    deltas = []
    for dataset, model, variant in zip(summary.dataset, summary.model, summary.variant, strict=True):
        reference = reference_of(variant)
        if reference is None or reference == variant or (dataset, model, reference) not in per_seed:
            deltas.append(None)
            continue
        deltas.append(paired_difference(per_seed[(dataset, model, variant)], per_seed[(dataset, model, reference)]))
    return deltas


def add_deltas(summary: pd.DataFrame, name: str, deltas: list[PairedDifference | None]) -> None:
    """Columns `<name>_pp`, `_low_pp`, `_high_pp`, `_n` (percentage points) for the CSV and the display."""
    summary[f"{name}_pp"] = [100 * d.mean if d else math.nan for d in deltas]
    summary[f"{name}_low_pp"] = [100 * d.low if d else math.nan for d in deltas]
    summary[f"{name}_high_pp"] = [100 * d.high if d else math.nan for d in deltas]
    summary[f"{name}_n"] = [d.n if d else 0 for d in deltas]


def delta_cell(mean: float, low: float, high: float, n: int, seeds: int) -> str:
    """ "+3.20 [+1.10, +5.30] *": the mean paired difference, its 95 % interval, * where it excludes 0."""
    if math.isnan(mean):
        return "—"
    if math.isnan(low):
        text = f"{mean:+.2f} (1 seed: no interval)"
    else:
        text = f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]" + (" *" if low > 0 or high < 0 else "")
    return text + (f" (n={n})" if n < seeds and not math.isnan(low) else "")


def delta_columns(summary: pd.DataFrame, options: TableOptions, metric: str) -> dict[str, list[str]]:
    columns = {}
    for name, title in (
        ("delta_baseline", f"Δ {metric} vs {options.baseline} (pp, 95 % CI)"),
        ("delta_control", f"Δ {metric} vs random control (pp, 95 % CI)"),
    ):
        if f"{name}_pp" not in summary or not summary[f"{name}_pp"].notna().any():
            continue
        columns[title] = [
            delta_cell(m, lo, hi, n, seeds)
            for m, lo, hi, n, seeds in zip(
                summary[f"{name}_pp"],
                summary[f"{name}_low_pp"],
                summary[f"{name}_high_pp"],
                summary[f"{name}_n"],
                summary["seeds"],
                strict=True,
            )
        ]
        if name == "delta_control":
            columns["random control"] = [options.controls.get(v, "") for v in summary["variant"]]
    return columns


def mean_std_percent(mean: float, std: float) -> str:
    return f"{100 * mean:.2f}" if pd.isna(std) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def extra_columns(summary: pd.DataFrame) -> dict[str, list[str]]:
    return {
        f"{col[len('acc_') : -len('_mean')]} acc (%)": [
            "—" if pd.isna(m) else mean_std_percent(m, s)
            for m, s in zip(summary[col], summary[col[: -len("_mean")] + "_std"], strict=True)
        ]
        for col in summary.columns
        if col.startswith("acc_") and col.endswith("_mean")
    }


def missing_seeds(summary: pd.DataFrame, options: TableOptions) -> list[list[int]]:
    """Per summary row, the seeds the config asks for that have no run here."""
    expected = options.expected_seeds()
    return [
        [s for s in expected.get((d, m, v), []) if s not in {int(x) for x in str(seed_list).split()}]
        for d, m, v, seed_list in zip(summary.dataset, summary.model, summary.variant, summary.seed_list, strict=True)
    ]


def missing_rows(summary: pd.DataFrame, options: TableOptions) -> list[str]:
    """The config's rows with no run at all (they would otherwise just be absent)."""
    have = set(zip(summary.dataset, summary.model, summary.variant, strict=True))
    return ["/".join(row) for row in options.expected_seeds() if row not in have]


def row_notes(summary: pd.DataFrame, options: TableOptions) -> list[str]:
    """What a reader must know about a row: missing seeds, diverged runs."""
    notes = []
    for seeds, missing, diverged_runs in zip(
        summary.seeds, missing_seeds(summary, options), summary.diverged_runs, strict=True
    ):
        note = []
        if missing:
            note.append(f"{seeds} of {seeds + len(missing)} seeds (missing {' '.join(map(str, missing))})")
        if diverged_runs:
            note.append(f"{int(diverged_runs)} run(s) diverged (non-finite loss)")
        notes.append("; ".join(note))
    return notes


def display_frame(summary: pd.DataFrame, reported: list[dict], options: TableOptions) -> pd.DataFrame:
    """The table as a reader sees it: formatted strings, one column per fact."""
    notes = row_notes(summary, options)
    return pd.DataFrame(
        {
            "dataset": summary["dataset"],
            "model": summary["model"],
            "variant": summary["variant"],
            # Which training recipe a row used (train/recipe.py), where some row used more than the plain one.
            **({"recipe": summary["recipe"]} if "recipe" in summary and (summary["recipe"] != "plain").any() else {}),
            "final acc (%)": [
                mean_std_percent(m, s) for m, s in zip(summary.final_acc_mean, summary.final_acc_std, strict=True)
            ],
            # A score with no epoch to choose (a linear probe) has best == final: one column then.
            **(
                {
                    "best-epoch acc (%)": [
                        mean_std_percent(m, s) for m, s in zip(summary.best_acc_mean, summary.best_acc_std, strict=True)
                    ]
                }
                if not summary.best_acc_mean.equals(summary.final_acc_mean)
                else {}
            ),
            **(
                {
                    "acc at best-val epoch (%)": [
                        "—" if pd.isna(m) else mean_std_percent(m, s)
                        for m, s in zip(summary.test_at_best_val_mean, summary.test_at_best_val_std, strict=True)
                    ]
                }
                if summary.test_at_best_val_mean.notna().any()
                else {}
            ),
            **delta_columns(summary, options, summary.attrs.get("delta_metric", "final acc")),
            **extra_columns(summary),
            **({"reported acc (%)": reported_for(summary, reported)} if reported else {}),
            "split": [f"{s} (n={n})" for s, n in zip(summary.split, summary.num_eval, strict=True)],
            "seeds": [f"{n} ({lst})" for n, lst in zip(summary.seeds, summary.seed_list, strict=True)],
            "epochs": summary["epochs"].astype(str),
            "wall s": summary["wall_s_mean"].map(lambda v: f"{v:.1f}"),
            "train img/s": summary["images_per_s_mean"].map(lambda v: f"{v:.0f}"),
            "peak MB": summary["peak_mem_mb_max"].map(lambda v: f"{v:.0f}"),
            "device": summary["device"],
            **({"notes": notes} if any(notes) else {}),
        }
    )


INTRO = (
    "Measured here. Accuracy in % on the named split, mean ± sample std over seeds; "
    "`best-epoch` is the best per-epoch accuracy on that same split (optimistic, as the "
    "original repositories report it; omitted where every row's equals its final one, as "
    "for a linear-probe score); `at best-val epoch`, where a run holds out a "
    "validation split, is the accuracy at the epoch chosen on that split. Cost columns "
    "are means per run (peak MB: max). Δ columns: the paired difference from the baseline "
    "(or from the row's random control) over the seeds both rows ran (a seed shares the "
    "initialisation and, where the method allows, the data order), in percentage points: "
    "mean [95 % Student-t interval over seeds]; * marks an interval that excludes zero, "
    "(n=k) a row paired over fewer seeds than it has. Without * the table does not "
    "support a difference."
)


def deviation_lines(summary: pd.DataFrame, options: TableOptions) -> list[str]:
    """The declared deviations from the source protocol that touch a row of this table."""
    rows = set(zip(summary.dataset, summary.model, summary.variant, strict=True))
    lines = []
    for deviation in options.deviations:
        wanted = [tuple(deviation.get(key) or ()) for key in ("datasets", "models", "variants")]
        touched = sorted(
            f"{d}/{m}/{v}"
            for d, m, v in rows
            if all(not names or name in names for name, names in zip((d, m, v), wanted, strict=True))
        )
        if not touched:
            continue
        named = deviation["setting"]
        settings = ", ".join(f"`{s}`" for s in ([named] if isinstance(named, str) else named))
        where = "every row" if len(touched) == len(rows) else ", ".join(touched)
        using = f" (runs using {', '.join(deviation['methods'])})" if deviation.get("methods") else ""
        lines.append(f"- {settings} on {where}{using}: {deviation['reason'].strip()}")
    if not lines:
        return []
    return [
        "**Deviations from the source protocol** (declared in the config; "
        "`python -m curriculum_bench plan --check-protocol` lists them against config/protocol.yaml):\n"
        + "\n".join(lines)
    ]


def not_run_lines(reported: list[dict]) -> list[str]:
    """Reported numbers without a row run under their protocol, and why (config/reported.yaml)."""
    missing = [e for e in reported if e.get("not_run")]
    if not missing:
        return []
    items = "; ".join(
        f"{e['dataset']}/{e['model']}/{e['variant']} {e['acc']:.2f} ({e['source']}): {e['not_run']}" for e in missing
    )
    return [f"**Reported numbers with no row run under their protocol** ({len(missing)}): {items}."]


def caveats(summary: pd.DataFrame, options: TableOptions, reported: list[dict] | None = None) -> list[str]:
    lines = deviation_lines(summary, options) + not_run_lines(reported or [])
    if any(missing_seeds(summary, options)):
        lines.append(
            "**Fewer seeds than configured in some rows**: "
            "their mean and std are over the finished runs only (see `notes`)."
        )
    absent = missing_rows(summary, options)
    if absent:
        lines.append(f"**No finished run for {len(absent)} configured row(s)**, not in the table: {', '.join(absent)}.")
    if summary.diverged_runs.any():
        lines.append(
            "**Some runs diverged** (non-finite training loss); they are included in the "
            "means with the accuracy they reached, and flagged in `notes`."
        )
    return lines


def to_markdown(
    summary: pd.DataFrame, study: str, reported: list[dict] | None = None, options: TableOptions = TableOptions()
) -> str:
    reported = reported or []
    table = display_frame(summary, reported, options)
    warning = [FABRICATED_WARNING, ""] if options.fabricated_data else []
    lines = [
        f"# {study}",
        "",
        *warning,
        INTRO,
        "",
        *[line + "\n" for line in caveats(summary, options, reported)],
        table.to_markdown(index=False, disable_numparse=True),  # keep "75.00", not 75
        "",
        *reported_markdown(reported),
    ]
    return "\n".join(lines)


def to_html(summary: pd.DataFrame, study: str, reported: list[dict], options: TableOptions) -> str:
    """A standalone page of the same table, for Snakemake's report."""
    from html import escape

    parts = [
        f"<h1>{escape(study)}</h1>",
        *([f"<p>{escape(FABRICATED_WARNING)}</p>"] if options.fabricated_data else []),
        f"<p>{escape(INTRO)}</p>",
        *[f"<p>{escape(line).replace(chr(10), '<br>')}</p>" for line in caveats(summary, options, reported)],
        display_frame(summary, reported, options).to_html(index=False, border=0),
    ]
    if reported:
        parts += [
            f"<h2>{escape(REPORTED_TITLE)}</h2>",
            f"<p>{escape(REPORTED_INTRO)}</p>",
            reported_frame(reported).to_html(index=False, border=0),
        ]
    else:
        parts.append(f"<p>{escape(NO_REPORTED)}</p>")
    style = (
        "body{font-family:sans-serif;font-size:14px;margin:1em}table{border-collapse:collapse}"
        "th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(study)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def write_table(
    metrics_paths: list[Path],
    study: str,
    out_md: Path,
    out_csv: Path,
    reported_path: Path | None = None,
    options: dict | None = None,
    out_html: Path | None = None,
) -> pd.DataFrame:
    from ..config import config_from_dict

    table_options = config_from_dict(
        TableOptions,
        {k: tuple(v) if isinstance(v, list) else v for k, v in (options or {}).items()},
        where=f"studies.{study}.report",
    )
    runs = load_runs(metrics_paths, table_options, study)
    summary = summarize(runs)
    summary.attrs["delta_metric"] = headline_accuracy(runs)[1]
    add_deltas(summary, "delta_baseline", paired_deltas(runs, summary, lambda v: table_options.baseline))
    add_deltas(summary, "delta_control", paired_deltas(runs, summary, table_options.controls.get))
    reported = load_reported(reported_path, study)
    summary["reported_acc"] = [float("nan") if c == "—" else float(c) for c in reported_for(summary, reported)]
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text(to_markdown(summary, study, reported, table_options))
    if out_html is not None:
        Path(out_html).write_text(to_html(summary, study, reported, table_options))
    summary.to_csv(out_csv, index=False)
    print(f"{study}: {len(runs)} runs -> {len(summary)} rows in {out_md}, {out_csv}", flush=True)
    return summary
