# The coreset study (docs/methods.md §5) as four kinds of job, so the DAG shows its stages:
# proxy runs -> forgetting statistics -> selections -> training on each selection (the core
# runs and the removal curve's, one rule). Planning lives in curriculum_bench.coreset.plan;
# rules only wire it.
include: "coreset_common.smk"


# Seconds of numpy each: a cluster should not queue them.
localrules:
    coreset_stats,
    coreset_select,


rule coreset_proxy:
    input:
        "resources/datasets/{dataset}/manifest.json",
    output:
        metrics=f"{CORESET_RUN}/metrics.json",
        history=f"{CORESET_RUN}/history.jsonl",
        forgetting=f"{CORESET_RUN}/forgetting.npz",
        model=f"{CORESET_RUN}/final_model.pt",
    log:
        "logs/train/{study}/{dataset}/{model}/{variant}/seed{seed}.log",
    wildcard_constraints:
        study=coreset_plan.STUDY,
        variant=CORESET_PROXY_VARIANTS,
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=get_gpu,
        gres=get_gres,
        gpu_slot=get_gpu_slot,
        cpus_per_gpu=get_cpus_per_gpu,
        mem_mb=get_mem_mb,
        runtime=get_runtime,
    params:
        run_config=get_coreset_run_config,
        data=get_dataset_dir,
        checkpoint=get_checkpoint,
    shell:
        TRAIN_COMMAND


# One statistics folder per proxy mode: stats/ (the trainable proxy or a precomputed file),
# stats_frozen_proxy/ (a frozen one).
rule coreset_stats:
    input:
        get_coreset_stats_inputs,
    output:
        npz="results/coreset/{dataset}/{stats}/forgetting_stats.npz",
        csv="results/coreset/{dataset}/{stats}/forgetting_stats.csv",
    log:
        "logs/coreset/{stats}/{dataset}.log",
    wildcard_constraints:
        stats=CORESET_STATS_FOLDERS,
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        never_learned=get_coreset_never_learned,
        source=get_coreset_stats_source,
    shell:
        "python -m curriculum_bench forgetting-stats --never-learned {params.never_learned}"
        " --out-npz {output.npz} --out-csv {output.csv} {params.source} > {log} 2>&1"


rule coreset_select:
    input:
        get_coreset_selection_stats,
    output:
        "results/coreset/{dataset}/selections/{selection}.json",
    log:
        "logs/coreset/select/{dataset}/{selection}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    params:
        spec=get_coreset_selection_spec,
    shell:
        "python -m curriculum_bench select --stats {input} --spec {params.spec:q}"
        " --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


# Core runs (method x backbone on each selection) and the removal curve's runs: the same
# job on another subset of the training set.
rule coreset_train:
    input:
        manifest="resources/datasets/{dataset}/manifest.json",
        needs=get_coreset_run_inputs,
    output:
        metrics=f"{CORESET_RUN}/metrics.json",
        history=f"{CORESET_RUN}/history.jsonl",
    log:
        "logs/train/{study}/{dataset}/{model}/{variant}/seed{seed}.log",
    wildcard_constraints:
        study=coreset_plan.STUDY,
        variant=CORESET_TRAIN_VARIANTS,
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=get_gpu,
        gres=get_gres,
        gpu_slot=get_gpu_slot,
        cpus_per_gpu=get_cpus_per_gpu,
        mem_mb=get_mem_mb,
        runtime=get_runtime,
    params:
        run_config=get_coreset_run_config,
        data=get_dataset_dir,
        checkpoint=get_checkpoint,
    shell:
        TRAIN_COMMAND
