import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from curriculum_bench.data.augment import (
    OPS,
    Augment,
    ColorJitterConfig,
    GaussianBlurConfig,
    HorizontalFlipConfig,
    RandomCropConfig,
    RandomResizedCropConfig,
    adjust_color,
    color_jitter,
    cutmix,
    gaussian_blur,
    horizontal_flip,
    hsv_to_rgb,
    mixup,
    random_crop,
    random_grayscale,
    random_resized_crop,
    random_resized_crop_boxes,
    resized_crop,
    rgb_to_hsv,
)

ALL_RANDOM_OPS = [
    {"op": "random_resized_crop", "size": 10, "scale": [0.3, 1.0]},
    {"op": "random_crop", "size": 10, "padding": 2},
    {"op": "horizontal_flip"},
    {"op": "color_jitter", "p": 0.8},
    {"op": "random_grayscale", "p": 0.5},
    {"op": "gaussian_blur", "sigma": [0.1, 2.0], "kernel_size": 3, "p": 0.5},
]


def batch(n=8, c=3, h=12, w=12, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- flip and crop ------------------------------------------------------------------------


def test_flip_with_p_one_is_torch_flip_and_p_zero_is_identity():
    x = batch()
    assert torch.equal(horizontal_flip(x, 1.0, gen()), torch.flip(x, dims=[-1]))
    assert torch.equal(horizontal_flip(x, 0.0, gen()), x)


def test_flip_half_flips_close_to_half_of_10000_samples():
    x = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).expand(10_000, 1, 1, 2)
    flipped = int((horizontal_flip(x, 0.5, gen())[:, 0, 0, 0] == 1).sum())
    assert abs(flipped - 5000) < 5 * math.sqrt(10_000 * 0.25)  # 5 sigma of Binomial(10000, 0.5)


def test_crop_without_padding_at_full_size_is_identity():
    x = batch()
    assert torch.equal(random_crop(x, 12, 0, gen()), x)


def test_each_crop_is_a_window_of_its_zero_padded_sample():
    x = batch(n=6, h=6, w=6)
    out = random_crop(x, 6, 2, gen(3))
    padded = F.pad(x, (2, 2, 2, 2))
    for n in range(len(x)):
        windows = [padded[n, :, i : i + 6, j : j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[n], window) for window in windows)
    assert len({tuple(out[n, 0, 0].tolist()) for n in range(6)}) > 1  # offsets differ per sample


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_crop_padding_modes_match_torchvision_pad(mode):
    x = batch(n=4, h=5, w=7)
    out = random_crop(x, (5, 6), (1, 2, 3, 1), gen(1), padding_mode=mode)  # left, top, right, bottom
    padded = TF.pad(x, [1, 2, 3, 1], padding_mode=mode)
    for n in range(len(x)):
        windows = [padded[n, :, i : i + 5, j : j + 6] for i in range(4) for j in range(6)]
        assert any(torch.equal(out[n], window) for window in windows)


# --- reproducibility ----------------------------------------------------------------------


def test_same_seed_same_batch_other_seed_other_batch():
    augment, x = Augment.from_config(ALL_RANDOM_OPS), batch()
    assert torch.equal(augment(x, gen(1)), augment(x, gen(1)))
    assert not torch.equal(augment(x, gen(1)), augment(x, gen(2)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_cuda_give_the_same_batch_for_one_seed():
    augment, x = Augment.from_config(ALL_RANDOM_OPS), batch(n=32)
    on_cpu = augment(x, gen(5))
    on_gpu = augment(x.cuda(), gen(5)).cpu()
    assert torch.allclose(on_cpu, on_gpu, atol=1e-5)


def test_composer_applies_its_ops_in_order_with_one_generator():
    x = batch()
    g = gen(7)
    expected = random_crop(x, 10, 2, g)
    expected = horizontal_flip(expected, 0.5, g)
    expected = random_grayscale(expected, 0.5, g)
    spec = [
        {"op": "random_crop", "size": 10, "padding": 2},
        {"op": "horizontal_flip"},
        {"op": "random_grayscale", "p": 0.5},
    ]
    assert torch.equal(Augment.from_config(spec)(x, gen(7)), expected)


@pytest.mark.parametrize("spec", ALL_RANDOM_OPS, ids=lambda s: s["op"])
def test_every_op_returns_a_new_tensor_of_the_input_dtype(spec):
    x = batch(n=3).double()
    out = Augment.from_config([spec])(x, gen())
    assert out.dtype == torch.float64 and out.device == x.device and out.data_ptr() != x.data_ptr()


# --- colour -------------------------------------------------------------------------------


def test_grayscale_with_p_one_matches_torchvision():
    x = batch()
    expected = TF.rgb_to_grayscale(x, num_output_channels=3)
    assert torch.allclose(random_grayscale(x, 1.0, gen()), expected, atol=1e-6)
    assert torch.equal(random_grayscale(x, 0.0, gen()), x)


def test_jitter_with_all_factors_zero_is_identity():
    x = batch()
    assert torch.equal(color_jitter(x, 0, 0, 0, 0, 1.0, gen()), x)


def test_hsv_round_trip_and_a_zero_hue_shift_are_identity():
    x = batch()
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5)
    grey_and_primaries = torch.tensor([[0.3, 1, 0, 0], [0.3, 0, 1, 0], [0.3, 0, 0, 1]]).view(1, 3, 1, 4)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(grey_and_primaries)), grey_and_primaries, atol=1e-6)
    assert torch.equal(adjust_color(x, hue=torch.zeros(len(x))), x)


def test_adjust_color_matches_torchvision_per_sample_in_fixed_order():
    x = batch(n=4)
    b, c, s = torch.tensor([0.6, 1.0, 1.3, 1.5]), torch.tensor([1.4, 0.5, 1.0, 0.8]), torch.tensor([0.0, 1.7, 0.9, 1.2])
    h = torch.tensor([0.1, -0.3, 0.0, 0.45])
    out = adjust_color(x, b, c, s, h)
    for n in range(len(x)):
        expected = TF.adjust_brightness(x[n], b[n].item())
        expected = TF.adjust_contrast(expected, c[n].item())
        expected = TF.adjust_saturation(expected, s[n].item())
        expected = TF.adjust_hue(expected, h[n].item())
        assert torch.allclose(out[n], expected, atol=1e-5)


def test_jitter_draws_one_brightness_factor_per_sample_within_its_range():
    x = torch.full((64, 3, 2, 2), 0.5)
    factors = color_jitter(x, 0.5, 0, 0, 0, 1.0, gen())[:, 0, 0, 0] / 0.5
    assert factors.min() >= 0.5 and factors.max() <= 1.5
    assert len(set(factors.tolist())) == 64


def test_jitter_probability_leaves_unpicked_samples_exactly_unchanged():
    x = batch(n=200, h=2, w=2)
    out = color_jitter(x, 0.4, 0.4, 0.4, 0.1, 0.5, gen())
    unchanged = (out == x).flatten(1).all(1).float().mean().item()
    assert 0.35 < unchanged < 0.65


def test_saturation_and_hue_are_no_ops_on_one_channel():
    x = batch(c=1)
    assert torch.equal(color_jitter(x, 0, 0, 0.9, 0.5, 1.0, gen()), x)


# --- blur ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel, sigma", [(5, 1.0), (7, 0.5)])
def test_blur_matches_torchvision_for_one_sigma(kernel, sigma):
    x = batch()
    expected = TF.gaussian_blur(x, kernel_size=[kernel, kernel], sigma=[sigma, sigma])
    assert torch.allclose(gaussian_blur(x, sigma, kernel), expected, atol=1e-5)


def test_blur_per_sample_sigma_leaves_sigma_zero_exactly_unchanged():
    x = batch(n=4)
    out = gaussian_blur(x, torch.tensor([0.0, 1.0, -1.0, 0.5]), 5)
    assert torch.equal(out[0], x[0]) and torch.equal(out[2], x[2])
    assert torch.allclose(out[1], TF.gaussian_blur(x[1], kernel_size=[5, 5], sigma=[1.0, 1.0]), atol=1e-5)
    assert torch.allclose(out[3], TF.gaussian_blur(x[3], kernel_size=[5, 5], sigma=[0.5, 0.5]), atol=1e-5)


def test_blur_probability_blurs_a_random_subset():
    x = batch(n=400, h=6, w=6)
    blurred = (gaussian_blur(x, 1.0, 3, p=0.25, generator=gen()) != x).flatten(1).any(1).float().mean().item()
    assert 0.15 < blurred < 0.35
    assert torch.equal(gaussian_blur(x, 1.0, 3, p=0.0, generator=gen()), x)


def test_blur_sigma_range_gives_each_sample_its_own_sigma():
    x = batch(n=1).expand(6, 3, 12, 12)
    out = gaussian_blur(x, (0.5, 2.0), 5, generator=gen())
    assert len({round(out[n].std().item(), 6) for n in range(6)}) == 6


# --- resized crop -------------------------------------------------------------------------


def test_resized_crop_of_the_whole_image_is_identity():
    x = batch()
    out = random_resized_crop(x, 12, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=gen())
    assert torch.allclose(out, x, atol=1e-5)
    assert random_resized_crop(x, (7, 5), generator=gen()).shape == (8, 3, 7, 5)


def test_resized_crop_matches_torchvision_without_antialias():
    x = batch(n=4, h=12, w=10)
    boxes = torch.tensor([[0, 0, 12, 10], [2, 3, 5, 4], [6, 1, 6, 9], [1, 5, 11, 5]])
    out = resized_crop(x, boxes, (9, 7))
    for n, (top, left, h, w) in enumerate(boxes.tolist()):
        expected = TF.resized_crop(x[n], top, left, h, w, [9, 7], antialias=False)
        assert torch.allclose(out[n], expected, atol=1e-5)


def test_resized_crop_boxes_follow_torchvision_rule():
    boxes = random_resized_crop_boxes(2000, 20, 30, (0.2, 0.6), (0.5, 2.0), gen())
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 20).all() and (left + w <= 30).all()
    area = (h * w).double() / 600
    assert area.min() > 0.15 and area.max() < 0.7  # rounding widens the scale range a little
    assert len(set(map(tuple, boxes.tolist()))) > 500  # a box per sample
    # A scale no box can reach falls back to the centre crop clamped to the ratio range.
    fallback = random_resized_crop_boxes(3, 20, 60, (4.0, 4.0), (0.75, 4 / 3), gen())
    expected = RandomResizedCrop.get_params(torch.zeros(1, 20, 60), [4.0, 4.0], [0.75, 4 / 3])
    assert fallback.tolist() == [list(expected)] * 3 == [[0, 16, 20, 27]] * 3


# --- mixup, cutmix, normalize -------------------------------------------------------------


def test_mixup_lambda_is_in_unit_interval_and_targets_sum_to_one():
    x, labels = batch(n=6), torch.arange(6)
    y = F.one_hot(labels, 6).float()
    for seed in range(5):
        mixed, targets = mixup(x, y, 0.4, gen(seed))
        lam = targets[0, 0].item()  # sample 0 is paired with sample 5
        assert 0 <= lam <= 1
        assert torch.allclose(targets.sum(1), torch.ones(6))
        assert torch.allclose(mixed, lam * x + (1 - lam) * x.flip(0), atol=1e-6)


def test_cutmix_targets_weigh_the_area_taken_from_the_partner():
    x, y = torch.zeros(4, 1, 10, 10), F.one_hot(torch.arange(4), 4).float()
    x[:2] = 1.0  # samples 0, 1 are ones; their partners 3, 2 are zeros
    for seed in range(5):
        mixed, targets = cutmix(x, y, 1.0, gen(seed))
        pasted = 1 - mixed[0].mean().item()
        assert torch.allclose(targets.sum(1), torch.ones(4))
        assert targets[0, 3].item() == pytest.approx(pasted)


# --- configs and composer -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: HorizontalFlipConfig(p=1.5), "p"),
        (lambda: RandomCropConfig(padding=-1), "padding"),
        (lambda: RandomCropConfig(padding_mode="wrap"), "padding_mode"),
        (lambda: RandomResizedCropConfig(scale=(0.9, 0.1)), "scale"),
        (lambda: ColorJitterConfig(hue=0.7), "hue"),
        (lambda: ColorJitterConfig(brightness=-0.1), "brightness"),
        (lambda: GaussianBlurConfig(kernel_size=4), "kernel_size"),
    ],
)
def test_configs_reject_bad_values_by_name(make, field):
    with pytest.raises(ValueError, match=field):
        make()


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda x: horizontal_flip(x, 1.5, gen()), "p"),
        (lambda x: random_crop(x, 10, -1, gen()), "padding"),
        (lambda x: random_resized_crop(x, 10, scale=(0.9, 0.1), generator=gen()), "scale"),
        (lambda x: color_jitter(x, 0.4, 0.4, 0.4, 0.7, 0.5, gen()), "hue"),
        (lambda x: random_grayscale(x, -0.1, gen()), "p"),
        (lambda x: gaussian_blur(x, 1.0, 4), "kernel_size"),
        (lambda x: gaussian_blur(x, torch.ones(8), 4), "kernel_size"),
    ],
)
def test_op_functions_check_their_settings_through_the_op_config(call, field):
    with pytest.raises(ValueError, match=f"^{field} must"):
        call(batch())


def test_unknown_op_and_unknown_key_are_named_with_the_valid_choices():
    with pytest.raises(ValueError, match=r"\[0\]\.op: unknown op 'rotate'; expected one of") as err:
        Augment.from_config([{"op": "rotate"}])
    assert all(name in str(err.value) for name in OPS)
    with pytest.raises(ValueError, match=r"\[1\]\(horizontal_flip\)\.prob: unknown key") as err:
        Augment.from_config([{"op": "random_grayscale"}, {"op": "horizontal_flip", "prob": 0.5}])
    assert "'p'" in str(err.value)
    with pytest.raises(ValueError, match=r"^\[0\]\(random_crop\): padding_mode must be one of"):
        Augment.from_config([{"op": "random_crop", "padding_mode": "wrap"}])


def test_normalize_is_not_an_op_and_its_refusal_points_to_train_normalize():
    with pytest.raises(ValueError, match=r"^\[1\]\.op: 'normalize' is not an augmentation op; .*train\.normalize"):
        Augment.from_config([{"op": "horizontal_flip"}, {"op": "normalize", "mean": [0.5], "std": [0.25]}])
    assert "normalize" not in OPS
