"""The raw-data sources on fabricated files in their exact on-disk formats (no network).

MNIST: gzipped IDX files under <root>/MNIST/raw/; CIFAR-10/100: torchvision's python pickle
batches; ImageNet-100: JPEG class folders in the Kaggle layout (train.X1.., val.X,
Labels.json), a plain ImageFolder and a .tar.gz of it (written by tests/fabricate.py). Their
md5s are not torchvision's recorded ones, so the tests put them in
torchvision_sources.MD5_OVERRIDES.
"""

import json
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

import curriculum_bench.data.imagenet100  # noqa: F401  (registers imagenet100)
import curriculum_bench.data.torchvision_sources as tvs
from curriculum_bench.data.prepare import prepare
from curriculum_bench.data.store import load_split, read_manifest

from .fabricate import (
    MNIST_FILES,
    WNIDS,
    idx_bytes,
    imagefolder,
    jpeg,
    kaggle_folder,
    md5,
    random_mnist,
    write_cifar10,
    write_cifar100,
    write_mnist,
)


def assert_no_store(out):
    assert not out.exists() and not out.with_name(f".{out.name}.tmp").exists()


# ------------------------------------------------------------------------------- MNIST


@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    """20 train / 10 test digits as torchvision's four gzipped IDX files, md5s registered."""
    arrays = random_mnist(20, 10)
    md5s = write_mnist(tmp_path / "raw_mnist", arrays)
    monkeypatch.setitem(tvs.MD5_OVERRIDES, "mnist", md5s)
    return tmp_path / "raw_mnist", arrays


def mnist_spec(root, **extra):
    return {"source": "mnist", "data_root": str(root), "download": False, **extra}


def test_mnist_idx_files_round_trip_into_the_store(mnist_root, tmp_path):
    from torchvision.datasets import MNIST

    root, arrays = mnist_root
    manifest = prepare("mnist", mnist_spec(root), tmp_path / "store")
    assert manifest["splits"] == {"train": 20, "test": 10} and manifest["image_shape"] == [1, 28, 28]
    assert manifest["classes"] == list(MNIST.classes)
    files = manifest["source"]["files"]
    assert sorted(files) == sorted(f"MNIST/raw/{name}" for name in MNIST_FILES)
    assert all(entry["checked"] == "md5 override" for entry in files.values())
    assert manifest["source"]["root"] == str(root) and manifest["source"]["downloaded"] is False
    for split, prefix in (("train", "train"), ("test", "t10k")):
        stored = load_split(tmp_path / "store", split)
        images, labels = arrays[prefix]
        assert stored.images.dtype == np.uint8 and stored.labels.dtype == np.int64
        np.testing.assert_array_equal(stored.images[:, 0], images)
        np.testing.assert_array_equal(stored.labels, labels)
    assert (root / "MNIST/raw/train-images-idx3-ubyte").is_file()  # extracted as torchvision does


def test_mnist_accepts_extracted_idx_files_without_their_gz(mnist_root, tmp_path):
    root, _ = mnist_root
    prepare("mnist", mnist_spec(root), tmp_path / "a")
    for name in MNIST_FILES:
        (root / "MNIST/raw" / name).unlink()
    manifest = prepare("mnist", mnist_spec(root), tmp_path / "b")
    assert all(e["checked"].startswith("IDX") for e in manifest["source"]["files"].values())
    assert read_manifest(tmp_path / "b")["arrays"] == read_manifest(tmp_path / "a")["arrays"]


def test_missing_mnist_files_are_fetched_by_torchvisions_downloader(mnist_root, tmp_path, monkeypatch):
    """download: true hands missing files to torchvision's MNIST.download (its network call
    replaced here by a copy from the fabricated files), then verifies them."""
    import shutil

    import torchvision.datasets.mnist

    root, _ = mnist_root
    stash = tmp_path / "stash"
    shutil.copytree(root / "MNIST/raw", stash)
    shutil.rmtree(root / "MNIST")
    fetched = []

    def fake_download_and_extract_archive(url, download_root, filename, md5):
        fetched.append(url)
        shutil.copy(stash / filename, download_root)
        tvs.gunzip(stash / filename, tvs.Path(download_root) / filename.removesuffix(".gz"))

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", fake_download_and_extract_archive)
    manifest = prepare("mnist", mnist_spec(root, download=True), tmp_path / "s")
    assert sorted(url.rsplit("/", 1)[1] for url in fetched) == sorted(MNIST_FILES)
    assert manifest["source"]["downloaded"] is True and manifest["splits"] == {"train": 20, "test": 10}
    prepare("mnist", mnist_spec(root, download=True), tmp_path / "again")  # files there: no fetch
    assert len(fetched) == 4


def test_truncated_mnist_gz_is_rejected_naming_it(mnist_root, tmp_path):
    root, _ = mnist_root
    gz = root / "MNIST/raw/train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: md5 \w+ does not match.*truncated"):
        prepare("mnist", mnist_spec(root), tmp_path / "out")
    assert_no_store(tmp_path / "out")


def test_extracted_idx_file_with_a_wrong_magic_number_is_rejected(mnist_root, tmp_path):
    root, arrays = mnist_root
    for name in MNIST_FILES:
        (root / "MNIST/raw" / name).unlink()
    for prefix, (images, labels) in arrays.items():
        (root / f"MNIST/raw/{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images, 2051))
        (root / f"MNIST/raw/{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 2051))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: IDX magic number 2051, expected 2049"):
        prepare("mnist", mnist_spec(root), tmp_path / "out")
    assert_no_store(tmp_path / "out")


def test_missing_files_without_download_name_the_paths_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MNIST/raw/train-images-idx3-ubyte\.gz.*download: true"):
        prepare("mnist", mnist_spec(tmp_path / "empty"), tmp_path / "out")
    assert_no_store(tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/data_batch_1.*cifar-10-python\.tar\.gz"):
        prepare("c10", {"source": "cifar10", "data_root": str(tmp_path / "empty"), "download": False}, tmp_path / "out")
    assert_no_store(tmp_path / "out")


def test_unknown_option_is_rejected_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"mnist\.dowload: unknown key"):
        prepare("mnist", {"source": "mnist", "data_root": str(tmp_path), "dowload": False}, tmp_path / "out")


# ------------------------------------------------------------------------------- CIFAR


@pytest.fixture
def cifar10_root(tmp_path, monkeypatch):
    """cifar-10-batches-py with 5 x 4 train and 6 test images; image 0 has G[2, 5] = 200."""
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 200, (26, 3072), dtype=np.uint8)
    rows[0, 1 * 1024 + 2 * 32 + 5] = 200  # channel G, row 2, column 5 (CIFAR rows are R, G, B planes)
    labels = [int(v) for v in rng.integers(0, 10, 26)]
    md5s = write_cifar10(tmp_path / "raw_c10", rows, labels, train=20)
    monkeypatch.setitem(tvs.MD5_OVERRIDES, "cifar10", md5s)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return tmp_path / "raw_c10", rows, np.array(labels), names


def test_cifar10_batches_become_chw_images(cifar10_root, tmp_path):
    root, rows, labels, names = cifar10_root
    manifest = prepare("c10", {"source": "cifar10", "data_root": str(root), "download": False}, tmp_path / "s")
    assert manifest["splits"] == {"train": 20, "test": 6} and manifest["image_shape"] == [3, 32, 32]
    assert manifest["classes"] == names
    batches = ["batches.meta", "test_batch"] + [f"data_batch_{b}" for b in range(1, 6)]
    assert sorted(manifest["source"]["files"]) == sorted(f"cifar-10-batches-py/{n}" for n in batches)
    train, test = load_split(tmp_path / "s", "train"), load_split(tmp_path / "s", "test")
    assert train.images[0, 1, 2, 5] == 200
    np.testing.assert_array_equal(train.images, rows[:20].reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(test.images, rows[20:].reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(np.concatenate([train.labels, test.labels]), labels)


def test_cifar10_archive_alone_is_extracted_without_download(cifar10_root, tmp_path, monkeypatch):
    root, rows, _, _ = cifar10_root
    archive = tmp_path / "only_archive" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setitem(tvs.MD5_OVERRIDES["cifar10"], "cifar-10-python.tar.gz", md5(archive))
    manifest = prepare(
        "c10", {"source": "cifar10", "data_root": str(archive.parent), "download": False}, tmp_path / "s"
    )
    assert manifest["source"]["extracted_archive"] is True
    np.testing.assert_array_equal(load_split(tmp_path / "s", "test").images, rows[20:].reshape(-1, 3, 32, 32))


def test_cifar_batch_with_a_wrong_md5_is_rejected_naming_it(cifar10_root, tmp_path):
    root, *_ = cifar10_root
    batch = root / "cifar-10-batches-py/data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"cifar-10-batches-py/data_batch_3: md5 \w+ does not match"):
        prepare("c10", {"source": "cifar10", "data_root": str(root), "download": False}, tmp_path / "out")
    assert_no_store(tmp_path / "out")


def test_cifar100_uses_fine_labels_and_fine_label_names(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 256, (15, 3072), dtype=np.uint8)
    fine = [int(v) for v in rng.integers(0, 100, 15)]
    fine_names = [f"class_{i:02d}" for i in range(100)]
    md5s = write_cifar100(tmp_path / "raw", rows, fine, train=10, fine_names=fine_names)
    monkeypatch.setitem(tvs.MD5_OVERRIDES, "cifar100", md5s)
    folder = tmp_path / "raw" / "cifar-100-python"
    manifest = prepare(
        "c100", {"source": "cifar100", "data_root": str(folder.parent), "download": False}, tmp_path / "s"
    )
    assert manifest["splits"] == {"train": 10, "test": 5} and manifest["classes"] == fine_names
    train = load_split(tmp_path / "s", "train")
    np.testing.assert_array_equal(train.labels, fine[:10])
    np.testing.assert_array_equal(train.images, rows[:10].reshape(-1, 3, 32, 32))


# ------------------------------------------------------------------------------- ImageNet-100


def imagenet_spec(path, **extra):
    return {"source": "imagenet100", "path": str(path), "image_size": 16, "workers": 2, **extra}


def test_imagenet100_kaggle_layout_is_resized_in_class_then_file_order(tmp_path):
    root = kaggle_folder(tmp_path / "in100")
    manifest = prepare("in100", imagenet_spec(root), tmp_path / "s")
    assert manifest["splits"] == {"train": 12, "test": 6} and manifest["image_shape"] == [3, 16, 16]
    assert manifest["classes"] == [WNIDS[w] for w in sorted(WNIDS)]
    source = manifest["source"]
    assert source["wnids"] == sorted(WNIDS) and source["layout"] == "kaggle"
    assert source["train_folders"] == ["train.X1", "train.X2"] and source["labels_file"] == "Labels.json"
    assert source["image_size"] == 16 and source["resize"] == "shorter_then_center_crop"
    train, test = load_split(tmp_path / "s", "train"), load_split(tmp_path / "s", "test")
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    colour = train.images.reshape(12, 3, -1).mean(axis=2)
    expected = np.array([(80 * c, 60 * k, 100) for c in range(3) for k in range(4)])
    assert np.abs(colour - expected).max() < 4  # JPEG's rounding of a flat colour


def test_imagenet100_plain_imagefolder_and_tar_gz_archive_give_the_same_store(tmp_path):
    root = imagefolder(tmp_path / "folder", ["zebra", "cat", "dog"], train=3, val=1)
    manifest = prepare("plain", imagenet_spec(root), tmp_path / "a")
    assert manifest["classes"] == ["cat", "dog", "zebra"] and manifest["source"]["layout"] == "imagefolder"
    assert load_split(tmp_path / "a", "train").labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    archive = tmp_path / "imagenet100.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="imagenet100")  # archives usually carry a top-level folder
    from_archive = prepare("plain", imagenet_spec(archive), tmp_path / "b")
    assert from_archive["arrays"] == manifest["arrays"] and from_archive["source"]["archive"] is True
    zipped = tmp_path / "imagenet100.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for path in sorted(root.rglob("*.jpg")):
            zf.write(path, path.relative_to(root).as_posix())
    assert prepare("plain", imagenet_spec(zipped), tmp_path / "c")["arrays"] == manifest["arrays"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a",
        "b",
        "c",
        "folder",
        "imagenet100.tar.gz",
        "imagenet100.zip",
    ]  # extractions removed


def test_imagenet100_truncated_archive_is_rejected_naming_it(tmp_path):
    root = kaggle_folder(tmp_path / "in100")
    archive = tmp_path / "imagenet100.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname="imagenet100")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2 // 512 * 512])  # cut at a header: tarfile alone stops quietly
    with pytest.raises(ValueError, match=rf"{archive}: .*truncated"):
        prepare("in100", imagenet_spec(archive), tmp_path / "out")
    assert_no_store(tmp_path / "out")


def test_imagenet100_resize_modes_crop_the_centre_or_squash(tmp_path):
    # 96 x 32: a white 32 x 32 centre between black margins
    picture = np.zeros((32, 96, 3), np.uint8)
    picture[:, 32:64] = 255
    for split in ("train", "val"):
        (tmp_path / "d" / split / "a").mkdir(parents=True)
        Image.fromarray(picture).save(tmp_path / "d" / split / "a" / "x.png")
    prepare("crop", imagenet_spec(tmp_path / "d", workers=1), tmp_path / "crop")
    prepare("squash", imagenet_spec(tmp_path / "d", resize="squash", workers=1), tmp_path / "squash")
    crop = load_split(tmp_path / "crop", "train").images[0]
    squash = load_split(tmp_path / "squash", "train").images[0]
    assert crop.mean() > 230
    assert squash[:, :, :4].mean() < 30 and squash[:, :, 6:10].mean() > 220


def test_imagenet100_corrupt_jpeg_is_rejected_naming_it(tmp_path):
    root = kaggle_folder(tmp_path / "in100")
    bad = root / "train.X2" / sorted(WNIDS)[1] / "broken.JPEG"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=rf"{bad}: cannot decode image"):
        prepare("in100", imagenet_spec(root), tmp_path / "out")
    assert_no_store(tmp_path / "out")


def test_imagenet100_val_class_missing_from_train_is_rejected(tmp_path):
    root = kaggle_folder(tmp_path / "in100")
    jpeg(root / "val.X" / "n01491361" / "v.JPEG", (0, 0, 0))
    with pytest.raises(ValueError, match=r"val\.X/n01491361: class n01491361 is in val\.X/ but in no train"):
        prepare("in100", imagenet_spec(root), tmp_path / "out")
    assert_no_store(tmp_path / "out")


def test_imagenet100_labels_json_without_a_wnid_and_empty_class_folders_are_rejected(tmp_path):
    root = kaggle_folder(tmp_path / "in100")
    labels = {k: v for k, v in WNIDS.items() if k != "n01443537"}
    (root / "Labels.json").write_text(json.dumps(labels))
    with pytest.raises(ValueError, match=r"Labels\.json: no entry for class n01443537"):
        prepare("in100", imagenet_spec(root), tmp_path / "out")
    (root / "Labels.json").write_text(json.dumps(WNIDS))
    (root / "train.X1" / "n01530575").mkdir()
    with pytest.raises(ValueError, match=r"train\.X1/n01530575: empty class folder"):
        prepare("in100", imagenet_spec(root), tmp_path / "out")
    assert_no_store(tmp_path / "out")
