"""The canonical dataset store (DESIGN.md): one folder per prepared dataset.

    <dir>/train_images.npy   uint8  (N, C, H, W)
    <dir>/train_labels.npy   int64  (N,)
    <dir>/test_images.npy    ...    (and any other split: val, ...)
    <dir>/<extra>.npy        per-sample side arrays, e.g. train_clean_labels for label noise
    <dir>/manifest.json      shapes, dtypes, classes, source, splits and sha256 of each array

A store is written into a temporary sibling folder and renamed into place at the end, so a
failed or killed `prepare` never leaves a half-written store. Every array is checked against
its manifest checksum when loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
HASH_CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)


def sha256(array: np.ndarray) -> str:
    """sha256 of the array's C-order bytes, hashed in chunks so memory maps stay cheap."""
    digest = hashlib.sha256()
    flat = array.reshape(-1) if array.flags.c_contiguous else np.ascontiguousarray(array).reshape(-1)
    step = max(1, HASH_CHUNK_BYTES // max(1, flat.itemsize))
    for start in range(0, flat.size, step):
        digest.update(np.ascontiguousarray(flat[start:start + step]).tobytes())
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class StoreWriter:
    """Builds a store in `.<name>.tmp` beside `out_dir`; `commit` checks it and renames it.

    Use as a context manager: leaving the block by an exception removes the temporary folder.
    Large splits can be streamed into `open_images` memory maps instead of passed whole.
    """

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.tmp_dir = self.out_dir.with_name(f".{self.out_dir.name}.tmp")
        if self.tmp_dir.exists():
            shutil.rmtree(self.tmp_dir)
        self.tmp_dir.mkdir(parents=True)
        self.splits: list[str] = []
        self.extras: list[str] = []
        self.classes: list[str] | None = None  # set by the source

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def add_split(self, name: str, images: np.ndarray, labels: np.ndarray) -> None:
        np.save(self.tmp_dir / f"{name}_images.npy", images)
        self.add_labels(name, labels)

    def open_images(self, name: str, shape: tuple[int, ...]) -> np.memmap:
        """A writable uint8 memory map for a split too large to hold; then call add_labels."""
        return np.lib.format.open_memmap(self.tmp_dir / f"{name}_images.npy", mode="w+",
                                         dtype=np.uint8, shape=shape)

    def add_labels(self, name: str, labels: np.ndarray) -> None:
        np.save(self.tmp_dir / f"{name}_labels.npy", labels)
        self.splits.append(name)

    def add_extra(self, name: str, array: np.ndarray) -> None:
        np.save(self.tmp_dir / f"{name}.npy", array)
        self.extras.append(name)

    def commit(self, classes: list[str], source: dict) -> dict:
        arrays = {}
        image_shape = None
        for name in self.splits:
            images = np.load(self.tmp_dir / f"{name}_images.npy", mmap_mode="r")
            labels = np.load(self.tmp_dir / f"{name}_labels.npy")
            check_split(name, images, labels, len(classes))
            if image_shape not in (None, images.shape[1:]):
                raise ValueError(f"split {name!r} has images of shape {images.shape[1:]}, "
                                 f"another split {image_shape}")
            image_shape = images.shape[1:]
            arrays[f"{name}_images"] = describe(f"{name}_images.npy", images)
            arrays[f"{name}_labels"] = describe(f"{name}_labels.npy", labels)
        for name in self.extras:
            arrays[name] = describe(f"{name}.npy", np.load(self.tmp_dir / f"{name}.npy", mmap_mode="r"))
        manifest = {
            "classes": list(classes),
            "splits": {name: arrays[f"{name}_labels"]["shape"][0] for name in self.splits},
            "image_shape": list(image_shape or ()),
            "source": source,
            "arrays": arrays,
        }
        atomic_write_bytes(self.tmp_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
        if self.out_dir.exists():
            shutil.rmtree(self.out_dir)
        os.replace(self.tmp_dir, self.out_dir)
        return manifest


def describe(file: str, array: np.ndarray) -> dict:
    return {"file": file, "shape": list(array.shape), "dtype": str(array.dtype), "sha256": sha256(array)}


def write_store(out_dir: Path, splits: dict[str, Split], classes: list[str], source: dict) -> dict:
    """Write in-memory splits as a canonical store (all or nothing)."""
    with StoreWriter(out_dir) as writer:
        for name, split in splits.items():
            writer.add_split(name, split.images, split.labels)
        return writer.commit(classes, source)


def read_manifest(store_dir: Path) -> dict:
    path = Path(store_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: no dataset manifest; run `python -m curriculum_bench prepare` first")
    return json.loads(path.read_text())


def load_array(store_dir: Path, name: str, verify: bool = True, mmap: bool = False) -> np.ndarray:
    store_dir = Path(store_dir)
    entry = read_manifest(store_dir)["arrays"].get(name)
    if entry is None:
        raise KeyError(f"{store_dir}: no array {name!r} in {MANIFEST}")
    array = np.load(store_dir / entry["file"], mmap_mode="r" if mmap else None)
    if verify and sha256(array) != entry["sha256"]:
        raise ValueError(f"{store_dir / entry['file']}: sha256 differs from {MANIFEST}; prepare it again")
    return array


def load_split(store_dir: Path, split: str, verify: bool = True, mmap: bool = False) -> Split:
    manifest = read_manifest(store_dir)
    if split not in manifest["splits"]:
        raise KeyError(f"{store_dir}: no split {split!r}; the store has {sorted(manifest['splits'])}")
    return Split(load_array(store_dir, f"{split}_images", verify, mmap),
                 load_array(store_dir, f"{split}_labels", verify))


def check_split(name: str, images: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"split {name!r}: images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}")
    if labels.dtype != np.int64 or labels.shape != (len(images),):
        raise ValueError(f"split {name!r}: labels must be int64 (N,), got {labels.dtype} {labels.shape}")
    if len(labels) and not (0 <= labels.min() and labels.max() < num_classes):
        raise ValueError(f"split {name!r}: labels outside [0, {num_classes})")
