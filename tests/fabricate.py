"""Raw data and weights fabricated in the exact on-disk formats the readers expect (no network).

MNIST: torchvision's four gzipped IDX files under <root>/MNIST/raw/; CIFAR-10/100: torchvision's
python pickle batches (cifar-10-batches-py/, cifar-100-python/); ImageNet-100: JPEG class folders
in the Kaggle layout (train.X1.., val.X, Labels.json) or a plain ImageFolder (train/, val/).
Their md5s are not torchvision's recorded ones: the writers return {file name: md5}, which the
tests put in torchvision_sources.MD5_OVERRIDES (or, for workflow jobs, in the JSON file named by
CURRICULUM_BENCH_MD5_OVERRIDES).

Used by tests/test_raw_sources.py and, through `materialise`, by the paper smoke run
(curriculum_bench.smoke, tests/test_paper_smoke.py).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": 2051,
    "train-labels-idx1-ubyte.gz": 2049,
    "t10k-images-idx3-ubyte.gz": 2051,
    "t10k-labels-idx1-ubyte.gz": 2049,
}
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
WNIDS = {
    "n01440764": "tench, Tinca tinca",
    "n01443537": "goldfish, Carassius auratus",
    "n01484850": "great white shark, white shark",
}


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------- MNIST


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">{array.ndim + 1}i", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, arrays: dict) -> dict[str, str]:
    """arrays: {"train": (images, labels), "t10k": (images, labels)} -> the four .gz files
    under root/MNIST/raw; returns their md5s."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, (images, labels) in arrays.items():
        for kind, array, magic in (("images-idx3", images, 2051), ("labels-idx1", labels, 2049)):
            with gzip.GzipFile(raw / f"{prefix}-{kind}-ubyte.gz", "wb", mtime=0) as f:
                f.write(idx_bytes(np.asarray(array), magic))
    return {name: md5(raw / name) for name in MNIST_FILES}


def random_mnist(train: int, test: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "train": (rng.integers(0, 256, (train, 28, 28), dtype=np.uint8), np.arange(train) % 10),
        "t10k": (rng.integers(0, 256, (test, 28, 28), dtype=np.uint8), np.arange(test)[::-1] % 10),
    }


# ------------------------------------------------------------------------------- CIFAR


def write_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # str keys, read by torchvision with encoding="latin1"


def write_cifar10(
    root: Path, rows: np.ndarray, labels: list[int], train: int, names: list[str] = CIFAR10_NAMES, batches: int = 5
) -> dict[str, str]:
    """rows (N, 3072) uint8 (R, G, B planes); the first `train` over `batches` data batches,
    the rest the test batch; returns the md5 of every file in cifar-10-batches-py."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    labels = [int(v) for v in labels]
    bounds = np.linspace(0, train, batches + 1).astype(int)
    for b in range(batches):
        part = slice(bounds[b], bounds[b + 1])
        write_pickle(
            folder / f"data_batch_{b + 1}",
            {
                "batch_label": f"training batch {b + 1} of {batches}",
                "labels": labels[part],
                "data": rows[part],
                "filenames": [f"img_{i}.png" for i in range(bounds[b], bounds[b + 1])],
            },
        )
    n_test = len(labels) - train
    write_pickle(
        folder / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": labels[train:],
            "data": rows[train:],
            "filenames": [f"t{i}.png" for i in range(n_test)],
        },
    )
    write_pickle(
        folder / "batches.meta", {"label_names": names, "num_cases_per_batch": int(bounds[1]), "num_vis": 3072}
    )
    return {p.name: md5(p) for p in folder.iterdir()}


def write_cifar100(
    root: Path, rows: np.ndarray, fine: list[int], train: int, fine_names: list[str] | None = None
) -> dict[str, str]:
    """cifar-100-python/{train,test,meta}: the first `train` rows train, the rest test."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    fine = [int(v) for v in fine]
    for name, part in (("train", slice(0, train)), ("test", slice(train, len(fine)))):
        n = len(fine[part])
        write_pickle(
            folder / name,
            {
                "filenames": [f"{name}{i}.png" for i in range(n)],
                "batch_label": f"{name} batch",
                "fine_labels": fine[part],
                "coarse_labels": [f // 5 for f in fine[part]],
                "data": rows[part],
            },
        )
    write_pickle(
        folder / "meta",
        {
            "fine_label_names": fine_names or [f"class_{i:02d}" for i in range(100)],
            "coarse_label_names": [f"super_{i}" for i in range(20)],
        },
    )
    return {p.name: md5(p) for p in folder.iterdir()}


# ------------------------------------------------------------------------------- ImageNet-100


def jpeg(path, colour, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG", quality=95)


def kaggle_folder(root: Path, wnids: dict = WNIDS, train: int = 4, val: int = 2) -> Path:
    """Kaggle ImageNet-100: `train` JPEGs per class over train.X1/train.X2 (the first class in
    X1, the second in X2, the others in both), `val` per class in val.X, and Labels.json.
    Image k of class c is a flat (80 c, 60 k, 100) so the order can be read from pixels."""
    names = sorted(wnids)
    for c, wnid in enumerate(names):
        placement = (
            ["train.X1"] * train
            if c == 0
            else ["train.X2"] * train
            if c == 1
            else [("train.X2", "train.X1")[k % 2] for k in range(train)]
        )
        for k, folder in enumerate(placement):
            jpeg(
                root / folder / wnid / f"{wnid}_{k}.JPEG", ((80 * c) % 256, (60 * k) % 256, 100), size=(40 + 8 * k, 30)
            )
        for k in range(val):
            jpeg(
                root / "val.X" / wnid / f"ILSVRC2012_val_{c}{k}.JPEG",
                ((80 * c) % 256, (60 * k) % 256, 100),
                size=(30, 44),
            )
    (root / "Labels.json").write_text(json.dumps({**wnids, "n99999999": "unused"}))
    return root


def imagefolder(root: Path, classes: list[str], train: int, val: int, suffix: str = ".jpg") -> Path:
    """A plain ImageFolder: train/<class>/<k><suffix> and val/<class>/v<k><suffix>, flat colours."""
    for c, name in enumerate(classes):
        for k in range(train):
            jpeg(root / "train" / name / f"{k}{suffix}", ((80 * c) % 256, (60 * k) % 256, 100))
        for k in range(val):
            jpeg(root / "val" / name / f"v{k}{suffix}", ((80 * c) % 256, 0, 100))
    return root


# ------------------------------------------------------------------------------- the smoke run


def fabricate_raw(raw, workdir: Path, seed: int = 0) -> dict[str, dict[str, str]]:
    """The raw files of one smoke.RawData under workdir; returns {source: {file name: md5}}."""
    root = Path(workdir) / raw.path
    rng = np.random.default_rng(seed)
    if raw.source == "mnist":
        return {"mnist": write_mnist(root, random_mnist(raw.train, raw.test, seed))}
    total = raw.train + raw.test
    if raw.source in ("cifar10", "cifar100"):
        rows = rng.integers(0, 256, (total, 3072), dtype=np.uint8)
        labels = np.arange(total) % raw.classes
        writer = write_cifar10 if raw.source == "cifar10" else write_cifar100
        return {raw.source: writer(root, rows, labels, raw.train)}
    if raw.source == "imagenet100":
        per_train, per_val = raw.train // raw.classes, raw.test // raw.classes
        if raw.layout == "kaggle":
            kaggle_folder(root, dict(list(WNIDS.items())[: raw.classes]), per_train, per_val)
        else:
            imagefolder(root, sorted(WNIDS)[: raw.classes], per_train, per_val, suffix=".JPEG")
        return {}
    raise ValueError(f"{raw.dataset}: no fabricator for source {raw.source!r}")


def fabricate_weights(weights, workdir: Path) -> None:
    """A state dict of the model the file stands for, randomly initialised: an ImageNet
    checkpoint (`pretrained`: 1000 classes, a linear fc, as torchvision's .pth files) or the
    model's own (`weights`)."""
    import torch

    from curriculum_bench.models import create_model

    args = dict(weights.model_args)
    if weights.key == "pretrained":
        args = {k: v for k, v in args.items() if k not in ("freeze_backbone", "dropout")}
        args["head"] = "linear"
    torch.manual_seed(0)
    model = create_model(weights.model, (3, 224, 224), 1000, **args)
    path = Path(workdir) / weights.path
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)


MD5_FILE = "md5_overrides.json"


def materialise(plan, workdir: Path) -> Path:
    """Everything a smoke.SmokePlan reads, under workdir: raw files, weights, both configs,
    the md5 file for CURRICULUM_BENCH_MD5_OVERRIDES (returned) and the FABRICATED.md marker."""
    from curriculum_bench import smoke

    workdir = Path(workdir)
    md5s: dict[str, dict[str, str]] = {}
    for raw in plan.raw:
        for source, files in fabricate_raw(raw, workdir).items():
            md5s.setdefault(source, {}).update(files)
    for weights in plan.weights:
        fabricate_weights(weights, workdir)
    md5_file = workdir / smoke.FABRICATED / MD5_FILE
    md5_file.parent.mkdir(parents=True, exist_ok=True)
    md5_file.write_text(json.dumps(md5s, indent=1, sort_keys=True))
    for name, config in ((smoke.RUNS_CONFIG, plan.runs_config), (smoke.TABLES_CONFIG, plan.tables_config)):
        (workdir / name).write_text(yaml.safe_dump(config, sort_keys=False))
    marker = (
        "# FABRICATED DATA: not results\n\n"
        "Everything in this folder (datasets, runs, paper_tables/) comes from the paper smoke run "
        "(curriculum_bench.smoke, tests/test_paper_smoke.py): random images and random weights "
        "fabricated in the real on-disk formats, a couple of optimiser steps per run. Its "
        "accuracies mean nothing; it only shows that every code path of config/paper.yaml runs.\n\n"
        "## Runs\n\n" + plan.summary() + "\n"
    )
    (workdir / smoke.MARKER).write_text(marker)
    (workdir / "paper_tables").mkdir(exist_ok=True)
    (workdir / "paper_tables" / smoke.MARKER).write_text(marker)
    return md5_file
