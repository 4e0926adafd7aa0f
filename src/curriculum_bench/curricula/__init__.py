"""Curriculum methods, one file per paper section; importing this registers them all."""
from . import progressive_dropout, self_labeling, weighted_sampling  # noqa: F401
