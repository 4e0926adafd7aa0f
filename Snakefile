# The workflow is workflow/Snakefile (the Snakemake workflow catalog's layout); this include
# keeps `snakemake` working from the repository root.
include: "workflow/Snakefile"


# Snakemake takes the default target from this file only (not from an included one).
use rule all as all_from_root with:
    default_target: True
