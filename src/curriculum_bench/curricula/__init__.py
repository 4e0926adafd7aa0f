"""Curriculum methods, one file per paper section.

Importing this package registers every method: train.hooks.discover_methods imports each
module here and in contrastive/, so a new method file needs no entry in any list.
"""

from ..train.hooks import discover_methods

discover_methods()
