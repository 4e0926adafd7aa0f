"""Curriculum methods, one file per paper section; importing this registers them all."""
from . import weighted_sampling  # noqa: F401
from . import coreset_subset, forgetting  # noqa: F401
