# Input and param functions of the coreset study's rules (workflow/rules/coreset.smk);
# the planning itself is curriculum_bench.coreset.plan, imported in common.smk.
# The coreset study's run folders: the train rule's pattern, with the study fixed by the rules'
# wildcard constraint, so the common getters (checkpoint, resources) serve them too.
CORESET_RUN = "results/{study}/{dataset}/{model}/{variant}/seed{seed}"
# The proxy runs (proxy, frozen_proxy) and their statistics folders (stats, stats_frozen_proxy).
CORESET_PROXY_VARIANTS = one_of(
    coreset_plan.PROXY_NAMES[proxy][0] for proxy in coreset_plan.PROXY_BACKBONES
)
CORESET_STATS_FOLDERS = one_of(
    coreset_plan.PROXY_NAMES[proxy][1] for proxy in coreset_plan.PROXY_BACKBONES
)
# Core runs on each selection (method_backbone[_by_frozen_proxy]) and the removal curve
# (remove_<order>_<k>).
CORESET_TRAIN_VARIANTS = one_of(
    run["variant"]
    for run in RUNS
    if run["study"] == coreset_plan.STUDY
    and run["variant"] not in coreset_plan.proxy_variants(coreset_plan.study(config))
)


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


def get_coreset_stats_inputs(wildcards):
    # The proxy runs' records, or a precomputed statistics file and the store it labels.
    precomputed = coreset_plan.precomputed_stats(coreset_plan.study(config))
    if precomputed:
        return [precomputed, f"resources/datasets/{wildcards.dataset}/manifest.json"]
    return coreset_plan.proxy_artifacts(config, wildcards.dataset, wildcards.stats)


def get_coreset_stats_source(wildcards):
    precomputed = coreset_plan.precomputed_stats(coreset_plan.study(config))
    if precomputed:
        return f"--precomputed {precomputed} --store resources/datasets/{wildcards.dataset}"
    return " ".join(
        coreset_plan.proxy_artifacts(config, wildcards.dataset, wildcards.stats)
    )


def get_coreset_selection_stats(wildcards):
    return coreset_plan.selection_stats(config, wildcards.dataset, wildcards.selection)


def get_coreset_never_learned(wildcards):
    return coreset_plan.never_learned(config)


def get_coreset_selection_spec(wildcards):
    return to_json(coreset_plan.selection_settings(config, wildcards.selection))
