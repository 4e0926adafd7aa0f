"""Coreset selection from forgetting scores: most forgotten, least forgotten, or random.

docs/methods.md §5.2 (C1K:coreset.py `create_coreset`) and §5.1 (FE removal by sorted order):

* `forgetting`: most forgotten first (C1K `forgetting_events`, sorted descending: the
  never-learned examples, then the most forgotten);
* `reverse`: least forgotten first (C1K `reverse_forgetting_events`, the default; also the
  order in which FE removes examples);
* `random`: a seeded permutation (C1K `random`).

Ties are broken explicitly: `stable` keeps lower dataset indices first in both directions
(C1K's stable Python sort, so `reverse` takes the first unforgettable examples in index
order); `random` orders tied examples by a seeded permutation (FE's non-stable argsort,
made reproducible). `class_balanced` fills a per-class quota (size // K, the remainder to the
lowest class indices) in the same order; C1K does not balance classes.

The output indices index the train split of the store the proxy trained on, which is the
original dataset's train split in file order when that store is a `validation_tail` subset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

METHODS = ("forgetting", "reverse", "random")
TIE_BREAKS = ("stable", "random")


@dataclass(frozen=True)
class SelectionConfig:
    method: str = "reverse"  # C1K main.py default `reverse_forgetting_events`
    size: int = 1000  # C1K: coreset of 1,000
    tie_break: str = "stable"  # C1K: Python's stable sort (lowest indices among ties)
    class_balanced: bool = False  # C1K: no class balance
    seed: int = 0  # random method and random tie-breaking

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.tie_break not in TIE_BREAKS:
            raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {self.tie_break!r}")
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def ranking(scores: np.ndarray, cfg: SelectionConfig) -> np.ndarray:
    """Every example's index, in the order the method takes them."""
    n = len(scores)
    rng = np.random.RandomState(cfg.seed)
    if cfg.method == "random":
        return rng.permutation(n)
    tie_key = np.arange(n) if cfg.tie_break == "stable" else rng.permutation(n)
    primary = -scores if cfg.method == "forgetting" else scores
    return np.lexsort((tie_key, primary))  # last key is the primary one


def class_quotas(size: int, num_classes: int) -> np.ndarray:
    quotas = np.full(num_classes, size // num_classes)
    quotas[: size % num_classes] += 1
    return quotas


def take(order: np.ndarray, labels: np.ndarray, size: int, class_balanced: bool, num_classes: int) -> np.ndarray:
    """The first `size` of `order`, or the first of each class up to its quota."""
    if size > len(order):
        raise ValueError(f"size {size} exceeds the {len(order)} training examples")
    if not class_balanced:
        return order[:size]
    quotas = class_quotas(size, num_classes)
    available = np.bincount(labels, minlength=num_classes)
    short = np.flatnonzero(available < quotas)
    if len(short):
        raise ValueError(
            f"class_balanced: class {int(short[0])} has {int(available[short[0]])} examples, "
            f"its quota is {int(quotas[short[0]])}"
        )
    rank_in_class = np.empty(len(order), dtype=np.int64)
    ordered_labels = labels[order]
    for c in range(num_classes):
        members = ordered_labels == c
        rank_in_class[members] = np.arange(members.sum())
    chosen = rank_in_class < quotas[ordered_labels]
    return order[chosen]


def select(scores: np.ndarray, labels: np.ndarray, cfg: SelectionConfig, num_classes: int | None = None) -> np.ndarray:
    num_classes = num_classes or int(labels.max()) + 1
    return take(ranking(scores, cfg), labels, cfg.size, cfg.class_balanced, num_classes)


def labels_digest(labels: np.ndarray) -> str:
    """Fingerprint of a train split's labels: a run checks it trains on the split that was scored."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()


def write_selection(stats_path: Path, cfg: SelectionConfig, out: Path, dataset: str = "") -> dict:
    """The selection file: indices into the train split, with how they were chosen."""
    from ..config_checks import check_selection_size
    from .forgetting_stats import load_forgetting_stats

    stats = load_forgetting_stats(stats_path)
    # A size the plan could not check (a train split known only once read) names its key here.
    check_selection_size(Path(out).stem, cfg.size, len(stats["score"]), dataset, f"the statistics {stats_path}")
    indices = select(stats["score"], stats["label"], cfg)
    record = {
        **asdict(cfg),
        "dataset": dataset,
        "train_split": "train",
        "num_train": int(len(stats["score"])),
        "train_labels_sha256": labels_digest(stats["label"]),
        "stats": str(stats_path),
        "never_learned": str(stats["never_learned"]),
        "indices": [int(i) for i in indices],
        "scores": [int(stats["score"][i]) for i in indices],
        "class_counts": np.bincount(stats["label"][indices], minlength=int(stats["label"].max()) + 1).tolist(),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record) + "\n")
    print(
        f"{cfg.method} selection of {len(indices)} / {record['num_train']} examples "
        f"(tie-break {cfg.tie_break}, class-balanced {cfg.class_balanced}): scores "
        f"{min(record['scores'])}..{max(record['scores'])}, classes {record['class_counts']} -> {out}",
        flush=True,
    )
    return record
