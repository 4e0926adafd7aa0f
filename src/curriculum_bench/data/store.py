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

from ..errors import InputFileError, MissingInputFile

MANIFEST = "manifest.json"
# What every manifest holds (StoreWriter.commit writes it); read_manifest refuses one without.
MANIFEST_KEYS = {"classes": list, "splits": dict, "image_shape": list, "source": dict, "arrays": dict}
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
        digest.update(np.ascontiguousarray(flat[start : start + step]).tobytes())
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a failure (a full disk) removes the `.tmp` and re-raises."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def add_split(self, name: str, images: np.ndarray, labels: np.ndarray) -> None:
        np.save(self.tmp_dir / f"{name}_images.npy", images)
        self.add_labels(name, labels)

    def open_images(self, name: str, shape: tuple[int, ...]) -> np.memmap:
        """A writable uint8 memory map for a split too large to hold; then call add_labels."""
        return np.lib.format.open_memmap(self.tmp_dir / f"{name}_images.npy", mode="w+", dtype=np.uint8, shape=shape)

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
                raise ValueError(f"split {name!r} has images of shape {images.shape[1:]}, another split {image_shape}")
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


def rebuild_hint(store_dir: Path) -> str:
    return (
        f"delete the store folder {store_dir} and prepare it again (rerun snakemake, or "
        "`python -m curriculum_bench prepare` / `derive`)"
    )


def read_manifest(store_dir: Path) -> dict:
    store_dir = Path(store_dir)
    path = store_dir / MANIFEST
    if not path.exists():
        raise MissingInputFile(
            path, "no dataset manifest", "run `python -m curriculum_bench prepare` first (snakemake does)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError and UnicodeDecodeError
        raise InputFileError(path, f"unreadable dataset manifest ({err})", rebuild_hint(store_dir)) from None
    if not isinstance(manifest, dict):
        raise InputFileError(path, "the dataset manifest is not a JSON object", rebuild_hint(store_dir))
    for key, kind in MANIFEST_KEYS.items():
        if not isinstance(manifest.get(key), kind):
            raise InputFileError(path, f"the dataset manifest has no {kind.__name__} {key!r}", rebuild_hint(store_dir))
    return manifest


def load_array(store_dir: Path, name: str, verify: bool = True, mmap: bool = False) -> np.ndarray:
    store_dir = Path(store_dir)
    entry = read_manifest(store_dir)["arrays"].get(name)
    if entry is None:
        raise InputFileError(store_dir / MANIFEST, f"no array {name!r} in the store")
    if not (isinstance(entry, dict) and {"file", "shape", "dtype", "sha256"} <= set(entry)):
        raise InputFileError(
            store_dir / MANIFEST,
            f"array {name!r}: the entry lacks file, shape, dtype or sha256",
            rebuild_hint(store_dir),
        )
    path = store_dir / entry["file"]
    if not path.exists():
        raise MissingInputFile(path, f"array {name!r} of the store is missing", rebuild_hint(store_dir))
    try:
        array = np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as err:  # truncated: "mmap length is greater than file size", ...
        raise InputFileError(
            path, f"cannot read array {name!r} ({err}): the file is truncated or damaged", rebuild_hint(store_dir)
        ) from None
    if list(array.shape) != list(entry["shape"]) or str(array.dtype) != entry["dtype"]:
        raise InputFileError(
            path,
            f"{array.dtype} {list(array.shape)}, the manifest says {entry['dtype']} {entry['shape']}",
            rebuild_hint(store_dir),
        )
    if verify and sha256(array) != entry["sha256"]:
        raise InputFileError(path, f"sha256 differs from {MANIFEST}: the file is damaged", rebuild_hint(store_dir))
    return array


def load_split(store_dir: Path, split: str, verify: bool = True, mmap: bool = False) -> Split:
    manifest = read_manifest(store_dir)
    if split not in manifest["splits"]:
        raise InputFileError(
            Path(store_dir) / MANIFEST, f"no split {split!r}; the store has {sorted(manifest['splits'])}"
        )
    return Split(
        load_array(store_dir, f"{split}_images", verify, mmap), load_array(store_dir, f"{split}_labels", verify)
    )


def check_split(name: str, images: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"split {name!r}: images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}")
    if labels.dtype != np.int64 or labels.shape != (len(images),):
        raise ValueError(f"split {name!r}: labels must be int64 (N,), got {labels.dtype} {labels.shape}")
    if len(labels) and not (labels.min() >= 0 and labels.max() < num_classes):
        raise ValueError(f"split {name!r}: labels outside [0, {num_classes})")
