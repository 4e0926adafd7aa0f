"""The settings of data/policies.py's RandAugment and AutoAugment, without torch: TrainConfig
checks them when a config is read, before any job imports torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

LEVEL_DENOM = 10.0  # timm _LEVEL_DENOM: magnitudes are on a 0..10 scale
AUTO_AUGMENT_POLICIES = ("cifar10", "imagenet", "svhn")  # torchvision AutoAugmentPolicy names
# timm rand_augment_transform's config sections -> RandAugmentConfig fields
RAND_SECTIONS = {
    "m": "magnitude",
    "n": "num_layers",
    "mstd": "magnitude_std",
    "mmax": "magnitude_max",
    "inc": "increasing",
    "p": "prob",
}


@dataclass(frozen=True)
class RandAugmentConfig:
    """timm's config string, e.g. "rand-m9-mstd0.5-inc1" (HCL's CvT / ResNet runners)."""

    magnitude: float = 10.0  # m (timm default 10)
    num_layers: int = 2  # n
    magnitude_std: float = 0.0  # mstd (> 100: uniform in [0, m], timm's inf)
    magnitude_max: float = LEVEL_DENOM  # mmax
    increasing: bool = False  # inc
    prob: float = 0.5  # p: each layer's op runs with this probability (timm default 0.5)

    @classmethod
    def parse(cls, text: str) -> RandAugmentConfig:
        parts = text.split("-")
        if parts[0] != "rand":
            raise ValueError(f"rand_augment must be a timm config string 'rand-m9-mstd0.5-inc1', got {text!r}")
        values: dict = {}
        for part in parts[1:]:
            key = part.rstrip("0123456789.")
            if key not in RAND_SECTIONS or key == part:
                raise ValueError(
                    f"rand_augment {text!r}: unknown section {part!r}; expected one of "
                    f"{['m<int>', 'n<int>', 'mstd<float>', 'mmax<int>', 'inc0|inc1', 'p<float>']}"
                )
            value = float(part[len(key) :])
            values[RAND_SECTIONS[key]] = bool(int(value)) if key == "inc" else int(value) if key == "n" else value
        if values.get("magnitude_std", 0) > 100:
            values["magnitude_std"] = math.inf
        cfg = cls(**values)
        if cfg.num_layers < 1 or not 0 <= cfg.prob <= 1 or cfg.magnitude < 0 or cfg.magnitude_std < 0:
            raise ValueError(f"rand_augment {text!r}: n must be >= 1, p in [0, 1], m and mstd >= 0")
        return cfg
