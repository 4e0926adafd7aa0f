"""Curriculum contrastive learning (spec §3): SimCLR on the engine, Weighted NT-Xent, linear
evaluation. Importing this registers the `simclr` method."""

from . import simclr  # noqa: F401
