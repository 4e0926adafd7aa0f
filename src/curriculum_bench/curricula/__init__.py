"""Curriculum methods, one file per paper section; importing this registers them all."""
from . import weighted_sampling  # noqa: F401
from .. import contrastive  # noqa: F401,E402  (the `simclr` method lives with its loss and probe)
from . import data_parameters  # noqa: F401
from . import coreset_subset, forgetting  # noqa: F401
