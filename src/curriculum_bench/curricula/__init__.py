"""Curriculum methods, one file per paper section; importing this registers them all."""
from . import blur, lerac, weighted_sampling  # noqa: F401
