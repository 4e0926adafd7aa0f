"""Derived datasets: a subset and/or label noise applied to a prepared store's train split.

Each derived dataset is its own cached `derive` job, so a noisy or subset variant is built
once and shared by every run that uses it. The test split is carried over unchanged.

Subsets (docs/methods.md §6 pitfall 4, "subsets by file order"):
- `first_n`: the first N training samples in file order (MLT's "10 % of MNIST", §2.1).
- `stratified_n`: a seeded stratified random sample of N (CLab samples per class).
- `validation_tail`: the last N training samples become a `val` split (cifar_1k, §5.2).
- `skip_first`: every training sample after the first N (a pool disjoint from `first_n`).
- `classes`: only the samples of the listed classes, in every split (a transfer source whose
  classes are disjoint from the target's); labels and the class list stay as they are.

Label noise (the train split only; `train_clean_labels` and `train_label_is_noisy` record
the truth):
- `permute_first` (data parameters, §4.3): the images of the first floor(N f) samples are
  permuted among themselves while labels stay put, so noise follows the class marginal and
  about 1/K of those samples stay correct by chance. DP counts the whole block as corrupted;
  `train_corrupted` keeps that convention beside the exact `train_label_is_noisy`.
- `uniform_other` (forgetting events, §5.1): floor(N f) samples, chosen without replacement,
  get a uniformly random *different* class, drawn as the official code does with
  numpy.random.RandomState(seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import config_from_dict
from .store import StoreWriter, load_array, read_manifest

SUBSET_KINDS = ("first_n", "stratified_n", "validation_tail", "skip_first", "classes")
NOISE_MODES = ("permute_first", "uniform_other")


@dataclass(frozen=True)
class SubsetConfig:
    kind: str = "first_n"
    n: int | None = None  # number of samples ...
    fraction: float | None = None  # ... or a fraction of the train split, floor(N * fraction)
    seed: int = 0  # stratified_n only
    classes: tuple[int, ...] = ()  # `classes` only: the class indices kept

    def __post_init__(self):
        if self.kind not in SUBSET_KINDS:
            raise ValueError(f"kind must be one of {SUBSET_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        if self.kind == "classes":
            if not self.classes or self.n is not None or self.fraction is not None:
                raise ValueError("kind classes takes `classes` (a non-empty list), not n or fraction")
            return
        if self.classes:
            raise ValueError(f"`classes` belongs to kind classes, not {self.kind}")
        if (self.n is None) == (self.fraction is None):
            raise ValueError("give exactly one of n and fraction")
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.fraction is not None and not 0 < self.fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {self.fraction}")

    def count(self, total: int) -> int:
        n = self.n if self.n is not None else int(total * self.fraction)
        if not 0 < n < total:
            raise ValueError(f"subset of {n} from a train split of {total} samples")
        return n


@dataclass(frozen=True)
class LabelNoiseConfig:
    mode: str = "permute_first"
    fraction: float = 0.4
    seed: int = 0

    def __post_init__(self):
        if self.mode not in NOISE_MODES:
            raise ValueError(f"mode must be one of {NOISE_MODES}, got {self.mode!r}")
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction}")


def subset_indices(labels: np.ndarray, cfg: SubsetConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """(kept train indices, indices moved to `val` or None), both in file order."""
    everything = np.arange(len(labels))
    if cfg.kind == "classes":
        keep = np.flatnonzero(np.isin(labels, cfg.classes))
        if len(keep) == 0:
            raise ValueError(f"no training sample of classes {list(cfg.classes)}")
        return keep, None
    n = cfg.count(len(labels))
    if cfg.kind == "first_n":
        return everything[:n], None
    if cfg.kind == "skip_first":
        return everything[n:], None
    if cfg.kind == "validation_tail":
        return everything[:-n], everything[-n:]
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(everything, train_size=n, stratify=labels, random_state=cfg.seed)
    return np.sort(keep), None


def permute_first(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """DP §4.3: (image order, corrupted block): position i receives the image of order[i],
    and the first floor(N f) positions are permuted among themselves."""
    block = int(n * fraction)
    order = np.arange(n)
    order[:block] = np.random.RandomState(seed).permutation(block)
    corrupted = np.zeros(n, dtype=bool)
    corrupted[:block] = True
    return order, corrupted


def uniform_other(labels: np.ndarray, num_classes: int, fraction: float, seed: int):
    """FE §5.1: floor(N f) samples (without replacement) get a random different class."""
    rng = np.random.RandomState(seed)
    noisy = labels.copy()
    chosen = rng.choice(np.arange(len(labels)), int(len(labels) * fraction), replace=False)
    for index in chosen:
        noisy[index] = rng.choice(np.delete(np.arange(num_classes), labels[index]), 1)[0]
    corrupted = np.zeros(len(labels), dtype=bool)
    corrupted[chosen] = True
    return noisy, corrupted


def derive(name: str, spec: dict, base_dir: Path, out_dir: Path) -> dict:
    """spec: {source: derived, from: <base>, subset: {...}?, label_noise: {...}?}."""
    subset = config_from_dict(SubsetConfig, spec["subset"], f"datasets.{name}.subset") if spec.get("subset") else None
    noise = (
        config_from_dict(LabelNoiseConfig, spec["label_noise"], f"datasets.{name}.label_noise")
        if spec.get("label_noise")
        else None
    )
    base = read_manifest(base_dir)
    classes = base["classes"]
    images = load_array(base_dir, "train_images")
    labels = load_array(base_dir, "train_labels")
    extras = {
        k: load_array(base_dir, k)
        for k in base["arrays"]
        if k.startswith("train_") and k not in ("train_images", "train_labels")
    }
    clean = extras.pop("train_clean_labels", labels)
    splits = {
        s: (load_array(base_dir, f"{s}_images"), load_array(base_dir, f"{s}_labels"))
        for s in base["splits"]
        if s != "train"
    }
    if subset is not None:
        keep, val = subset_indices(labels, subset)
        if val is not None:
            if "val" in splits:
                raise ValueError(f"datasets.{name}.subset: {spec['from']} already has a val split")
            splits["val"] = (images[val], labels[val])
        images, labels, clean = images[keep], labels[keep], clean[keep]
        extras = {k: v[keep] for k, v in extras.items()}
        if subset.kind == "classes":  # evaluation on the same classes as training
            splits = {s: (x[np.isin(y, subset.classes)], y[np.isin(y, subset.classes)]) for s, (x, y) in splits.items()}
    info = {}
    if noise is not None:
        if noise.mode == "permute_first":
            order, corrupted = permute_first(len(labels), noise.fraction, noise.seed)
            # Labels stay put; images and their true classes (and side arrays) move.
            images, clean = images[order], clean[order]
            extras = {k: v[order] for k, v in extras.items()}
        else:
            labels, corrupted = uniform_other(labels, len(classes), noise.fraction, noise.seed)
        extras["train_corrupted"] = corrupted
        info["corrupted"] = int(corrupted.sum())
    if noise is not None or "train_label_is_noisy" in extras:
        extras["train_clean_labels"] = clean
        extras["train_label_is_noisy"] = clean != labels
        info["label_is_noisy"] = int((clean != labels).sum())
    with StoreWriter(out_dir) as writer:
        writer.add_split("train", images, labels)
        for split, (split_images, split_labels) in splits.items():
            writer.add_split(split, split_images, split_labels)
        for key, array in extras.items():
            writer.add_extra(key, array)
        manifest = writer.commit(classes, {"name": name, **spec, "base_source": base["source"], **info})
    print(
        f"derived {name} from {spec['from']}: "
        + ", ".join(f"{k} {v}" for k, v in manifest["splits"].items())
        + (f"; {info['label_is_noisy']} noisy labels" if "label_is_noisy" in info else ""),
        flush=True,
    )
    return manifest
