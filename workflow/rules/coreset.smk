# The coreset study (spec/methods.md §5) as five kinds of job, so the DAG shows its stages:
# proxy runs -> forgetting statistics -> selections -> core runs on each coreset, and the
# removal curve. Planning lives in curriculum_bench.coreset.plan; rules only wire it.
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
        "logs/train/coreset/{dataset}/{model}/{variant}/seed{seed}.log",
    wildcard_constraints:
        variant="proxy",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=get_coreset_gpu,
        cpus_per_gpu=get_coreset_cpus_per_gpu,
        mem_mb=get_coreset_mem_mb,
        runtime=get_coreset_runtime,
    params:
        run_config=get_coreset_run_config,
        data=get_dataset_dir,
        checkpoint=get_coreset_checkpoint,
    shell:
        "python -m curriculum_bench train --run-config {params.run_config:q}"
        " --data {params.data} --out $(dirname {output.metrics})"
        " --checkpoint {params.checkpoint} --threads {threads} > {log} 2>&1"


rule coreset_stats:
    input:
        get_coreset_proxy_artifacts,
    output:
        npz="results/coreset/{dataset}/stats/forgetting_stats.npz",
        csv="results/coreset/{dataset}/stats/forgetting_stats.csv",
    log:
        "logs/coreset/stats/{dataset}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    params:
        never_learned=get_coreset_never_learned,
    shell:
        "python -m curriculum_bench forgetting-stats --never-learned {params.never_learned}"
        " --out-npz {output.npz} --out-csv {output.csv} {input} > {log} 2>&1"


rule coreset_select:
    input:
        "results/coreset/{dataset}/stats/forgetting_stats.npz",
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


rule coreset_core:
    input:
        manifest="resources/datasets/{dataset}/manifest.json",
        needs=get_coreset_run_inputs,
    output:
        metrics=f"{CORESET_RUN}/metrics.json",
        history=f"{CORESET_RUN}/history.jsonl",
    log:
        "logs/train/coreset/{dataset}/{model}/{variant}/seed{seed}.log",
    wildcard_constraints:
        variant=r"(forgetting|reverse|random)_(finetune|frozen)",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=get_coreset_gpu,
        cpus_per_gpu=get_coreset_cpus_per_gpu,
        mem_mb=get_coreset_mem_mb,
        runtime=get_coreset_runtime,
    params:
        run_config=get_coreset_run_config,
        data=get_dataset_dir,
        checkpoint=get_coreset_checkpoint,
    shell:
        "python -m curriculum_bench train --run-config {params.run_config:q}"
        " --data {params.data} --out $(dirname {output.metrics})"
        " --checkpoint {params.checkpoint} --threads {threads} > {log} 2>&1"


rule coreset_removal:
    input:
        manifest="resources/datasets/{dataset}/manifest.json",
        needs=get_coreset_run_inputs,
    output:
        metrics=f"{CORESET_RUN}/metrics.json",
        history=f"{CORESET_RUN}/history.jsonl",
    log:
        "logs/train/coreset/{dataset}/{model}/{variant}/seed{seed}.log",
    wildcard_constraints:
        variant=r"remove_(0|(forgetting|random)_\d+)",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=get_coreset_gpu,
        cpus_per_gpu=get_coreset_cpus_per_gpu,
        mem_mb=get_coreset_mem_mb,
        runtime=get_coreset_runtime,
    params:
        run_config=get_coreset_run_config,
        data=get_dataset_dir,
        checkpoint=get_coreset_checkpoint,
    shell:
        "python -m curriculum_bench train --run-config {params.run_config:q}"
        " --data {params.data} --out $(dirname {output.metrics})"
        " --checkpoint {params.checkpoint} --threads {threads} > {log} 2>&1"
