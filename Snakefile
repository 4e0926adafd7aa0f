# The workflow is workflow/Snakefile (the Snakemake workflow catalog's layout); this include
# keeps `snakemake` working from the repository root.
include: "workflow/Snakefile"


# Snakemake takes the default target from this file only (not from an included one): the
# workflow's own `all`.
rule default:
    default_target: True
    input:
        rules.all.input,
