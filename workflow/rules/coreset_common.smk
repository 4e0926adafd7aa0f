# Input and param functions of the coreset study's rules (workflow/rules/coreset.smk);
# the planning itself is curriculum_bench.coreset.plan, imported in common.smk.
CORESET_RUN = "results/coreset/{dataset}/{model}/{variant}/seed{seed}"


def get_coreset_run_config(wildcards):
    run = coreset_plan.resolve_coreset_run(
        config,
        wildcards.dataset,
        wildcards.model,
        wildcards.variant,
        int(wildcards.seed),
    )
    return to_json(run)


def get_coreset_run_inputs(wildcards):
    return coreset_plan.run_inputs(
        config,
        wildcards.dataset,
        wildcards.model,
        wildcards.variant,
        int(wildcards.seed),
    )


def get_coreset_proxy_artifacts(wildcards):
    return coreset_plan.proxy_artifacts(config, wildcards.dataset)


def get_coreset_never_learned(wildcards):
    return coreset_plan.never_learned(config)


def get_coreset_selection_spec(wildcards):
    return to_json(coreset_plan.selection_settings(config, wildcards.selection))


def get_coreset_checkpoint(wildcards):
    return CHECKPOINT.format(study="coreset", **wildcards)


def coreset_resources(wildcards):
    return job_resources(config, "coreset", wildcards.dataset, wildcards.model)


def get_coreset_gpu(wildcards):
    return coreset_resources(wildcards)["gpu"]


def get_coreset_cpus_per_gpu(wildcards):
    return coreset_resources(wildcards)["cpus_per_gpu"]


def get_coreset_mem_mb(wildcards, attempt):
    return coreset_resources(wildcards)["mem_mb"] * attempt


def get_coreset_runtime(wildcards, attempt):
    return coreset_resources(wildcards)["runtime"] * attempt
