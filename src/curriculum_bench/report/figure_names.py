"""The figures the workflow draws per study, by name: the plan, without pandas or matplotlib.

The Snakefile asks `figure_names(study)` while it plans, so this module imports nothing
heavy. Each name is drawn by a function registered under it in `report/figures*.py`
(`register_figure` refuses a name that is not declared here; tests/test_figures.py checks
that every declared name has its function).
"""

from __future__ import annotations

ALL_STUDIES = "*"

FIGURE_NAMES: dict[str, tuple[str, ...]] = {
    ALL_STUDIES: ("accuracy",),  # figures.py: evaluation accuracy per epoch, every study
    "hybrid": ("lerac_lr", "blur_schedule"),  # figures_hybrid.py
    "techniques": ("schedules",),  # figures_techniques.py
    "contrastive": ("mean_schedule", "contrastive_loss", "probe_accuracy"),  # figures_contrastive.py
    "data_parameters": ("instance_sigma_histogram", "instance_sigma_mean", "class_sigma"),
    "data_parameters_imagenet": ("instance_sigma_histogram", "instance_sigma_mean", "class_sigma"),
    "coreset": ("forgetting_histogram", "coreset_accuracy", "removal_curve"),  # figures_coreset.py
}


def figure_names(study: str) -> list[str]:
    """The figures the workflow draws for `study`, common ones first."""
    return list(FIGURE_NAMES[ALL_STUDIES]) + list(FIGURE_NAMES.get(study, ()))
