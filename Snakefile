# curriculum-bench: raw data -> trained runs -> paper tables, for every configured study.
#   snakemake --cores all                       embedded default (config/config.yaml)
#   snakemake --cores all --configfile FILE     another config (e.g. .test/config.yaml)
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, only when no --configfile is given: Snakemake would otherwise
# deep-merge it under the given config (paper.yaml would inherit the default's studies).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/contrastive.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/coreset.smk"


# Cheap jobs that a cluster should not queue for.
localrules:
    all,
    study_table,
    study_figure,
    claims,
    paper_index,


rule all:
    default_target: True
    input:
        get_final_output(),
