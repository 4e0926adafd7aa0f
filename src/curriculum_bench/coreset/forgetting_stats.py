"""Forgetting statistics from per-presentation correctness, summed over proxy runs.

docs/methods.md §5.1 (FE:order_examples_by_forgetting.py `compute_forgetting_statistics`,
`sort_examples_by_forgetting`), §5.2 (C1K:coreset.py `update_fe`) and §8:

* a forgetting event is a transition correct -> incorrect between two consecutive
  presentations of an example; the first presentation never counts;
* an example is learned if it is correct at least once (one correct last presentation
  suffices: it then counts as unforgettable);
* a never-learned example has zero events; two official treatments rank it:
  `presentations` (FE): its count is the run's number of presentations of it;
  `max_plus_one` (C1K): its count is max(events of that run) + 1, above every learned one;
* per-run counts are summed over the proxy runs (FE sums seeds 1..5).

Pure numpy on the arrays `curricula/forgetting.py` writes (`forgetting.npz`): `correct` is
(presentations, examples) int8 with 1 / 0 and -1 where an example had no such presentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NEVER_LEARNED_MODES = ("presentations", "max_plus_one")


def forgetting_events(correct: np.ndarray) -> np.ndarray:
    """Per example, the number of 1 -> 0 transitions between consecutive presentations."""
    events = np.zeros(correct.shape[1], dtype=np.int64)
    previous = np.full(correct.shape[1], -1, dtype=np.int8)
    for row in correct:
        presented = row >= 0
        events += presented & (previous == 1) & (row == 0)
        previous = np.where(presented, row, previous)
    return events


def first_learned_presentation(correct: np.ndarray) -> np.ndarray:
    """Per example, the 0-based presentation at which it is first correct; -1 if never."""
    hit = correct == 1
    return np.where(hit.any(0), hit.argmax(0), -1)


def max_plus_one(events: np.ndarray, never: np.ndarray) -> np.ndarray:
    """C1K: events + (max(events) + 1) * [never correct]; never-learned events are 0 anyway."""
    return events + (events.max(initial=0) + 1) * never


def run_scores(correct: np.ndarray, never_learned: str) -> np.ndarray:
    """One run's forgetting counts, never-learned examples ranked by the chosen treatment."""
    if never_learned not in NEVER_LEARNED_MODES:
        raise ValueError(f"never_learned must be one of {NEVER_LEARNED_MODES}, got {never_learned!r}")
    events = forgetting_events(correct)
    never = (correct == 1).sum(0) == 0
    if never_learned == "presentations":
        presentations = (correct >= 0).sum(0)
        return np.where(never, presentations, events)
    return max_plus_one(events, never)


def forgetting_table(runs: list[dict], never_learned: str) -> dict[str, np.ndarray]:
    """Per-example statistics summed (or combined) over proxy runs, each a forgetting.npz dict.

    Columns: index, label, score (summed per-run counts, the ranking key), events (summed raw
    events), never_learned_runs, first_learned_epoch (1-based as in history.jsonl, earliest over runs, -1 if
    never),
    presentations (summed), mean_loss and mean_margin (over every presentation of every run).
    """
    if not runs:
        raise ValueError("no proxy runs to compute forgetting statistics from")
    n = len(runs[0]["labels"])
    for run in runs[1:]:
        if len(run["labels"]) != n or not np.array_equal(run["labels"], runs[0]["labels"]):
            raise ValueError("proxy runs trained on different train splits; their statistics cannot be summed")
    score = np.zeros(n, dtype=np.int64)
    events = np.zeros(n, dtype=np.int64)
    never_runs = np.zeros(n, dtype=np.int64)
    presentations = np.zeros(n, dtype=np.int64)
    first_epoch = np.full(n, np.iinfo(np.int64).max)
    loss_sum, margin_sum = np.zeros(n), np.zeros(n)
    for run in runs:
        correct = run["correct"]
        score += run_scores(correct, never_learned)
        events += forgetting_events(correct)
        never_runs += (correct == 1).sum(0) == 0
        presentations += (correct >= 0).sum(0)
        first = first_learned_presentation(correct)
        learned = first >= 0
        epochs = run["epoch"][first[learned], np.flatnonzero(learned)].astype(np.int64) + 1  # 1-based
        first_epoch[learned] = np.minimum(first_epoch[learned], epochs)
        if "loss" in run:
            loss_sum += np.nansum(run["loss"], 0)
            margin_sum += np.nansum(run["margin"], 0)
    first_epoch[first_epoch == np.iinfo(np.int64).max] = -1
    with np.errstate(invalid="ignore", divide="ignore"):
        has_loss = all("loss" in run for run in runs)
        mean_loss = loss_sum / presentations if has_loss else np.full(n, np.nan)
        mean_margin = margin_sum / presentations if has_loss else np.full(n, np.nan)
    return {
        "index": np.arange(n),
        "label": runs[0]["labels"].astype(np.int64),
        "score": score,
        "events": events,
        "never_learned_runs": never_runs,
        "first_learned_epoch": first_epoch,
        "presentations": presentations,
        "mean_loss": mean_loss,
        "mean_margin": mean_margin,
    }


def save_stats(table: dict[str, np.ndarray], out_npz: Path, out_csv: Path, **provenance) -> None:
    """The stats artifact: an npz of the per-example columns (with `provenance`, e.g. the
    never-learned treatment and the number of proxy runs) and the same table as CSV (numpy and
    the csv module: the stats job runs in the training env, which has no pandas)."""
    import csv

    out_npz = Path(out_npz)
    out_npz.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out_npz, **{key: np.array(value) for key, value in provenance.items()}, **table)
    with open(out_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(table)
        writer.writerows(zip(*(column.tolist() for column in table.values()), strict=True))


def load_run(path: str | Path) -> dict:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def write_forgetting_stats(run_paths: list[Path], never_learned: str, out_npz: Path, out_csv: Path) -> dict:
    """The stats artifact: an npz of the per-example columns and the same table as CSV."""
    table = forgetting_table([load_run(p) for p in run_paths], never_learned)
    save_stats(table, out_npz, out_csv, never_learned=never_learned, num_runs=len(run_paths))
    n = len(table["index"])
    print(
        f"forgetting statistics of {n} examples from {len(run_paths)} proxy run(s), never-learned "
        f"treatment {never_learned!r}: {int((table['score'] == 0).sum())} unforgettable "
        f"({100 * (table['score'] == 0).mean():.1f} %), {int((table['never_learned_runs'] > 0).sum())} "
        f"never learned in some run, max score {int(table['score'].max())} -> {out_npz}, {out_csv}",
        flush=True,
    )
    return table


def load_forgetting_stats(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


# --- precomputed statistics (C1K's continue_from_selection) ---------------------------------

# C1K keeps, per training example, `forgetting_events` and `nr_correct` (coreset.py `update_fe`)
# and ships them as a torch.save dict of two tensors (preloaded_forgetting/forgetting_stats).
PRECOMPUTED_KEYS = ("forgetting_events", "nr_correct")


def read_precomputed(path: str | Path) -> dict[str, np.ndarray]:
    """The two per-example vectors of a C1K statistics file (torch.save dict) or an .npz."""
    from ..errors import InputFileError

    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path) as data:
                raw = {key: data[key] for key in data.files}
        else:
            import torch

            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling and zip errors have no common base
        raise InputFileError(path, f"not a readable statistics file ({type(err).__name__}: {err})") from None
    missing = [key for key in PRECOMPUTED_KEYS if key not in raw]
    if not isinstance(raw, dict) or missing:
        have = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise InputFileError(path, f"expected a dict with {list(PRECOMPUTED_KEYS)} (C1K's format), got {have}")
    vectors = {key: np.asarray(raw[key]).astype(np.int64).reshape(-1) for key in PRECOMPUTED_KEYS}
    if len(vectors["forgetting_events"]) != len(vectors["nr_correct"]):
        raise InputFileError(path, "forgetting_events and nr_correct differ in length")
    return vectors


def precomputed_table(path: str | Path, labels: np.ndarray, never_learned: str) -> dict[str, np.ndarray]:
    """forgetting_table's columns from a precomputed file: one run's counts, nothing per epoch."""
    from ..errors import InputFileError

    if never_learned != "max_plus_one":
        raise ValueError(
            "studies.coreset.stats.never_learned: a precomputed statistics file has no presentation "
            f"counts, so only max_plus_one (C1K) can rank its never-learned examples, not {never_learned!r}"
        )
    vectors = read_precomputed(path)
    events, never = vectors["forgetting_events"], vectors["nr_correct"] == 0
    if len(events) != len(labels):
        raise InputFileError(
            path, f"{len(events)} examples, but the dataset's train split has {len(labels)}: another split?"
        )
    n = len(events)
    return {
        "index": np.arange(n),
        "label": labels.astype(np.int64),
        "score": max_plus_one(events, never),
        "events": events,
        "never_learned_runs": never.astype(np.int64),
        "first_learned_epoch": np.full(n, -1),
        "presentations": np.full(n, -1),
        "mean_loss": np.full(n, np.nan),
        "mean_margin": np.full(n, np.nan),
    }


def write_precomputed_stats(path: Path, store: Path, never_learned: str, out_npz: Path, out_csv: Path) -> dict:
    """The stats artifact from a precomputed file, labelled by the dataset store's train split."""
    from ..data.store import load_array

    table = precomputed_table(path, load_array(Path(store), "train_labels"), never_learned)
    save_stats(table, out_npz, out_csv, never_learned=never_learned, num_runs=0, source=str(path))
    print(
        f"forgetting statistics of {len(table['index'])} examples read from {path} (no proxy run): "
        f"{int((table['score'] == 0).sum())} unforgettable, {int(table['never_learned_runs'].sum())} never "
        f"learned -> {out_npz}, {out_csv}",
        flush=True,
    )
    return table
