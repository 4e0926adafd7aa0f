"""ImageNet-100 from a folder or an archive you provide, decoded and resized in parallel.

Options (config `datasets.<name>` entry):
    path:       the dataset folder, or a .tar / .tar.gz / .tgz / .zip archive of it (required)
    image_size: stored resolution S; every image becomes S x S (default 224)
    workers:    decoding processes; 0 = every core this process may use (default 0)
    resize:     how an image becomes S x S (default shorter_then_center_crop):
                - shorter_then_center_crop: the shorter side is resized to S and the centre
                  S x S is kept (torchvision's Resize(S) + CenterCrop(S)); computed in one step
                  as the central min(w, h) square resampled to S x S, so no aspect distortion
                  and no intermediate rounding.
                - squash: the whole image resized to S x S, aspect ratio not kept (what the
                  hybrid-curriculum repository's utils/resize_script.py does).

Layouts (found at `path` or inside its single top-level folder):
    a) the common ImageNet-100 distribution (Kaggle "imagenet100"): train.X1/ ... train.X4/
       (the train split spread over several folders of WordNet-id class folders, n01440764/
       ...), val.X/ (the test split) and Labels.json (wnid -> human-readable name).
    b) a plain ImageFolder: train/<class>/* and val/<class>/* (val becomes "test"); class
       names are the folder names, or Labels.json's names when one sits beside them.
Classes are the sorted class-folder names of the train split (wnids); samples are ordered by
class, then by file path inside the class folder, so the store is the same on every machine.
Images are files with torchvision ImageFolder's extensions (.jpg .jpeg .png .ppm .bmp .pgm
.tif .tiff .webp, any case), looked for recursively in each class folder; other files are
skipped and counted in the provenance.

Errors name the file or folder: an image that fails to decode, an empty class folder, a val
class that no train folder has, a wnid missing from Labels.json, a missing split folder.

Archives are extracted (tar members are checked: regular files and folders only, no absolute
or `..` paths) into a temporary folder inside the store's own temporary folder
(`.<name>.tmp/extract-*`, so under the store's parent and on its filesystem), read from
there, and removed before the store is committed; a killed job leaves it inside `.<name>.tmp`,
which the next prepare clears. Extraction needs the archive's unpacked size in free space
and is single-threaded: for the full ImageNet-100 (~126k JPEGs) an extracted folder is faster.

Decoding follows the hybrid-curriculum repository's resize script (PIL, `convert("RGB")`,
Lanczos resampling), in parallel: a ProcessPoolExecutor gets chunks of files, and each worker
writes its images straight into the split's memory-mapped .npy (`writer.open_images`), so no
pixels travel through pipes. JPEGs are decoded with `draft`, i.e. DCT-domain downscaling by
1/2, 1/4 or 1/8 while both sides stay >= S, before the Lanczos step; at S = 224 ImageNet's
~500x375 photos decode at full size.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..config import ConfigError, config_from_dict
from .sources import register_source
from .store import StoreWriter

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
RESIZE_MODES = ("shorter_then_center_crop", "squash")
RESAMPLE = "LANCZOS"  # PIL filter; the reference resize script's choice
CHUNK_IMAGES = 256  # images per worker task: big enough to amortise the task overhead
LABELS_JSON = "Labels.json"
KAGGLE_TRAIN_PREFIX = "train.X"
KAGGLE_VAL = "val.X"


@dataclass(frozen=True)
class ImageNet100Options:
    path: str  # folder, or .tar/.tar.gz/.tgz/.zip archive
    image_size: int = 224  # stored S x S resolution (the models' input size)
    workers: int = 0  # decoding processes; 0 = all usable cores
    resize: str = "shorter_then_center_crop"  # or "squash"

    def __post_init__(self):
        if not isinstance(self.path, (str, os.PathLike)) or not str(self.path):
            raise ValueError(f"path must be a folder or archive path, got {self.path!r}")
        if not isinstance(self.image_size, int) or isinstance(self.image_size, bool) or self.image_size < 1:
            raise ValueError(f"image_size must be an integer >= 1, got {self.image_size!r}")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 0:
            raise ValueError(f"workers must be an integer >= 0 (0 = all cores), got {self.workers!r}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")


@dataclass(frozen=True)
class Layout:
    kind: str  # "kaggle" or "imagefolder"
    root: Path
    train_dirs: tuple[Path, ...]
    test_dir: Path
    labels_json: Path | None


@dataclass
class SplitFiles:
    paths: list[Path]  # in store order
    labels: np.ndarray  # int64
    skipped: int  # non-image files ignored


# ------------------------------------------------------------------------------- layout


def usable_cpus() -> int:
    """Cores this process may run on (SLURM / taskset aware), not the machine's total."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX")))


def detect_layout(folder: Path) -> Layout | None:
    kaggle_train = [
        p
        for p in visible(folder)
        if p.is_dir() and p.name.startswith(KAGGLE_TRAIN_PREFIX) and p.name[len(KAGGLE_TRAIN_PREFIX) :].isdigit()
    ]
    labels = folder / LABELS_JSON
    if kaggle_train:
        kaggle_train.sort(key=lambda p: int(p.name[len(KAGGLE_TRAIN_PREFIX) :]))
        if not (folder / KAGGLE_VAL).is_dir():
            raise FileNotFoundError(
                f"{folder / KAGGLE_VAL}: missing; the ImageNet-100 layout has "
                f"{', '.join(p.name for p in kaggle_train)} and needs "
                f"{KAGGLE_VAL} for the test split"
            )
        if not labels.is_file():
            raise FileNotFoundError(f"{labels}: missing; the ImageNet-100 layout's wnid -> class name map")
        return Layout("kaggle", folder, tuple(kaggle_train), folder / KAGGLE_VAL, labels)
    if (folder / "train").is_dir():
        if not (folder / "val").is_dir():
            raise FileNotFoundError(f"{folder / 'val'}: missing; an ImageFolder layout needs train/ and val/")
        return Layout("imagefolder", folder, (folder / "train",), folder / "val", labels if labels.is_file() else None)
    return None


def find_layout(root: Path, shown: Callable[[Path], str]) -> Layout:
    """The layout at `root`, or inside its only top-level folder (archives often add one)."""
    layout = detect_layout(root)
    entries = visible(root)
    if layout is None and len(entries) == 1 and entries[0].is_dir():
        layout = detect_layout(entries[0])
    if layout is None:
        listing = ", ".join(p.name for p in entries[:10]) + (", ..." if len(entries) > 10 else "")
        raise FileNotFoundError(
            f"{shown(root)}: no ImageNet-100 layout found (expected train.X1/.../val.X/ and "
            f"{LABELS_JSON}, or train/<class>/ and val/<class>/); it holds: {listing or 'nothing'}"
        )
    return layout


def class_files(split_dir: Path, shown: Callable[[Path], str]) -> tuple[dict[str, list[tuple]], int]:
    """class folder name -> [(path parts below the class folder, path)] (recursive); skipped count."""
    classes: dict[str, list[tuple]] = {}
    skipped = 0
    for class_dir in visible(split_dir):
        if not class_dir.is_dir():
            skipped += 1
            continue
        files = []
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    file = Path(dirpath) / name
                    files.append((file.relative_to(class_dir).parts, file))
                else:
                    skipped += 1
        if not files:
            raise ValueError(
                f"{shown(class_dir)}: empty class folder (no image files with extensions {' '.join(IMAGE_EXTENSIONS)})"
            )
        classes.setdefault(class_dir.name, []).extend(files)
    return classes, skipped


def read_class_names(
    labels_json: Path, wnids: list[str], folders: dict[str, Path], shown: Callable[[Path], str]
) -> list[str]:
    try:
        names = json.loads(labels_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{shown(labels_json)}: not a readable JSON object ({err})") from None
    if not isinstance(names, dict):
        raise ValueError(f"{shown(labels_json)}: expected a JSON object wnid -> class name, got {type(names).__name__}")
    for wnid in wnids:
        if wnid not in names:
            raise ValueError(f"{shown(labels_json)}: no entry for class {wnid} (the folder {shown(folders[wnid])})")
    return [str(names[wnid]) for wnid in wnids]


def index_layout(layout: Layout, shown: Callable[[Path], str]) -> tuple[list[str], list[str], dict[str, SplitFiles]]:
    """(class folder names, class names, {"train": ..., "test": ...}) in store order."""
    train: dict[str, list[tuple]] = {}
    first_folder: dict[str, Path] = {}
    skipped = 0
    for split_dir in layout.train_dirs:
        found, n_skipped = class_files(split_dir, shown)
        skipped += n_skipped
        for name, files in found.items():
            train.setdefault(name, []).extend(files)
            first_folder.setdefault(name, split_dir / name)
    if not train:
        raise ValueError(f"{', '.join(shown(d) for d in layout.train_dirs)}: no class folders")
    test, test_skipped = class_files(layout.test_dir, shown)
    for name in sorted(test):
        if name not in train:
            raise ValueError(
                f"{shown(layout.test_dir / name)}: class {name} is in "
                f"{layout.test_dir.name}/ but in no training folder "
                f"({', '.join(d.name for d in layout.train_dirs)})"
            )
    if not test:
        raise ValueError(f"{shown(layout.test_dir)}: no class folders")
    wnids = sorted(train)
    absent = [w for w in wnids if w not in test]
    if absent:
        print(
            f"warning: {shown(layout.test_dir)} has no folder for {len(absent)} training "
            f"class(es): {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}",
            file=sys.stderr,
        )
    names = read_class_names(layout.labels_json, wnids, first_folder, shown) if layout.labels_json else list(wnids)

    def ordered(found: dict[str, list[tuple]], skipped: int) -> SplitFiles:
        paths, labels = [], []
        for label, wnid in enumerate(wnids):
            # by path below the class folder; the train.X folder name breaks (unlikely) ties
            files = [path for _, path in sorted(found.get(wnid, []), key=lambda e: (e[0], str(e[1])))]
            paths += files
            labels += [label] * len(files)
        return SplitFiles(paths, np.asarray(labels, dtype=np.int64), skipped)

    return wnids, names, {"train": ordered(train, skipped), "test": ordered(test, test_skipped)}


# ------------------------------------------------------------------------------- archives


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive: Path, dest: Path) -> None:
    """Extract a tar (any compression) or zip archive in one pass; refuses escaping paths,
    skips links, and rejects an archive that ends early (tarfile alone stops quietly at a
    missing or damaged header, which would drop the remaining images without a word)."""
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:  # a truncated zip has no central directory
                zf.extractall(dest)  # drops absolute and ".." components; checks each CRC
            return
        with tarfile.open(archive, "r:*") as tar:
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            for member in tar:
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise ValueError(f"{archive}: member {member.name!r} would land outside the extraction folder")
                if member.isfile() or member.isdir():
                    tar.extract(member, dest, **kwargs)
            check_tar_end(archive, tar)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise ValueError(
            f"{archive}: cannot extract ({type(err).__name__}: {err}); the archive is truncated or corrupted"
        ) from None


def check_tar_end(archive: Path, tar: tarfile.TarFile) -> None:
    """The member list must end at the end-of-archive marker (zero blocks), not at EOF."""
    stream, end = tar.fileobj, tar.offset  # offset: where the header after the last member sits
    if isinstance(stream, io.BufferedReader):  # plain .tar: look at that block
        stream.seek(end)
        block = stream.read(tarfile.BLOCKSIZE)
        complete = len(block) == tarfile.BLOCKSIZE and block.count(0) == tarfile.BLOCKSIZE
    else:  # compressed: reading on to the end checks the stream's own CRC / length
        while stream.read(2**20):
            pass
        complete = stream.tell() >= end + 2 * tarfile.BLOCKSIZE
    if not complete:
        raise ValueError(
            f"{archive}: no end-of-archive marker after member {len(tar.members)} "
            f"({tar.members[-1].name if tar.members else 'none'}): the archive is truncated "
            "or corrupted"
        )


@contextlib.contextmanager
def opened(path: Path, scratch: Path) -> Iterator[tuple[Path, Callable[[Path], str]]]:
    """(folder to read, how to name a file in messages): the folder itself, or the archive
    extracted into a temporary folder under `scratch` (removed on exit)."""
    if path.is_dir():
        yield path, str
        return
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder or archive (imagenet100 `path`)")
    if not is_archive(path):
        raise ValueError(f"{path}: not a folder or a {'/'.join(ARCHIVE_SUFFIXES)} archive")
    with tempfile.TemporaryDirectory(dir=scratch, prefix="extract-") as tmp:
        root = Path(tmp)
        print(f"extracting {path} into {root}", file=sys.stderr, flush=True)
        extract_archive(path, root)
        yield root, lambda p: f"{path}:{Path(p).relative_to(root).as_posix()}"


# ------------------------------------------------------------------------------- decoding


def load_image(path: str | Path, size: int, resize: str) -> np.ndarray:
    """One image file -> uint8 (3, size, size)."""
    from PIL import Image

    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG only: DCT downscale while both sides stay >= size
        rgb = img.convert("RGB")
    w, h = rgb.size
    if resize == "squash":
        box = (0.0, 0.0, float(w), float(h))
    else:  # shorter_then_center_crop: the central min(w, h) square
        side = min(w, h)
        left, top = (w - side) / 2, (h - side) / 2
        box = (left, top, left + side, top + side)
    out = rgb.resize((size, size), getattr(Image.Resampling, RESAMPLE), box=box)
    return np.asarray(out, dtype=np.uint8).transpose(2, 0, 1)


def decode_chunk(npy_path: str, start: int, paths: list[str], shown: list[str], size: int, resize: str) -> int:
    """Worker task: decode `paths` into rows start.. of the memory-mapped .npy."""
    out = np.load(npy_path, mmap_mode="r+")
    for i, path in enumerate(paths):
        try:
            out[start + i] = load_image(path, size, resize)
        except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError ...)
            raise ValueError(f"{shown[i]}: cannot decode image ({type(err).__name__}: {err})") from None
    out.flush()
    del out
    return len(paths)


def progress_bar(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(total, desc)
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, mininterval=1.0, smoothing=0.05)


class _PlainProgress:
    """Progress to stderr every 10 % when tqdm is not installed."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done, self.shown = total, desc, 0, -1

    def update(self, n: int) -> None:
        self.done += n
        tenth = 10 * self.done // max(1, self.total)
        if tenth > self.shown:
            self.shown = tenth
            print(f"{self.desc}: {self.done}/{self.total} images", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def decode_split(
    npy_path: str, paths: list[Path], shown: Callable[[Path], str], size: int, resize: str, workers: int, desc: str
) -> None:
    n = len(paths)
    chunk = max(1, min(CHUNK_IMAGES, -(-n // (4 * workers))))  # >= 4 tasks per worker when small
    tasks = [
        (
            npy_path,
            start,
            [str(p) for p in paths[start : start + chunk]],
            [shown(p) for p in paths[start : start + chunk]],
            size,
            resize,
        )
        for start in range(0, n, chunk)
    ]
    bar = progress_bar(n, desc)
    try:
        if workers == 1 or len(tasks) == 1:
            for task in tasks:
                bar.update(decode_chunk(*task))
            return
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            pending = {pool.submit(decode_chunk, *task) for task in tasks}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        bar.update(future.result())  # re-raises a worker's error
            finally:
                for future in pending:
                    future.cancel()
    finally:
        bar.close()


# ------------------------------------------------------------------------------- source


@register_source("imagenet100")
def imagenet100(options: dict, writer: StoreWriter) -> dict:
    """ImageNet-100 (Kaggle layout or an ImageFolder), resized to image_size x image_size."""
    if "path" not in options:
        raise ConfigError("imagenet100.path: required; the ImageNet-100 folder or .tar/.tar.gz/.zip archive")
    opts = config_from_dict(ImageNet100Options, options, "imagenet100")
    path = Path(opts.path).expanduser()
    size = opts.image_size
    workers = opts.workers or usable_cpus()

    with opened(path, writer.tmp_dir) as (root, shown):
        layout = find_layout(root, shown)
        wnids, names, splits = index_layout(layout, shown)
        for split, files in splits.items():
            if not files.paths:
                raise ValueError(
                    f"{shown(layout.test_dir if split == 'test' else layout.root)}: no images for the {split} split"
                )
            images = writer.open_images(split, (len(files.paths), 3, size, size))
            npy_path = str(images.filename)
            del images  # the workers write through their own maps of the same file
            decode_split(npy_path, files.paths, shown, size, opts.resize, workers, desc=f"imagenet100 {split}")
            writer.add_labels(split, files.labels)

        rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
        info = {
            "archive": path.is_file(),
            "layout": layout.kind,
            "train_folders": [rel(d) for d in layout.train_dirs],
            "test_folder": rel(layout.test_dir),
            "labels_file": rel(layout.labels_json) if layout.labels_json else None,
            "wnids": wnids,
            "image_size": size,
            "resize": opts.resize,
            "resample": RESAMPLE.lower(),
            "files": {split: len(files.paths) for split, files in splits.items()},
            "skipped_files": {split: files.skipped for split, files in splits.items()},
            "decode_workers": workers,
            "pillow": pillow_version(),
        }
    writer.classes = names
    return info


def pillow_version() -> str:
    import PIL

    return PIL.__version__
