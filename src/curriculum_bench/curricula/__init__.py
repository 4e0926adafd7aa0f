"""Curriculum methods, one file per paper section; importing this registers them all."""

from .. import contrastive  # noqa: F401,E402  (the `simclr` method lives with its loss and probe)
from . import (  # noqa: F401
    augmentation,
    blur,
    coreset_subset,
    data_parameters,
    distill,
    forgetting,
    layerwise_lr,
    lerac,
    lr_schedule,
    progressive_dropout,
    self_labeling,
    transfer,
    weight_init,
    weighted_sampling,
)
