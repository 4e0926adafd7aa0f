"""Curriculum by Smoothing (curricula/cbs.py): its sigma schedule, its kernel, the convolutions
it wraps, and a run."""

import math

import pytest
import torch
from torch import nn

from curriculum_bench.curricula.cbs import (
    CBSConfig,
    CurriculumBySmoothing,
    cbs_sigma,
    decay_sigma,
    gaussian_kernel,
    shuffled_epochs,
    smooth,
    smoothed_convs,
)
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import TrainState

from .conftest import tiny_run


def test_cbs_sigma_is_multiplied_by_decay_every_decay_epochs():
    # CBS defaults: std 1, std_factor 0.9, epoch 5; x0.9 at epochs 5, 10, 15 (0-based, not at 0)
    cfg = CBSConfig()
    assert [decay_sigma(e, cfg) for e in (0, 4, 5, 9, 10, 15)] == pytest.approx([1, 1, 0.9, 0.9, 0.81, 0.729])
    cfg = CBSConfig(sigma=2.0, decay=0.5, decay_epochs=2)
    assert [decay_sigma(e, cfg) for e in range(6)] == [2.0, 2.0, 1.0, 1.0, 0.5, 0.5]


def test_shuffled_control_takes_the_same_sigmas_in_a_seeded_order_and_constant_keeps_sigma():
    cfg = CBSConfig(sigma=2.0, decay=0.5, decay_epochs=2, schedule="shuffled")
    shuffled = [cbs_sigma(e, cfg, 6, seed=3) for e in range(6)]
    assert sorted(shuffled) == sorted(decay_sigma(e, cfg) for e in range(6))
    assert shuffled == [cbs_sigma(e, cfg, 6, seed=3) for e in range(6)]  # a pure function of the seed
    assert sorted(shuffled_epochs(6, 3)) == list(range(6))
    assert any(shuffled_epochs(20, s) != list(range(20)) for s in range(3))
    constant = CBSConfig(sigma=0.7, schedule="constant")
    assert {cbs_sigma(e, constant, 30, 0) for e in range(30)} == {0.7}


def test_gaussian_kernel_is_cbs_get_gaussian_filter():
    # 3x3, sigma 1: weights exp(-d^2 / 2) at d^2 = 0 (centre), 1 (edges), 2 (corners), normalised
    kernel = gaussian_kernel(3, 1.0)
    centre, edge, corner = 1.0, math.exp(-0.5), math.exp(-1.0)
    total = centre + 4 * edge + 4 * corner
    assert kernel[1, 1].item() == pytest.approx(centre / total)  # 0.2042
    assert kernel[0, 1].item() == pytest.approx(edge / total)  # 0.1238
    assert kernel[0, 0].item() == pytest.approx(corner / total)  # 0.0751
    assert kernel.sum().item() == pytest.approx(1.0)
    assert gaussian_kernel(5, 0.9).shape == (5, 5)


def test_smoothing_keeps_shape_and_blurs_each_channel_alone():
    x = torch.zeros(1, 2, 5, 5)
    x[0, 0, 2, 2] = 1.0  # an impulse in channel 0 only
    out = smooth(x, gaussian_kernel(3, 1.0))
    assert out.shape == x.shape
    assert torch.allclose(out[0, 0, 1:4, 1:4], gaussian_kernel(3, 1.0)) and out[0, 1].abs().sum() == 0


def test_cbs_wraps_the_convs_cbs_smooths_in_a_resnet():
    from curriculum_bench.models import create_model

    model = create_model("resnet18_cifar", (3, 32, 32), 10)
    names = [n for n, _ in smoothed_convs(model)]
    # the stem and both convs of the 8 BasicBlocks; not the 3 1x1 shortcut convs (layerX.0.downsample.0)
    assert len(names) == 17 and names[0] == "conv1" and not any("downsample" in n for n in names)


def test_the_hook_smooths_conv_outputs_with_the_epochs_sigma_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 1))
    x = torch.rand(2, 1, 6, 6)
    plain = model(x)
    hook = CurriculumBySmoothing(CBSConfig(sigma=1.0, decay=0.5, decay_epochs=1))
    state = TrainState(model, None, torch.device("cpu"), torch.zeros(2, dtype=torch.long), 2, epochs=3)
    hook.on_fit_start(state)
    for epoch, sigma in enumerate((1.0, 0.5, 0.25)):
        state.epoch = epoch
        hook.on_epoch_start(state)
        assert hook.epoch_log(state) == {"sigma": sigma}
        conv = torch.nn.functional.conv2d(x, model[0].weight, model[0].bias, padding=1)
        expected = model[1](smooth(conv, gaussian_kernel(3, sigma)))  # the 1x1 conv is not smoothed
        assert torch.allclose(model(x), expected, atol=1e-6)
    hook.on_fit_end(state)
    assert torch.equal(model(x), plain)


def test_a_cbs_run_and_its_control_train_and_log_sigma(digits_store, tmp_path):
    import json

    for schedule in ("decay", "shuffled"):
        run = tiny_run({"cbs": {"sigma": 1.0, "decay": 0.5, "decay_epochs": 1, "schedule": schedule}}, epochs=3)
        fit(run, digits_store, tmp_path / schedule, tmp_path / f"{schedule}.pt", device="cpu")
        history = [json.loads(line) for line in (tmp_path / schedule / "history.jsonl").read_text().splitlines()]
        sigmas = [r["cbs/sigma"] for r in history]
        assert sorted(sigmas) == [0.25, 0.5, 1.0]
        if schedule == "decay":
            assert sigmas == [1.0, 0.5, 0.25]


def test_cbs_config_rejects_bad_values_by_name():
    for values, name in (
        ({"sigma": 0}, "sigma"),
        ({"decay": 1.5}, "decay"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"schedule": "random"}, "schedule"),
        ({"decay_epochs": 0}, "decay_epochs"),
    ):
        with pytest.raises(ValueError, match=name):
            CBSConfig(**values)
