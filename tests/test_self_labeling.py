"""Self-labelling: MLT's per-epoch confidence quantile and Curriculum Labeling's rounds."""

import json

import numpy as np
import pytest
import torch

from curriculum_bench.config import ConfigError
from curriculum_bench.curricula.self_labeling import (
    catalogue_quantile,
    clab_class_weights,
    clab_rounds,
    keep_above_quantile,
    pool_sizes,
    top_percent_mask,
)
from curriculum_bench.data.loader import ResidentSplit
from curriculum_bench.models import create_model
from curriculum_bench.train.engine import Data, fit
from curriculum_bench.train.hooks import TrainState, build_hooks

from .conftest import tiny_run
from .test_engine import results_only


def test_pool_is_the_samples_after_the_labelled_prefix():
    assert pool_sizes(60000, 0.1, 0.1) == (6000, 6000)  # MLT on full MNIST
    assert pool_sizes(4000, 0.1, 0.0) == (400, 0)
    with pytest.raises(ValueError, match="training split has 100"):
        pool_sizes(100, 0.6, 0.5)


def test_catalogue_quantile_falls_linearly_from_start_to_end_epoch():
    """MLT script start 1, end 5: q = 1, 0.75, 0.5, 0.25, 0 after epochs 1..5."""
    assert [catalogue_quantile(e, 1, 5) for e in range(1, 6)] == [1.0, 0.75, 0.5, 0.25, 0.0]


@pytest.mark.parametrize("q, kept", [(0.25, 76), (0.5, 51), (0.0, 101)])
def test_threshold_keeps_the_configured_fraction(q, kept):
    """101 distinct confidences: quantile q falls on a sample, so exactly 1 + (1 - q) * 100 are kept."""
    confidence = torch.randperm(101, generator=torch.Generator().manual_seed(0)).float() / 100
    mask, threshold = keep_above_quantile(confidence, q)
    assert int(mask.sum()) == kept and threshold == pytest.approx(q)


def test_first_round_keeps_only_the_ties_with_the_maximum():
    """q = 1: saturated confidences tie with the maximum and are all kept (docs/methods.md §8)."""
    confidence = torch.tensor([0.3, 1.0, 0.9, 1.0, 1.0, 0.2])
    mask, _ = keep_above_quantile(confidence, 1.0)
    assert mask.tolist() == [False, True, False, True, True, False]


def test_top_percent_matches_numpy_percentile_and_keeps_ties():
    confidence = torch.arange(100).float() / 100
    mask, threshold = top_percent_mask(confidence, 20)
    assert int(mask.sum()) == 20 and threshold == pytest.approx(np.percentile(confidence.numpy(), 80))
    # CLab with saturated confidences: 10 of 25 at 1.0 -> 40 % selected instead of 20 % (docs/methods.md §8)
    saturated = torch.cat([torch.ones(10), torch.linspace(0.1, 0.9, 15)])
    assert int(top_percent_mask(saturated, 20)[0].sum()) == 10
    assert int(top_percent_mask(saturated, 120)[0].sum()) == 25  # percentile floored at 0


def test_clab_class_weights_are_n_minus_nc_over_nc_times_100():
    weights = clab_class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert weights.tolist() == pytest.approx([1 / 300, 3 / 100, 0.0])


def test_rounds_stop_at_the_first_with_mu_r_at_least_100():
    assert [clab_rounds(mu) for mu in (20, 50, 30, 100)] == [6, 3, 5, 2]


# --- the hooks at their moments --------------------------------------------------------------


def toy_state(n=40, epochs=6, seed=0):
    """A 40-sample 8x8 training split and a fresh seeded model, as the engine builds them."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=gen, dtype=torch.uint8).numpy()
    labels = (torch.arange(n) % 10).numpy()
    split = ResidentSplit(images, labels, torch.device("cpu"))
    torch.manual_seed(seed)
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    data = Data(split, split, [str(c) for c in range(10)], {}, (1, 8, 8))
    return TrainState(model, optimizer, torch.device("cpu"), split.labels, 10, epochs, data=data)


def test_pool_samples_train_with_their_pseudo_label_and_labelled_ones_keep_theirs():
    state = toy_state()
    (hook,) = build_hooks({"self_labeling": {"labelled_fraction": 0.25, "pool_fraction": 0.25}})
    hook.on_fit_start(state)  # labelled [0, 10), pool [10, 20)
    hook.pseudo = torch.full((10,), 7)
    idx = torch.tensor([0, 9, 10, 19, 20])
    _, y = hook.transform_batch(state, idx, None, torch.tensor([0, 9, 0, 9, 0]))
    assert y.tolist() == [0, 9, 7, 7, 0]


def test_catalogue_epoch_draws_only_labelled_and_kept_pool_samples():
    state = toy_state()
    (hook,) = build_hooks({"self_labeling": {"labelled_fraction": 0.25, "pool_fraction": 0.25}})
    hook.on_fit_start(state)
    hook.in_use[[2, 5]] = True
    order = hook.sample_order(state, torch.Generator().manual_seed(0))
    assert len(order) == 20  # labelled + pool size, with replacement (MLT)
    assert set(order.tolist()) <= set(range(10)) | {12, 15}


def test_catalogue_relabels_at_epoch_end_with_the_quantile_of_that_epoch():
    state = toy_state()
    (hook,) = build_hooks(
        {"self_labeling": {"labelled_fraction": 0.25, "pool_fraction": 0.5, "start_epoch": 1, "end_epoch": 3}}
    )
    hook.on_fit_start(state)
    state.epoch = 1  # 1-based E = 2: q = 0.5, about half of the 20 pool samples kept
    hook.on_epoch_start(state)
    hook.on_epoch_end(state)
    log = hook.epoch_log(state)
    assert log["quantile"] == 0.5 and log["pool_kept"] == int(hook.in_use.sum())
    assert 10 <= log["pool_kept"] <= 11  # 11 if the median sits between two samples' equal values
    assert state.model.training  # predicted in eval mode, train mode restored
    state.epoch = 5  # after end_epoch: nothing changes
    before = hook.in_use.clone()
    hook.on_epoch_end(state)
    assert torch.equal(before, hook.in_use)


def test_a_round_reinitialises_the_model_to_the_seeded_init_and_clears_the_optimizer():
    state = toy_state()
    (hook,) = build_hooks(
        {
            "curriculum_labeling": {
                "labelled_fraction": 0.25,
                "pool_fraction": 0.5,
                "percentile_step": 50,
                "epochs_per_round": 2,
            }
        }
    )
    hook.on_fit_start(state)
    hook.on_epoch_start(state)  # round 0: labelled only
    assert hook.round == 0 and len(hook.sample_order(state, torch.Generator().manual_seed(0))) == 10
    x = torch.rand(8, 1, 8, 8)
    state.model(x).sum().backward()
    state.optimizer.step()  # "training": weights move, Adam gets state
    end_of_round0 = {k: v.clone() for k, v in state.model.state_dict().items()}
    state.epoch = 2
    hook.on_epoch_start(state)  # round 1: pseudo-label with the trained model, then re-initialise
    assert hook.round == 1 and 10 <= int(hook.in_use.sum()) <= 11  # top 50 % of 20
    assert len(state.optimizer.state) == 0
    fresh = toy_state().model.state_dict()  # the same seed's initialisation
    now = state.model.state_dict()
    assert all(torch.equal(now[k], fresh[k]) for k in fresh)
    assert not torch.equal(now["block1.conv1.weight"], end_of_round0["block1.conv1.weight"])
    assert hook.class_weights is not None and hook.epoch_log(state)["round"] == 1


def test_epochs_per_round_must_fit_the_rounds():
    state = toy_state(epochs=5)
    (hook,) = build_hooks({"curriculum_labeling": {"percentile_step": 20, "epochs_per_round": 1}})
    with pytest.raises(ValueError, match="epochs_per_round: 6 rounds"):
        hook.on_fit_start(state)


@pytest.mark.parametrize(
    "method, args, key",
    [
        ("self_labeling", {"labelled_fraction": 0}, "labelled_fraction"),
        ("self_labeling", {"pool_fraction": 1.5}, "pool_fraction"),
        ("self_labeling", {"start_epoch": 3, "end_epoch": 3}, "end_epoch"),
        ("self_labeling", {"start_epoch": 0}, "start_epoch"),
        ("curriculum_labeling", {"percentile_step": 0}, "percentile_step"),
        ("curriculum_labeling", {"epochs_per_round": 0}, "epochs_per_round"),
        ("curriculum_labeling", {"pool_fraction": 0}, "pool_fraction"),
        ("curriculum_labeling", {"rounds": 3}, "methods.curriculum_labeling.rounds"),
    ],
)
def test_bad_settings_are_rejected_by_name(method, args, key):
    with pytest.raises(ConfigError, match=key):
        build_hooks({method: args})


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "methods",
    [
        {"self_labeling": {"labelled_fraction": 0.2, "pool_fraction": 0.3, "start_epoch": 1, "end_epoch": 3}},
        {
            "curriculum_labeling": {
                "labelled_fraction": 0.2,
                "pool_fraction": 0.3,
                "percentile_step": 50,
                "epochs_per_round": 1,
            }
        },
    ],
    ids=["self_labeling", "curriculum_labeling"],
)
def test_resume_matches_uninterrupted_run(digits_store, tmp_path, methods):
    run = tiny_run(methods, epochs=3)
    full = fit(run, digits_store, tmp_path / "full", tmp_path / "full.pt", device="cpu")
    assert fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu", stop_after_epoch=1) is None
    resumed = fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu")
    assert results_only(tmp_path / "cut/history.jsonl") == results_only(tmp_path / "full/history.jsonl")
    assert resumed["final_acc"] == full["final_acc"]
    history = [json.loads(line) for line in (tmp_path / "full/history.jsonl").read_text().splitlines()]
    name = next(iter(methods))
    used = [r[f"{name}/train_pool_samples"] for r in history]
    assert used[0] == 0 and used[-1] > used[1] > 0 or name == "self_labeling" and used[-1] > 0


def test_split_seed_draws_labelled_and_pool_from_a_seeded_permutation():
    state = toy_state()
    (hook,) = build_hooks({"self_labeling": {"labelled_fraction": 0.25, "pool_fraction": 0.25, "split_seed": 3}})
    hook.on_fit_start(state)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    assert hook.labelled.tolist() == order[:10].tolist() and hook.pool.tolist() == order[10:20].tolist()
    hook.pseudo = torch.arange(10)
    idx = torch.stack([order[0], order[10], order[13]])
    _, y = hook.transform_batch(state, idx, None, torch.tensor([5, 5, 5]))
    assert y.tolist() == [5, 0, 3]  # labelled keeps its label; pool slot k gets pseudo-label k


def test_each_round_restarts_the_study_lr_schedule():
    from curriculum_bench.train.config import TrainConfig
    from curriculum_bench.train.schedule import lr_factor

    state = toy_state(epochs=6)
    cfg = TrainConfig(epochs=6, warmup_epochs=2)
    state.train_config = cfg
    (hook,) = build_hooks({"curriculum_labeling": {"percentile_step": 50, "epochs_per_round": 2}})
    hook.on_fit_start(state)
    for epoch in range(6):
        state.epoch = epoch
        hook.on_epoch_start(state)
        hook.on_batch_start(state)
        lr = lr_factor(epoch, cfg) * state.optimizer.param_groups[0]["lr_scale"]
        assert lr == pytest.approx(lr_factor(epoch % 2, cfg))  # epochs 0, 1 of the schedule, each round
