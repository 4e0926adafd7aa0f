"""The canonical dataset store (DESIGN.md): one folder per prepared dataset.

    <dir>/train_images.npy   uint8  (N, C, H, W)
    <dir>/train_labels.npy   int64  (N,)
    <dir>/test_images.npy    ...
    <dir>/manifest.json      shapes, dtypes, classes, source, split and sha256 of each array

Every array is checked against its manifest checksum when loaded, so a truncated or
hand-edited file is caught before it trains a model.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_store(out_dir: Path, splits: dict[str, Split], classes: list[str], source: dict) -> dict:
    """Write `splits` as a canonical store; the manifest goes last so a store is whole or absent."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, split in splits.items():
        _check_split(name, split, len(classes))
        for kind, array in (("images", split.images), ("labels", split.labels)):
            file = f"{name}_{kind}.npy"
            np.save(out_dir / file, array)
            arrays[f"{name}_{kind}"] = {
                "file": file,
                "shape": list(array.shape),
                "dtype": str(array.dtype),
                "sha256": sha256(array),
            }
    manifest = {
        "classes": classes,
        "splits": {name: len(split.labels) for name, split in splits.items()},
        "image_shape": list(next(iter(splits.values())).images.shape[1:]),
        "source": source,
        "arrays": arrays,
    }
    atomic_write_bytes(out_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def read_manifest(store_dir: Path) -> dict:
    path = Path(store_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: no dataset manifest; run `python -m curriculum_bench prepare` first")
    return json.loads(path.read_text())


def load_split(store_dir: Path, split: str, verify: bool = True) -> Split:
    store_dir = Path(store_dir)
    manifest = read_manifest(store_dir)
    if split not in manifest["splits"]:
        raise KeyError(f"{store_dir}: no split {split!r}; the store has {sorted(manifest['splits'])}")
    loaded = []
    for kind in ("images", "labels"):
        entry = manifest["arrays"][f"{split}_{kind}"]
        array = np.load(store_dir / entry["file"])
        if verify and sha256(array) != entry["sha256"]:
            raise ValueError(f"{store_dir / entry['file']}: sha256 differs from {MANIFEST}; prepare it again")
        loaded.append(array)
    return Split(*loaded)


def _check_split(name: str, split: Split, num_classes: int) -> None:
    if split.images.dtype != np.uint8 or split.images.ndim != 4:
        raise ValueError(f"split {name!r}: images must be uint8 (N, C, H, W), got {split.images.dtype} {split.images.shape}")
    if split.labels.dtype != np.int64 or split.labels.shape != (len(split.images),):
        raise ValueError(f"split {name!r}: labels must be int64 (N,), got {split.labels.dtype} {split.labels.shape}")
    if len(split.labels) and not (0 <= split.labels.min() and split.labels.max() < num_classes):
        raise ValueError(f"split {name!r}: labels outside [0, {num_classes})")
