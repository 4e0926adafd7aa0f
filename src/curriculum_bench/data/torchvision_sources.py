"""MNIST, CIFAR-10 and CIFAR-100 through torchvision's own dataset classes.

Options (config `datasets.<name>` entry):
    data_root: folder that holds (or will hold) torchvision's raw files; null means
               `resources/raw/<source>` relative to the working directory.
    download:  fetch missing raw files with torchvision's downloaders (default true).

torchvision reads the files; this module checks them first, because torchvision alone says
only "Dataset not found or corrupted". Every raw file is verified against the md5 that
torchvision records for it (`MNIST.resources`, `CIFAR10.train_list/test_list/meta`, ...), so
a truncated or corrupted file fails with its path, its md5 and the expected one. Where the
raw files are already there, no network is touched: the downloaders run only for files that
are missing and only with `download: true`. A file that fails its check is never replaced
silently: delete it to download it again.

On-disk layouts (torchvision's):
    <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
        the md5s are of the .gz files; a .gz is decompressed beside itself when its IDX file
        is missing (as torchvision does after downloading), an IDX file already there must
        equal its .gz's content, and IDX files without their .gz (torchvision accepts them)
        are checked by magic number (2051 images, 2049 labels), dimensions and byte size.
    <root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
    <root>/cifar-100-python/{train,test,meta}
        python pickles; where they are missing but torchvision's archive
        (cifar-10-python.tar.gz, cifar-100-python.tar.gz) sits in <root>, it is verified and
        extracted without a download.

The store gets MNIST as (N, 1, 28, 28) and CIFAR as (N, 3, 32, 32) uint8 (CHW, from
torchvision's HWC arrays), int64 labels, the official train/test splits in file order, and
the dataset's own `.classes` as class names.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import config_from_dict
from .sources import register_source
from .store import StoreWriter

RAW_DIR = "resources/raw"  # data_root: null -> RAW_DIR/<source>, relative to the working directory

# Expected md5 per raw file name, replacing torchvision's recorded one for that name. Empty
# by default: torchvision's own lists are the reference. Tests fill it for fabricated files.
MD5_OVERRIDES: dict[str, dict[str, str]] = {"mnist": {}, "cifar10": {}, "cifar100": {}}
# The same for `prepare` jobs of a workflow run on fabricated files (the paper smoke run,
# curriculum_bench.smoke): a JSON file {source: {file name: md5}}. The manifest records each
# file so checked as "md5 override".
MD5_OVERRIDES_ENV = "CURRICULUM_BENCH_MD5_OVERRIDES"

# IDX files: (magic number, per-item shape). Magic = 0x08 (unsigned byte) << 8 | ndim.
MNIST_IDX = {"images": (2051, (28, 28)), "labels": (2049, ())}
MNIST_NUM_CLASSES = 10


@dataclass(frozen=True)
class TorchvisionOptions:
    data_root: str | None = None  # null -> resources/raw/<source>
    download: bool = True  # fetch missing raw files with torchvision's downloaders

    def __post_init__(self):
        if self.data_root is not None and not isinstance(self.data_root, (str, os.PathLike)):
            raise ValueError(f"data_root must be a path or null, got {self.data_root!r}")
        if not isinstance(self.download, bool):
            raise ValueError(f"download must be true or false, got {self.download!r}")


def parse_options(source: str, options: dict) -> tuple[Path, bool]:
    opts = config_from_dict(TorchvisionOptions, options, source)
    root = Path(opts.data_root) if opts.data_root is not None else Path(RAW_DIR) / source
    return root, opts.download


def md5_overrides(source: str) -> dict[str, str]:
    """MD5_OVERRIDES[source], over the file named by $CURRICULUM_BENCH_MD5_OVERRIDES if set."""
    from_env = {}
    if os.environ.get(MD5_OVERRIDES_ENV):
        path = Path(os.environ[MD5_OVERRIDES_ENV])
        try:
            from_env = json.loads(path.read_text()).get(source) or {}
        except (OSError, ValueError, AttributeError) as err:
            raise ValueError(f"{path} (${MD5_OVERRIDES_ENV}): not a JSON object of md5s per source ({err})") from None
    return {**from_env, **(MD5_OVERRIDES.get(source) or {})}


def dataset_class(source: str):
    """torchvision's class for `source`; a same-named subclass when MD5_OVERRIDES is set,
    so that torchvision's own integrity checks use the same md5s as ours."""
    from torchvision.datasets import CIFAR10, CIFAR100, MNIST

    base = {"mnist": MNIST, "cifar10": CIFAR10, "cifar100": CIFAR100}[source]
    if not md5_overrides(source):
        return base
    md5 = expected_md5(source)
    if base is MNIST:
        attrs = {"resources": [(name, md5[name]) for name, _ in base.resources]}
    else:
        attrs = {
            "train_list": [[name, md5[name]] for name, _ in base.train_list],
            "test_list": [[name, md5[name]] for name, _ in base.test_list],
            "meta": {**base.meta, "md5": md5[base.meta["filename"]]},
            "tgz_md5": md5[base.filename],
        }
    return type(base.__name__, (base,), attrs)


def expected_md5(source: str) -> dict[str, str]:
    """File name -> md5: torchvision's recorded lists, then md5_overrides(source)."""
    from torchvision.datasets import CIFAR10, CIFAR100, MNIST

    if source == "mnist":
        recorded = dict(MNIST.resources)
    else:
        cls = CIFAR10 if source == "cifar10" else CIFAR100
        recorded = dict(cls.train_list + cls.test_list)
        recorded[cls.meta["filename"]] = cls.meta["md5"]
        recorded[cls.filename] = cls.tgz_md5
    return {**recorded, **md5_overrides(source)}


def md5_origin(source: str, name: str) -> str:
    return "md5 override" if name in md5_overrides(source) else "md5 recorded by torchvision"


def file_md5(path: Path) -> str:
    from torchvision.datasets.utils import calculate_md5

    return calculate_md5(path)


def verify_md5(path: Path, expected: str) -> str:
    """torchvision's check_integrity, with an error that names the file and both md5s."""
    from torchvision.datasets.utils import check_integrity

    if check_integrity(path, expected):
        return expected
    got = file_md5(path)
    raise ValueError(
        f"{path}: md5 {got} does not match the expected {expected} "
        f"({path.stat().st_size} bytes): the file is truncated or corrupted; "
        "delete it and prepare again with download: true, or replace it"
    )


def fetch(source: str, cls, root: Path) -> None:
    """torchvision's own downloader (its mirrors, md5 checks and extraction)."""
    print(f"{source}: downloading the missing raw files into {root} with torchvision", flush=True)
    try:
        cls(str(root), train=True, download=True)
    except (RuntimeError, OSError) as err:  # urllib's URLError is an OSError
        raise RuntimeError(
            f"{source}: torchvision could not download into {root} ({err}); copy the "
            "raw files there yourself, or set data_root to a folder that has them"
        ) from err


def missing_files_error(source: str, root: Path, missing: list[Path], alternative: str = "") -> FileNotFoundError:
    listed = ", ".join(str(p) for p in missing)
    return FileNotFoundError(
        f"{source}: raw files missing under {root}: {listed}{alternative}. Set download: true to "
        f"fetch them with torchvision, or copy the files there (or set data_root to a folder "
        f"that has them)"
    )


# ---------------------------------------------------------------------------------- MNIST


def gunzip(gz: Path, target: Path) -> None:
    """Decompress gz beside itself, atomically (a failure leaves no partial IDX file)."""
    part = target.with_name(target.name + ".part")
    try:
        with gzip.open(gz, "rb") as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except (OSError, EOFError, zlib.error) as err:
        part.unlink(missing_ok=True)
        raise ValueError(
            f"{gz}: cannot decompress ({err}): the file is truncated or not gzip; "
            "delete it and prepare again with download: true, or replace it"
        ) from None
    os.replace(part, target)


def gz_content_md5(gz: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with gzip.open(gz, "rb") as f:
            while chunk := f.read(2**20):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{gz}: cannot decompress ({err}): the file is truncated or not gzip") from None
    return digest.hexdigest()


def check_idx(path: Path, kind: str) -> int:
    """Check an IDX file's magic number, dimensions and size; return its item count."""
    magic, item_shape = MNIST_IDX[kind]
    header_len = 4 * (2 + len(item_shape))
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(header_len)
    if len(header) < header_len:
        raise ValueError(f"{path}: truncated IDX file ({size} bytes, shorter than its header)")
    got_magic, count, *dims = struct.unpack(f">{2 + len(item_shape)}i", header)
    if got_magic != magic:
        raise ValueError(f"{path}: IDX magic number {got_magic}, expected {magic} (MNIST {kind})")
    if tuple(dims) != item_shape:
        raise ValueError(f"{path}: IDX item shape {tuple(dims)}, expected {item_shape}")
    expected = header_len + count * int(np.prod(item_shape, dtype=np.int64))
    if size != expected:
        raise ValueError(
            f"{path}: {size} bytes, expected {expected} for {count} {kind} "
            f"of shape {item_shape}: the file is truncated or corrupted"
        )
    return count


@register_source("mnist")
def mnist(options: dict, writer: StoreWriter) -> dict:
    """torchvision.datasets.MNIST: 60,000 train / 10,000 test 28x28 digits."""
    root, download = parse_options("mnist", options)
    cls = dataset_class("mnist")
    raw = root / cls.__name__ / "raw"  # torchvision's raw_folder
    md5 = expected_md5("mnist")
    names = [name for name, _ in cls.resources]

    missing = [
        raw / name for name in names if not (raw / name).is_file() and not (raw / name.removesuffix(".gz")).is_file()
    ]
    downloaded = False
    if missing:
        if not download:
            raise missing_files_error("mnist", raw, missing, " (or the same names without .gz, extracted)")
        fetch("mnist", cls, root)
        downloaded = True

    files = {}
    for name in names:
        gz, idx = raw / name, raw / name.removesuffix(".gz")
        if gz.is_file():
            verify_md5(gz, md5[name])
            files[str(gz.relative_to(root))] = {"md5": md5[name], "checked": md5_origin("mnist", name)}
            if not idx.is_file():
                gunzip(gz, idx)
            elif file_md5(idx) != gz_content_md5(gz):
                raise ValueError(
                    f"{idx}: differs from the content of its verified {gz.name}; "
                    "delete it so that it is extracted again"
                )
        else:
            files[str(idx.relative_to(root))] = {
                "md5": file_md5(idx),
                "checked": "IDX magic, shape and size (no .gz to verify)",
            }

    for prefix in ("train", "t10k"):
        images = raw / f"{prefix}-images-idx3-ubyte"
        labels = raw / f"{prefix}-labels-idx1-ubyte"
        n_images, n_labels = check_idx(images, "images"), check_idx(labels, "labels")
        if n_images != n_labels:
            raise ValueError(f"{images}: {n_images} images but {labels} has {n_labels} labels")

    for split, train in (("train", True), ("test", False)):
        data = cls(str(root), train=train, download=False)
        images = data.data.numpy().astype(np.uint8, copy=False)[:, None]
        labels = data.targets.numpy().astype(np.int64)
        if len(labels) and labels.max() >= MNIST_NUM_CLASSES:
            label_file = raw / f"{'train' if train else 't10k'}-labels-idx1-ubyte"
            raise ValueError(f"{label_file}: label {labels.max()} outside 0..{MNIST_NUM_CLASSES - 1}")
        writer.add_split(split, images, labels)
        classes = list(data.classes)
    writer.classes = classes
    return {"root": str(root), "downloaded": downloaded, "files": files, "torchvision": torchvision_version()}


# ---------------------------------------------------------------------------------- CIFAR


def cifar(source: str, options: dict, writer: StoreWriter) -> dict:
    root, download = parse_options(source, options)
    cls = dataset_class(source)
    folder = root / cls.base_folder
    md5 = expected_md5(source)
    names = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    archive = root / cls.filename

    missing = [folder / name for name in names if not (folder / name).is_file()]
    downloaded = extracted = False
    if missing:
        if archive.is_file():
            from torchvision.datasets.utils import extract_archive

            verify_md5(archive, md5[cls.filename])
            extract_archive(str(archive), str(root))  # what torchvision does after downloading
            extracted = True
        elif download:
            fetch(source, cls, root)
            downloaded = True
        else:
            raise missing_files_error(source, folder, missing, f" (and no archive {archive})")

    files = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: missing after {'the download' if downloaded else 'extracting'} of {archive}"
            )
        verify_md5(path, md5[name])
        files[str(path.relative_to(root))] = {"md5": md5[name], "checked": md5_origin(source, name)}

    for split, train in (("train", True), ("test", False)):
        data = cls(str(root), train=train, download=False)
        images = np.ascontiguousarray(np.asarray(data.data, dtype=np.uint8).transpose(0, 3, 1, 2))  # HWC -> CHW
        labels = np.asarray(data.targets, dtype=np.int64)
        if len(labels) != len(images):
            raise ValueError(f"{folder}: {split} split has {len(images)} images but {len(labels)} labels")
        if len(labels) and not 0 <= labels.min() <= labels.max() < len(data.classes):
            raise ValueError(
                f"{folder}: {split} labels outside 0..{len(data.classes) - 1} "
                f"(the batches disagree with {cls.meta['filename']})"
            )
        writer.add_split(split, images, labels)
        classes = list(data.classes)
    writer.classes = classes
    return {
        "root": str(root),
        "downloaded": downloaded,
        "extracted_archive": extracted,
        "files": files,
        "torchvision": torchvision_version(),
    }


@register_source("cifar10")
def cifar10(options: dict, writer: StoreWriter) -> dict:
    """torchvision.datasets.CIFAR10: 50,000 train / 10,000 test 32x32 colour images."""
    return cifar("cifar10", options, writer)


@register_source("cifar100")
def cifar100(options: dict, writer: StoreWriter) -> dict:
    """torchvision.datasets.CIFAR100: 50,000 train / 10,000 test, 100 fine classes."""
    return cifar("cifar100", options, writer)


def torchvision_version() -> str:
    import torchvision

    return torchvision.__version__
