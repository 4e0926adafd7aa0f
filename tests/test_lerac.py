"""LeRaC (curricula/lerac.py): ladders and per-epoch rates by hand, both rules; blocks cover
the model; the composed schedule never drops back; a resumed run continues the curriculum."""

import json
import math

import pytest
import torch

from curriculum_bench.config import ConfigError
from curriculum_bench.curricula.lerac import (
    LeRaC,
    LeRaCConfig,
    model_blocks,
    official_lr,
    official_start_lrs,
    official_update_points,
    official_updates_before,
    paper_scales,
    paper_start_ratios,
)
from curriculum_bench.models import create_model
from curriculum_bench.train.config import TrainConfig
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import TrainState

from .conftest import tiny_run
from .test_engine import results_only


def close(a, b):
    return all(math.isclose(x, y, rel_tol=1e-9) for x, y in zip(a, b, strict=True)) and len(a) == len(b)


# --- paper rule (Eq. 8) -----------------------------------------------------------------------


def test_paper_ladder_is_log_even_from_base_to_eta_min():
    assert close(paper_start_ratios(4, 1e-6), [1.0, 1e-2, 1e-4, 1e-6])


def test_paper_scales_interpolate_in_log_space_and_arrive_together_at_k():
    ratios = [1.0, 1e-2, 1e-4]  # eta_j(t) / eta(0) = r ** (1 - t / k), k = 4
    assert close(paper_scales(0, 4, ratios), [1.0, 1e-2, 1e-4])
    assert close(paper_scales(1, 4, ratios), [1.0, 10**-1.5, 1e-3])
    assert close(paper_scales(2, 4, ratios), [1.0, 1e-1, 1e-2])
    assert paper_scales(4, 4, ratios) == [1.0, 1.0, 1.0]
    assert paper_scales(9.5, 4, ratios) == [1.0, 1.0, 1.0]


def test_paper_step_unit_step_uses_fractional_epochs_and_epoch_whole_ones():
    hook = LeRaC(LeRaCConfig(lerac_epochs=2, eta_min=1e-5, step_unit="step"))
    hook.start = [1.0, 1e-4]
    assert close(hook.scales(1, 5, 10), [1.0, 1e-4 ** (1 - 1.5 / 2)])  # t = 1.5
    per_epoch = LeRaC(LeRaCConfig(lerac_epochs=2, eta_min=1e-5, step_unit="epoch"))
    per_epoch.start = [1.0, 1e-4]
    assert close(per_epoch.scales(1, 5, 10), [1.0, 1e-2])  # t = 1


# --- official rule (LRC code) -------------------------------------------------------------------

LRC_CIFAR10 = dict(n_blocks=10, base_lr=0.1, min_lr=1e-5, clf_lr=1e-3)  # ResNet-18: stem, 8 blocks, fc


def test_official_ladder_goes_one_step_below_min_lr_and_classifier_starts_at_clf_lr():
    expected = [0.1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-6, 1e-6, 1e-6, 1e-4]  # docs/methods.md §1.2, §8
    assert close(official_start_lrs(**LRC_CIFAR10), expected)


@pytest.mark.parametrize(
    "epoch, expected",
    [
        (1, [0.1, 0.1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-5, 1e-5, 1e-5, 1e-3]),  # docs/methods.md §1.2 trace, after epoch 1
        (3, [0.1, 0.1, 0.1, 0.1, 1e-2, 1e-3, 1e-3, 1e-3, 1e-3, 0.1]),  # classifier arrives
        (4, [0.1, 0.1, 0.1, 0.1, 0.1, 1e-2, 1e-2, 1e-2, 1e-2, 0.1]),
        (5, [0.1] * 10),  # effective k = 5 epochs
        (30, [0.1] * 10),
    ],
)
def test_official_rates_per_epoch_match_the_lrc_cifar10_trace(epoch, expected):
    updates = official_updates_before(epoch, 0, 782, 1, 20)
    rates = [official_lr(lr, updates, 10.0, 0.11) for lr in official_start_lrs(**LRC_CIFAR10)]
    assert close(rates, expected)


def test_official_updates_come_inside_the_epoch_and_stop_at_stop_update_epoch():
    assert official_update_points(100, 4) == [25, 50, 75]
    assert official_update_points(100, 2) == [50]
    assert official_update_points(100, 1) == []
    # The update after step count 25 is seen from 0-based batch 25 on; the epoch's end adds one.
    assert [official_updates_before(0, b, 100, 4, 20) for b in (0, 24, 25, 50, 99)] == [0, 0, 1, 2, 3]
    assert official_updates_before(1, 0, 100, 4, 20) == 4
    # LRC updates in 1-based epochs E < stop_update_epoch: with 3, only 0-based epochs 0 and 1.
    assert official_updates_before(2, 99, 100, 1, 3) == 2
    assert official_updates_before(7, 0, 100, 2, 3) == 4


def test_official_growth_stops_below_the_cap():
    assert math.isclose(official_lr(1e-6, 100, 10.0, 0.11), 0.1, rel_tol=1e-9)
    assert official_lr(0.05, 3, 10.0, 0.11) == 0.05  # 0.5 would pass the cap: never grows


# --- blocks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, in_shape, first, count",
    [
        ("resnet18_cifar", (3, 32, 32), "stem", 10),
        ("resnet18", (3, 32, 32), "stem", 10),
        ("mlt_convnet", (1, 8, 8), "block1", 3),
        ("cvt13", (3, 32, 32), "stage0.blocks.0", 14),
        ("convnext_tiny", (3, 32, 32), "stem", 10),
    ],
)
def test_blocks_cover_every_parameter_once_with_the_classifier_last(name, in_shape, first, count):
    model = create_model(name, in_shape, 10)
    blocks = model_blocks(model)
    assert [b for b, _ in blocks][0] == first and blocks[-1][0] == "classifier" and len(blocks) == count
    grouped = [id(p) for _, params in blocks for p in params]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each exactly once
    head = model.get_submodule({"cvt13": "head", "convnext_tiny": "head.fc"}.get(name, "fc"))
    assert {id(p) for p in head.parameters()} <= {id(p) for p in blocks[-1][1]}


def test_unsupported_model_is_rejected_by_name():
    with pytest.raises(ValueError, match="methods.lerac: no block layout for Sequential"):
        model_blocks(torch.nn.Sequential(torch.nn.Linear(2, 2)))


# --- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("rule", "fast"),
        ("lerac_epochs", 0),
        ("eta_min", 0.0),
        ("step_unit", "batch"),
        ("c_factor", 1.0),
        ("clf_lr", 0.0),
        ("cap", 1.0),
        ("updates_per_epoch", 3),
    ],
)
def test_bad_settings_are_rejected_by_name(key, value):
    with pytest.raises(ValueError, match=key):
        LeRaCConfig(**{key: value})


def test_eta_min_above_the_base_lr_stops_the_run_naming_the_key():
    model = create_model("mlt_convnet", (1, 8, 8), 10)
    hook = LeRaC(LeRaCConfig(eta_min=0.5))
    state = TrainState(model, None, torch.device("cpu"), torch.zeros(1, dtype=torch.long), 10, 1)
    state.train_config = TrainConfig(lr=0.1)  # the base LR eta_min is checked against
    state.optimizer = torch.optim.SGD(hook.param_groups(state, model), lr=0.1)
    with pytest.raises(ValueError, match=r"methods\.lerac\.eta_min"):
        hook.on_fit_start(state)


# --- through the engine -------------------------------------------------------------------------


def history(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_composed_schedule_never_drops_back_after_lerac_epochs(digits_store, tmp_path):
    """HCL's SequentialLR snapped LeRaC groups back to their start after k; here each group's
    LR is base_schedule(e) x scale, and from epoch k on every scale is 1."""
    run = tiny_run(
        {"lerac": {"lerac_epochs": 2, "eta_min": 1e-6}},
        epochs=5,
        schedule="cosine",
        warmup_epochs=0,
        min_lr_factor=0.1,
        optimizer="sgd",
    )
    fit(run, digits_store, tmp_path / "run", tmp_path / "run.pt", device="cpu")
    records = history(tmp_path / "run/history.jsonl")
    assert records[0]["lerac/groups"] == ["block1", "block2", "classifier"]
    lrs = [r["lr"] for r in records]
    first = records[0]["lerac/lr_scale_first_step"]
    assert close(first, [1.0, 10**-2.0, 1e-4])  # 1e-6 / 0.01 = 1e-4 for the last block
    for record in records[2:]:  # epochs 3-5 (k = 2): all groups at the base schedule
        assert record["lerac/lr_scale_first_step"] == [1.0, 1.0, 1.0]
        assert len(set(record["lr"])) == 1
    base = [0.01 * (0.1 + 0.9 * (1 + math.cos(math.pi * e / 5)) / 2) for e in range(5)]
    assert all(math.isclose(r[0], b, rel_tol=1e-9) for r, b in zip(lrs, base, strict=True))
    deepest = [r[-1] / b for r, b in zip(lrs, base, strict=True)]
    assert deepest == sorted(deepest) and deepest[-1] == 1.0  # rises, then stays


def test_resumed_hybrid_run_continues_the_curriculum_exactly(digits_store, tmp_path):
    methods = {
        "lerac": {"lerac_epochs": 3, "eta_min": 1e-6},
        "blur": {"blur_epochs": 3, "schedule": "linear_probability", "kernel_size": 3},
    }
    run = tiny_run(methods, epochs=4, augment=[{"op": "horizontal_flip"}])
    full = fit(run, digits_store, tmp_path / "full", tmp_path / "full.pt", device="cpu")
    assert fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu", stop_after_epoch=2) is None
    resumed = fit(run, digits_store, tmp_path / "cut", tmp_path / "cut.pt", device="cpu")
    assert resumed["resumed_at"] == [[2, 0]]
    assert results_only(tmp_path / "cut/history.jsonl") == results_only(tmp_path / "full/history.jsonl")
    assert resumed["final_acc"] == full["final_acc"]


def test_official_rule_through_the_engine_multiplies_by_c_per_epoch(digits_store, tmp_path):
    run = tiny_run(
        {"lerac": {"rule": "official", "lerac_epochs": 20, "eta_min": 1e-4, "clf_lr": 0.01}},
        epochs=3,
        schedule="constant",
        optimizer="sgd",
    )
    fit(run, digits_store, tmp_path / "run", tmp_path / "run.pt", device="cpu")
    lrs = [r["lr"] for r in history(tmp_path / "run/history.jsonl")]
    # base 0.01: ladder 1e-2, 1e-3 (the floor 1e-4 is not reached), classifier 1e-4; x10 per epoch
    assert close(lrs[0], [1e-2, 1e-3, 1e-4])
    assert close(lrs[1], [1e-2, 1e-2, 1e-3])
    assert close(lrs[2], [1e-2, 1e-2, 1e-2])


def test_bad_lerac_key_in_a_run_is_named(digits_store, tmp_path):
    with pytest.raises(ConfigError, match=r"methods\.lerac\.k_epochs: unknown key"):
        fit(tiny_run({"lerac": {"k_epochs": 3}}), digits_store, tmp_path / "r", tmp_path / "r.pt", device="cpu")
