"""Curriculum methods, one file per paper section; importing this registers them all."""
from . import (  # noqa: F401
    augmentation,
    distill,
    layerwise_lr,
    lr_schedule,
    progressive_dropout,
    self_labeling,
    transfer,
    weight_init,
    weighted_sampling,
)
