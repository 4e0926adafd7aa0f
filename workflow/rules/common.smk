# Helpers for the rules: config validation first, then input functions and the run list.
# All planning logic lives in the package (curriculum_bench.config); rules stay wiring.
import os
import re
import shlex

from snakemake.exceptions import WorkflowError

try:
    import curriculum_bench  # noqa: F401
except ImportError:
    raise WorkflowError(
        "the Python that runs Snakemake cannot import curriculum_bench: install it "
        "(`pip install -e .` in a clone, or `pip install git+<repository URL>`; config/README.md)"
    ) from None

from curriculum_bench.config import (
    CHECKPOINT,
    METRICS,
    PROBE_METRICS,
    check_references,
    job_resources,
    resolve_run,
    scheduler_resources,
    scored_by_linear_probe,
    to_json,
)
from curriculum_bench.config_checks import check_config_values
from curriculum_bench.coreset import plan as coreset_plan
from curriculum_bench.job_env import job_pythonpath
from curriculum_bench.plan import check_local_inputs, check_rows, validate_config
from curriculum_bench.report.claims import (
    config_runs,
    load_claims,
    plan_claims,
    reference_runs,
)
from curriculum_bench.report.figure_names import figure_names
from curriculum_bench.report.run_summary import summarize_runs
from curriculum_bench.run_inputs import run_inputs

# Reference data ships with the workflow (also when it is deployed as a module): the
# authors' reported numbers, the source studies' claims, and the config they are written for.
RULES_DIR = str(workflow.current_basedir)


def workflow_file(relpath):
    # Its own path in a local copy of the workflow (a stable job input); a cached copy when the
    # workflow is read from a remote source (module snakefile: github(...)).
    path = os.path.normpath(os.path.join(RULES_DIR, relpath))
    return path if os.path.exists(path) else workflow.source_path(relpath)


REPORTED = workflow_file("../../config/reported.yaml")
CLAIMS = workflow_file("../../config/claims.yaml")
PAPER_CONFIG = workflow_file("../../config/paper.yaml")
SCHEMA = workflow_file("../schemas/config.schema.yaml")

# Snakemake's validation (defaults filled in), its error as one line naming the key first.
validate_config(config, SCHEMA)

# torch.compile's kernels (GPU runs) are kept here and reused by every later training job
# (the schema's default fills it: resources/torch_compile_cache).
COMPILE_CACHE = os.path.abspath(config["compile_cache"])

shell.prefix(
    # Every job imports the package the Snakemake process planned with, also in a conda env
    # from envs/ (third-party dependencies only): curriculum_bench.job_env.
    # Snakemake formats the prefix too: "{{{{" reaches bash as "{".
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(job_pythonpath())}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
    f"export CURRICULUM_BENCH_COMPILE_CACHE={shlex.quote(COMPILE_CACHE)}; "
)
check_references(config)
# Rows that are not what they say: two variants resolving to the same run, an override
# rewriting what a variant sets, an override naming nothing (curriculum_bench.plan).
check_rows(config)
# Values a job would only find wrong when it runs: channels, model arguments, sizes, report keys.
check_config_values(config)
# Every local input the config reads (weights, ImageNet folders) that is missing, in one message.
check_local_inputs(config)

RUNS = config_runs(config)
# Per claim, the configurations (dataset x model) of this config that train both its rows.
PLANNED_CLAIMS = plan_claims(
    load_claims(CLAIMS), config, RUNS, reference_runs(PAPER_CONFIG, SCHEMA)
)
DERIVED = [
    name for name, spec in config["datasets"].items() if spec["source"] == "derived"
]
# Regexes for the two ways a store is made; "(?!)" matches nothing when a list is empty.
DERIVED_DATASETS = "|".join(DERIVED) or "(?!)"
BASE_DATASETS = "|".join(set(config["datasets"]) - set(DERIVED)) or "(?!)"


def one_of(names):
    """A wildcard constraint matching exactly these names ("(?!)", nothing, when empty)."""
    return (
        "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
        or "(?!)"
    )


# Studies whose runs the generic `train` rule plans; coreset.smk plans the coreset study's.
TRAIN_STUDIES = one_of(s for s in config["studies"] if s != "coreset")


# Built from the config: a target naming a model or variant the config does not run
# (a typo in results/.../lerak/seed0/metrics.json) has no rule, rather than a KeyError.
wildcard_constraints:
    study=one_of(config["studies"]),
    dataset=one_of(config["datasets"]),
    model=one_of(run["model"] for run in RUNS),
    variant=one_of(run["variant"] for run in RUNS),
    seed=r"\d+",


def get_final_output():
    datasets = [
        f"resources/datasets/{name}/manifest.json" for name in config["datasets"]
    ]
    tables = [
        f"paper_tables/{study}.{ext}"
        for study in config["studies"]
        for ext in ("md", "csv")
    ]
    figures = [
        f"paper_tables/figures/{study}/{name}.png"
        for study in config["studies"]
        for name in figure_names(study)
    ]
    return (
        datasets
        + tables
        + figures
        + coreset_plan.final_outputs(config)
        + ["paper_tables/claims.md", "paper_tables/README.md"]
    )


def get_dataset_spec(wildcards):
    return to_json(config["datasets"][wildcards.dataset])


def get_dataset_dir(wildcards):
    return f"resources/datasets/{wildcards.dataset}"


def get_prepare_threads(wildcards):
    # ImageNet-100 decodes in parallel: `workers`, or every core Snakemake may use when 0.
    spec = config["datasets"][wildcards.dataset]
    if spec["source"] != "imagenet100":
        return 1
    return spec.get("workers") or workflow.cores


def get_base_dir(wildcards):
    return f"resources/datasets/{config['datasets'][wildcards.dataset]['from']}"


def get_base_manifest(wildcards):
    return os.path.join(get_base_dir(wildcards), "manifest.json")


def get_run_config(wildcards):
    run = resolve_run(
        config,
        wildcards.study,
        wildcards.dataset,
        wildcards.model,
        wildcards.variant,
        int(wildcards.seed),
    )
    return to_json(run)


def get_run_inputs(wildcards):
    # Another run's output a method reads (distillation teacher, pretrained weights).
    return run_inputs(
        config,
        wildcards.study,
        wildcards.dataset,
        wildcards.model,
        wildcards.variant,
        int(wildcards.seed),
    )


def get_checkpoint(wildcards):
    # Outside the rule's outputs, so Snakemake never deletes it before a retry.
    return CHECKPOINT.format(**wildcards)


def study_metrics(study):
    # What a study's table and figures read: a run's metrics, or its linear evaluation.
    scores = PROBE_METRICS if scored_by_linear_probe(config, study) else METRICS
    return [scores.format(**run) for run in RUNS if run["study"] == study]


def get_study_metrics(wildcards):
    return study_metrics(wildcards.study)


def get_probe_config(wildcards):
    return to_json(config["studies"][wildcards.study].get("probe") or {})


def get_config_files():
    # The files this invocation read: --configfile ones (Snakemake's public ConfigSettings, as
    # its Python API takes them), else the Snakefile's default.
    given = workflow.config_settings.configfiles
    return [os.path.relpath(f) for f in given] or ["config/config.yaml"]


def resolved_epochs(run):
    if run["study"] == "coreset":
        args = (run["dataset"], run["model"], run["variant"], run["seed"])
        return coreset_plan.resolve_coreset_run(config, *args)["train"]["epochs"]
    return resolve_run(config, **run)["train"]["epochs"]


def get_index_studies():
    # What each study runs, from the scheduled run list (coreset stages included).
    return to_json(summarize_runs(RUNS, resolved_epochs))


def get_claims_studies():
    return sorted(
        {claim["study"] for claim in PLANNED_CLAIMS if claim["configurations"]}
    )


def get_claims_metrics(wildcards):
    return [path for study in get_claims_studies() for path in study_metrics(study)]


def get_claims_tables(wildcards):
    # Decided after each study's table has checked its runs.
    return [f"paper_tables/{study}.csv" for study in get_claims_studies()]


def get_all_tables_and_figures(wildcards):
    return (
        ["paper_tables/claims.md"]
        + [f"paper_tables/{study}.md" for study in config["studies"]]
        + [
            f"paper_tables/figures/{study}/{name}.png"
            for study in config["studies"]
            for name in figure_names(study)
        ]
    )


def get_report_options(wildcards):
    # The study's report section, and every run its table must hold (each coreset stage has its own seeds).
    spec = config["studies"][wildcards.study]
    runs = [
        [run["dataset"], run["model"], run["variant"], run["seed"]]
        for run in RUNS
        if run["study"] == wildcards.study
    ]
    return to_json(
        {
            **(spec.get("report") or {}),
            "expected_runs": runs,
            "fabricated_data": config["fabricated_data"],
            # Settings that differ on purpose from the source protocol: said in the caption.
            "deviations": spec.get("deviations") or [],
        }
    )


# The training jobs' scheduler requests (train, linear_probe and the coreset study's
# training stages): studies.<study>.resources, shared GPUs as gres + gpu_slot.
def run_resources(wildcards):
    return job_resources(config, wildcards.study, wildcards.dataset, wildcards.model)


def get_gpu(wildcards):
    return scheduler_resources(run_resources(wildcards))["gpu"]


def get_gres(wildcards):
    return scheduler_resources(run_resources(wildcards))["gres"]


def get_gpu_slot(wildcards):
    return scheduler_resources(run_resources(wildcards))["gpu_slot"]


def get_cpus_per_gpu(wildcards):
    return run_resources(wildcards)["cpus_per_gpu"]


def get_mem_mb(wildcards, attempt):
    # A retry after an out-of-memory kill or a time limit asks for more.
    return run_resources(wildcards)["mem_mb"] * attempt


def get_runtime(wildcards, attempt):
    return run_resources(wildcards)["runtime"] * attempt


# The one command of every training job (rules train, coreset_proxy, coreset_train).
TRAIN_COMMAND = (
    "python -m curriculum_bench train --run-config {params.run_config:q}"
    " --data {params.data} --out $(dirname {output.metrics})"
    " --checkpoint {params.checkpoint} --threads {threads} > {log} 2>&1"
)
