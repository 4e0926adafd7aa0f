import pytest
import torch

from curriculum_bench.config import ConfigError
from curriculum_bench.curricula.weighted_sampling import WeightedSamplingConfig, sample_indices
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import build_hooks

from .conftest import tiny_run


@pytest.mark.parametrize("class_counts", [[100] * 10, [50, 200, 10, 100, 100, 100, 100, 100, 100, 140]])
def test_draws_classes_in_the_configured_proportions(class_counts):
    """Expected share of class c: w_c n_c / sum_k w_k n_k; checked within 5 binomial sigmas."""
    weights = torch.tensor([0.1, 1, 1, 2, 1, 1, 1, 1, 0.5, 1])
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(class_counts)])
    draws = 200_000
    idx = sample_indices(labels, weights, draws, True, torch.Generator().manual_seed(0))
    observed = torch.bincount(labels[idx], minlength=10).double() / draws
    mass = weights.double() * torch.tensor(class_counts, dtype=torch.double)
    expected = mass / mass.sum()
    sigma = torch.sqrt(expected * (1 - expected) / draws)
    assert torch.all((observed - expected).abs() < 5 * sigma), (observed, expected)


def test_zero_weight_class_is_never_drawn():
    labels = torch.arange(10).repeat(20)
    weights = torch.ones(10)
    weights[3] = 0
    idx = sample_indices(labels, weights, 5000, True, torch.Generator().manual_seed(1))
    assert 3 not in labels[idx].tolist()


def test_mlt_default_weights_draw_class_zero_ten_times_less_often():
    cfg = WeightedSamplingConfig()
    labels = torch.arange(10).repeat(1000)
    idx = sample_indices(labels, torch.tensor(cfg.class_weights), 100_000, True, torch.Generator().manual_seed(2))
    counts = torch.bincount(labels[idx], minlength=10).double()
    assert counts[0] / counts[1:].mean() == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize(
    "args, key",
    [
        ({"class_weights": [-1, 1]}, "class_weights"),
        ({"class_weights": [0, 0]}, "class_weights"),
        ({"num_samples": 0}, "num_samples"),
        ({"weights": [1]}, "methods.weighted_sampling.weights"),
    ],
)
def test_bad_settings_are_rejected_by_name(args, key):
    with pytest.raises(ConfigError, match=key):
        build_hooks({"weighted_sampling": args})


def test_class_weight_count_must_match_the_dataset(digits_store, tmp_path):
    run = tiny_run({"weighted_sampling": {"class_weights": [1, 1, 1]}}, epochs=1)
    with pytest.raises(ValueError, match="3 weights for a dataset with 10 classes"):
        fit(run, digits_store, tmp_path / "run", tmp_path / "ckpt.pt")


def test_an_epoch_has_num_samples_draws(digits_store, tmp_path):
    run = tiny_run({"weighted_sampling": {"num_samples": 100}}, epochs=1)
    fit(run, digits_store, tmp_path / "run", tmp_path / "ckpt.pt")
    history = (tmp_path / "run/history.jsonl").read_text().splitlines()
    assert '"train_images": 100' in history[0]
    assert len(history) == 1
