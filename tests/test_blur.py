"""Blur curriculum (curricula/blur.py): sigma and probability per epoch by the schedule, the
share of blurred images, identity at sigma 0, augmentation switched off in blurred epochs."""

import json

import pytest
import torch

from curriculum_bench.curricula.blur import (
    Blur,
    BlurConfig,
    augmentation_on,
    batch_generator,
    blur_batch,
    blur_probability,
    blur_sigma,
)
from curriculum_bench.data.augment import gaussian_blur
from curriculum_bench.train.engine import fit
from curriculum_bench.train.hooks import TrainState

from .conftest import tiny_run


def schedule(cfg, epochs):
    return [(round(blur_sigma(e, cfg), 12), round(blur_probability(e, cfg), 12)) for e in range(epochs)]


def test_constant_schedule_blurs_everything_for_blur_epochs_then_nothing():
    cfg = BlurConfig(blur_epochs=3, sigma=1.0)
    assert schedule(cfg, 5) == [(1.0, 1.0)] * 3 + [(0.0, 0.0)] * 2


def test_linear_sigma_decays_to_zero_and_skips_small_sigma():
    cfg = BlurConfig(blur_epochs=5, schedule="linear_sigma", sigma=2.0)  # HCL ConvNeXt: 2 -> 0 over 5
    assert schedule(cfg, 6) == [(2.0, 1.0), (1.6, 1.0), (1.2, 1.0), (0.8, 1.0), (0.4, 1.0), (0.0, 0.0)]
    cut = BlurConfig(blur_epochs=5, schedule="linear_sigma", sigma=2.0, min_sigma=0.5)
    assert schedule(cut, 6)[3:] == [(0.8, 1.0), (0.0, 0.0), (0.0, 0.0)]


def test_linear_probability_falls_as_one_minus_e_over_blur_epochs():
    cfg = BlurConfig(blur_epochs=4, schedule="linear_probability")  # HCL extension
    assert schedule(cfg, 5) == [(1.0, 1.0), (1.0, 0.75), (1.0, 0.5), (1.0, 0.25), (0.0, 0.0)]


def test_random_probability_blurs_as_many_images_as_linear_probability_without_the_order():
    linear = BlurConfig(blur_epochs=4, schedule="linear_probability")
    control = BlurConfig(blur_epochs=4, schedule="random_probability")
    assert schedule(control, 5) == [(1.0, 0.625)] * 4 + [(0.0, 0.0)]  # (4 + 1) / (2 * 4)
    assert sum(p for _, p in schedule(control, 5)) == sum(p for _, p in schedule(linear, 5))


def test_augmentation_is_off_in_blur_epochs_unless_kept():
    assert [augmentation_on(e, BlurConfig(blur_epochs=2)) for e in range(3)] == [False, False, True]
    assert all(augmentation_on(e, BlurConfig(blur_epochs=2, keep_augmentation=True)) for e in range(3))


def test_blur_is_identity_when_sigma_is_zero():
    x = torch.rand(4, 3, 16, 16)
    assert torch.equal(blur_batch(x, 0.0, 7, 1.0, batch_generator(0, 0)), x)
    assert torch.equal(blur_batch(x, 1.0, 7, 0.0, batch_generator(0, 0)), x)


def test_full_probability_blurs_every_sample_as_augment_gaussian_blur():
    x = torch.rand(4, 3, 16, 16)
    assert torch.equal(blur_batch(x, 1.0, 5, 1.0, batch_generator(0, 0)), gaussian_blur(x, 1.0, 5))


def make_state(epoch, step=0, seed=0):
    return TrainState(
        torch.nn.Identity(),
        None,
        torch.device("cpu"),
        torch.zeros(1, dtype=torch.long),
        10,
        10,
        epoch=epoch,
        step=step,
        seed=seed,
    )


def test_blurred_share_of_a_batch_matches_the_epoch_probability():
    hook = Blur(BlurConfig(blur_epochs=4, schedule="linear_probability", sigma=1.0, kernel_size=3))
    x = torch.rand(4000, 1, 6, 6)
    for epoch, p in ((1, 0.75), (2, 0.5), (3, 0.25)):
        out, _ = hook.transform_batch(make_state(epoch, step=epoch), None, x, None)
        share = (out != x).flatten(1).any(1).float().mean().item()
        assert abs(share - p) < 0.03, (epoch, share)  # binomial sd ~0.007


def test_blur_draws_depend_only_on_seed_and_step():
    hook = Blur(BlurConfig(blur_epochs=4, schedule="linear_probability", kernel_size=3))
    x = torch.rand(64, 1, 6, 6)
    a, _ = hook.transform_batch(make_state(1, step=7, seed=3), None, x, None)
    b, _ = hook.transform_batch(make_state(1, step=7, seed=3), None, x, None)
    c, _ = hook.transform_batch(make_state(1, step=8, seed=3), None, x, None)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_on_epoch_start_switches_augmentation_for_the_engine():
    hook, state = Blur(BlurConfig(blur_epochs=1)), make_state(0)
    hook.on_epoch_start(state)
    assert state.augment is False
    state.epoch = 1
    hook.on_epoch_start(state)
    assert state.augment is True


@pytest.mark.parametrize(
    "key, value", [("schedule", "cosine"), ("blur_epochs", 0), ("sigma", -1.0), ("kernel_size", 4), ("min_sigma", -0.1)]
)
def test_bad_settings_are_rejected_by_name(key, value):
    with pytest.raises(ValueError, match=key):
        BlurConfig(**{key: value})


def first_epoch(path):
    record = json.loads(path.read_text().splitlines()[0])
    return record["train_loss"], record["eval_acc"]


def test_engine_skips_augmentation_in_blur_epochs_when_not_kept(digits_store, tmp_path):
    """sigma 0 makes the blur itself a no-op, so epoch 1 must equal a run without augmentation."""
    flip = [{"op": "horizontal_flip", "p": 1.0}]
    no_aug = tiny_run(epochs=1)
    dropped = tiny_run({"blur": {"blur_epochs": 1, "sigma": 0.0, "kernel_size": 3}}, epochs=1, augment=flip)
    flipped = tiny_run(epochs=1, augment=flip)
    for name, run in (("none", no_aug), ("dropped", dropped), ("flipped", flipped)):
        fit(run, digits_store, tmp_path / name, tmp_path / f"{name}.pt", device="cpu")
    assert first_epoch(tmp_path / "dropped/history.jsonl") == first_epoch(tmp_path / "none/history.jsonl")
    assert first_epoch(tmp_path / "flipped/history.jsonl") != first_epoch(tmp_path / "none/history.jsonl")
    log = json.loads((tmp_path / "dropped/history.jsonl").read_text().splitlines()[0])
    assert (log["blur/sigma"], log["blur/probability"], log["blur/augmentation"]) == (0.0, 0.0, False)


def test_kernel_larger_than_the_images_is_rejected_at_fit_start(digits_store, tmp_path):
    with pytest.raises(ValueError, match=r"methods\.blur\.kernel_size 17 is too large for 8x8"):
        fit(
            tiny_run({"blur": {"kernel_size": 17}}, epochs=1),
            digits_store,
            tmp_path / "r",
            tmp_path / "r.pt",
            device="cpu",
        )
