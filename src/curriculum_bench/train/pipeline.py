"""From stored uint8 pixels to the model's input: augmentation in training, normalisation always.

Shared by the engine's training step and evaluation and by hooks that predict (self-labelling's
pool, a distillation teacher), so every forward pass sees its images prepared the same way.
"""

from __future__ import annotations

import torch

from ..config import ConfigError
from .config import TrainConfig


def to_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 1]; MLT feeds pixels / 255 with no mean/std normalisation."""
    return images.float().div_(255)


class InputPipeline:
    """Training-time augmentation (`train.augment`, then `train.rand_augment` or
    `train.auto_augment`, then `train.random_erasing`: timm's and torchvision's order) and the
    normalisation shared with evaluation. All draw from the one generator the engine passes
    (Stream.AUGMENT); a policy that is off draws nothing.

    The defaults (no augmentation, no normalisation) make the identity pipeline a hook sees when
    it is driven without the engine, as in a unit test.
    """

    def __init__(self, cfg: TrainConfig | None = None, device: torch.device | None = None):
        cfg = cfg or TrainConfig()
        self.augment = None
        if cfg.augment:
            from ..data.augment import Augment

            try:
                self.augment = Augment.from_config(cfg.augment)
            except ValueError as err:
                raise ConfigError(f"train.augment: {err}") from None
        self.mean = self.std = None
        if cfg.normalize is not None:
            self.mean = torch.tensor(cfg.normalize["mean"], device=device).view(1, -1, 1, 1)
            self.std = torch.tensor(cfg.normalize["std"], device=device).view(1, -1, 1, 1)
        self.rand_augment = self.auto_augment = None
        if cfg.rand_augment is not None:
            from ..data.policy_config import RandAugmentConfig

            self.rand_augment = RandAugmentConfig.parse(cfg.rand_augment)
        self.auto_augment = cfg.auto_augment
        self.random_erasing = cfg.random_erasing
        # timm fills RandAugment's geometric ops with the dataset mean (img_mean); torchvision's
        # AutoAugment with 0.
        self.fill = tuple(cfg.normalize["mean"]) if cfg.normalize is not None else (0.5,)

    def train(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = to_inputs(images)
        if self.augment is not None:
            x = self.augment(x, generator)
        if self.rand_augment is not None or self.auto_augment is not None or self.random_erasing > 0:
            from ..data import policies

            if self.rand_augment is not None:
                x = policies.rand_augment(x, self.rand_augment, generator, self.fill)
            if self.auto_augment is not None:
                x = policies.auto_augment(x, self.auto_augment, generator)
            if self.random_erasing > 0:
                x = policies.random_erasing(x, self.random_erasing, generator, self.mean, self.std)
        return x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.mean is None else (x - self.mean) / self.std
