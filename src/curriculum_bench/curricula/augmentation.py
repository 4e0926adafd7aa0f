"""Data augmentation as a variant (the catalogue's planned technique).

The study's `train.augment` applies to every variant; this method applies the same
on-device ops (data/augment.py, torchvision semantics, per-sample parameters) to one
variant only, in `transform_batch`, so that "with augmentation" is a row of its table.
The default is a small translation suited to 28x28 digits (pad 2, crop back to 28;
no flips, which would change digits). Each step's parameters come from a CPU generator
seeded by (run seed, step) in its own stream (Stream.AUGMENT_METHOD): a pure function of
time, so a resumed run (even mid-epoch) draws the same augmentations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from ..data.augment import Augment
from ..train.hooks import Hook, Stream, TrainState, register_method, seeded_generator


@dataclass(frozen=True)
class AugmentConfig:
    ops: tuple = ({"op": "random_crop", "size": 28, "padding": 2},)  # ±2 px shifts of MNIST

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(dict(op) for op in self.ops))
        if not self.ops:
            raise ValueError("ops must list at least one augmentation op")
        self.augment  # noqa: B018  (builds the ops: a bad op is refused with the config)

    @cached_property
    def augment(self) -> Augment:
        """The ops, built (and so checked) once, when the config is."""
        return Augment.from_config(self.ops, where="ops")


def step_generator(seed: int, step: int) -> torch.Generator:
    """Depends only on (seed, step), so a resumed run augments the same way."""
    return seeded_generator(seed, step, Stream.AUGMENT_METHOD)


@register_method("augment", AugmentConfig)
class Augmentation(Hook):
    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        self.augment = cfg.augment

    def transform_batch(self, state: TrainState, idx, x, y):
        return self.augment(x, step_generator(state.seed, state.step)), y
