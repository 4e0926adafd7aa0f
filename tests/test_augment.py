import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from curriculum_bench.config import ConfigError
from curriculum_bench.data.augment import (
    Augment, ColorJitterConfig, HorizontalFlipConfig, RandomCropConfig, RandomGrayscaleConfig,
    RandomResizedCropConfig, color_jitter, gaussian_blur, horizontal_flip, hsv_to_rgb, random_crop,
    random_grayscale, random_resized_crop, rgb_to_hsv)


def batch(n=8, c=3, h=12, w=12, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_flip_with_p_one_is_torch_flip_and_p_zero_is_identity():
    x = batch()
    assert torch.equal(horizontal_flip(x, HorizontalFlipConfig(1.0), gen()), x.flip(-1))
    assert torch.equal(horizontal_flip(x, HorizontalFlipConfig(0.0), gen()), x)


def test_flip_half_flips_about_half_of_the_samples():
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(10_000, 1, 1, 4)
    flipped = (horizontal_flip(x, HorizontalFlipConfig(0.5), gen())[:, 0, 0, 0] == 3).sum().item()
    assert abs(flipped - 5000) < 5 * math.sqrt(10_000 * 0.25)


def test_crop_without_padding_at_full_size_is_identity():
    x = batch()
    assert torch.equal(random_crop(x, RandomCropConfig(size=12, padding=0), gen()), x)


def test_each_crop_is_a_window_of_the_zero_padded_sample():
    x = batch(n=6, h=6, w=6)
    out = random_crop(x, RandomCropConfig(size=6, padding=2), gen(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for n in range(len(x)):
        windows = [padded[n, :, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[n], window) for window in windows)
    offsets_differ = len({tuple(out[n, 0, 0].tolist()) for n in range(6)}) > 1
    assert offsets_differ


def test_same_seed_same_batch_other_seed_other_batch():
    spec = [{"op": "random_crop", "size": 12, "padding": 2}, {"op": "horizontal_flip"},
            {"op": "color_jitter"}, {"op": "random_grayscale", "p": 0.5}]
    augment, x = Augment.from_config(spec), batch()
    assert torch.equal(augment(x, gen(1)), augment(x, gen(1)))
    assert not torch.equal(augment(x, gen(1)), augment(x, gen(2)))


def test_grayscale_matches_torchvision():
    x = batch()
    ours = random_grayscale(x, RandomGrayscaleConfig(p=1.0), gen())
    assert torch.allclose(ours, TF.rgb_to_grayscale(x, num_output_channels=3), atol=1e-6)


@pytest.mark.parametrize("kernel, sigma", [(5, 1.0), (7, 0.5)])
def test_blur_matches_torchvision_for_one_sigma(kernel, sigma):
    x = batch()
    expected = TF.gaussian_blur(x, kernel_size=[kernel, kernel], sigma=[sigma, sigma])
    assert torch.allclose(gaussian_blur(x, sigma, kernel), expected, atol=1e-5)


def test_blur_per_sample_sigma_leaves_sigma_zero_untouched():
    x = batch(n=2)
    out = gaussian_blur(x, torch.tensor([0.0, 1.0]), 5)
    assert torch.equal(out[0], x[0])
    assert torch.allclose(out[1:], TF.gaussian_blur(x[1:], kernel_size=[5, 5], sigma=[1.0, 1.0]), atol=1e-5)


def test_blur_probability_blurs_a_random_subset():
    x = batch(n=400, h=6, w=6)
    out = gaussian_blur(x, 1.0, 3, p=0.25, generator=gen())
    blurred = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.15 < blurred < 0.35


def test_jitter_with_zero_strength_is_identity_and_hsv_round_trips():
    x = batch()
    none = ColorJitterConfig(brightness=0, contrast=0, saturation=0, hue=0, p=1.0)
    assert torch.equal(color_jitter(x, none, gen()), x)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5)


def test_jitter_brightness_matches_torchvision_for_the_drawn_factor():
    x = batch(n=1)
    cfg = ColorJitterConfig(brightness=0.5, contrast=0, saturation=0, hue=0, p=1.0)
    g = gen(4)
    g.manual_seed(4)
    torch.rand(1, generator=g)  # the apply draw
    factor = 0.5 + torch.rand(1, generator=g).item()
    assert torch.allclose(color_jitter(x, cfg, gen(4)), TF.adjust_brightness(x, factor), atol=1e-6)


def test_resized_crop_of_the_whole_image_is_identity():
    x = batch()
    cfg = RandomResizedCropConfig(size=12, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(random_resized_crop(x, cfg, gen()), x, atol=1e-5)
    assert random_resized_crop(x, RandomResizedCropConfig(size=7), gen()).shape == (8, 3, 7, 7)


def test_unknown_op_and_unknown_key_are_named():
    with pytest.raises(ConfigError, match=r"\[0\]\.op: unknown op 'rotate'; expected one of"):
        Augment.from_config([{"op": "rotate"}])
    with pytest.raises(ConfigError, match=r"\[1\]\(horizontal_flip\)\.prob: unknown key"):
        Augment.from_config([{"op": "normalize"}, {"op": "horizontal_flip", "prob": 0.5}])
