"""Blur curriculum: Gaussian-blurred training images in the first epochs, sharp afterwards.

docs/methods.md §1.3 (HCL src/dataloaders/dataloader.py, convNext_dataloader.py, branch
`extension`), §1.5, §7. The origin (ACM, doi 10.1145/3606043.3606086) was not available, so
the hybrid repository's three variants define the method:

- ``constant`` (HCL main, CvT/ResNet-18): every image blurred with a fixed sigma and kernel in
  epochs e < blur_epochs (CvT kernel 5, ResNet-18 kernel 7, sigma 1.0).
- ``linear_sigma`` (HCL ConvNeXt): sigma(e) = sigma * (1 - e / blur_epochs), and no blur once
  sigma(e) <= `min_sigma` (0.1); HCL: sigma 2.0 over 5 epochs -> 2, 1.6, 1.2, 0.8, 0.4 (§8).
- ``linear_probability`` (HCL `--linear_blur_extension`): each image is blurred with
  probability p(e) = 1 - e / blur_epochs, fixed sigma.
- ``random_probability`` (ours, the random control of ``linear_probability``): each image is
  blurred with the constant probability (E + 1) / (2E), linear_probability's mean share over
  its E = blur_epochs epochs: as many blurred images in expectation, in no easy-to-hard order.

HCL's blurred epochs come from a second loader without any other augmentation (its ConvNeXt
keeps augmentation); `keep_augmentation: false` reproduces that by asking the engine to skip
`train.augment` in epochs e < blur_epochs. The blur runs on the device after augmentation and
before normalisation (HCL: ToTensor -> GaussianBlur -> Normalize), through data/augment.py's
per-sample `gaussian_blur`. Which images are blurred is drawn from the run's blur stream
(Stream.BLUR) at each step, so a resumed run blurs exactly the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.augment import gaussian_blur
from ..train.hooks import Hook, Stream, TrainState, register_method, seeded_generator

SCHEDULES = ("constant", "linear_sigma", "linear_probability", "random_probability")


@dataclass(frozen=True)
class BlurConfig:
    blur_epochs: int = 20  # HCL --blur_epochs 20 (ConvNeXt: curriculum_k 5)
    schedule: str = "constant"  # HCL main; linear_sigma: HCL ConvNeXt; linear_probability: HCL extension
    sigma: float = 1.0  # HCL CvT/ResNet 1.0; linear_sigma: the starting sigma (ConvNeXt 2.0)
    kernel_size: int = 7  # HCL ResNet-18 7, CvT 5, ConvNeXt 5 (CIFAR at 224 px) / 21 (ImageNet-100)
    min_sigma: float = 0.1  # linear_sigma: blur only while sigma(e) > min_sigma (HCL ConvNeXt)
    keep_augmentation: bool = False  # HCL CvT/ResNet: blurred epochs have no other augmentation

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not isinstance(self.blur_epochs, int) or self.blur_epochs < 1:
            raise ValueError(f"blur_epochs must be an int >= 1, got {self.blur_epochs!r}")
        if not self.sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")
        if not self.min_sigma >= 0:
            raise ValueError(f"min_sigma must be >= 0, got {self.min_sigma}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd int >= 1, got {self.kernel_size!r}")


def blur_sigma(epoch: int, cfg: BlurConfig) -> float:
    """Sigma of 0-based `epoch`; 0 means no blur."""
    if epoch >= cfg.blur_epochs:
        return 0.0
    if cfg.schedule == "linear_sigma":
        sigma = cfg.sigma * (1 - epoch / cfg.blur_epochs)
        return sigma if sigma > cfg.min_sigma else 0.0
    return cfg.sigma


def blur_probability(epoch: int, cfg: BlurConfig) -> float:
    """Share of the epoch's images that are blurred (HCL extension: 1 - e / blur_epochs)."""
    if blur_sigma(epoch, cfg) <= 0:
        return 0.0
    if cfg.schedule == "linear_probability":
        return 1 - epoch / cfg.blur_epochs
    if cfg.schedule == "random_probability":
        return (cfg.blur_epochs + 1) / (2 * cfg.blur_epochs)
    return 1.0


def augmentation_on(epoch: int, cfg: BlurConfig) -> bool:
    """HCL swaps in its augmentation-free blur loader for every epoch e < blur_epochs."""
    return cfg.keep_augmentation or epoch >= cfg.blur_epochs


def batch_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, step): resumes draw the same blur choices."""
    return seeded_generator(seed, step, Stream.BLUR)


def blur_batch(
    x: torch.Tensor, sigma: float, kernel_size: int, probability: float, generator: torch.Generator
) -> torch.Tensor:
    """Blur each sample of x (N, C, H, W in [0, 1]) with probability `probability`."""
    if sigma <= 0 or probability <= 0:
        return x
    return gaussian_blur(x, float(sigma), kernel_size, p=None if probability >= 1 else probability, generator=generator)


@register_method("blur", BlurConfig)
class Blur(Hook):
    """Usage (a variant in the config):  blur: {blur_epochs: 20, sigma: 1.0, kernel_size: 7}"""

    def __init__(self, cfg: BlurConfig):
        self.cfg = cfg

    def on_fit_start(self, state: TrainState) -> None:
        _, height, width = state.data.in_shape if state.data is not None else (0, 10**9, 10**9)
        if self.cfg.kernel_size // 2 >= min(height, width):
            raise ValueError(
                f"methods.blur.kernel_size {self.cfg.kernel_size} is too large for "
                f"{height}x{width} images (reflect padding needs kernel_size // 2 < size)"
            )

    def on_epoch_start(self, state: TrainState) -> None:
        state.augment = augmentation_on(state.epoch, self.cfg)

    def transform_batch(self, state: TrainState, idx, x, y):
        sigma, p = blur_sigma(state.epoch, self.cfg), blur_probability(state.epoch, self.cfg)
        return blur_batch(x, sigma, self.cfg.kernel_size, p, batch_generator(state.seed, state.step)), y

    def epoch_log(self, state: TrainState) -> dict:
        return {
            "sigma": blur_sigma(state.epoch, self.cfg),
            "probability": blur_probability(state.epoch, self.cfg),
            "augmentation": augmentation_on(state.epoch, self.cfg),
        }
