rule linear_probe:
    input:
        # metrics.json is written after final_model.pt: the run is finished.
        metrics="results/{study}/{dataset}/{model}/{variant}/seed{seed}/metrics.json",
        data="resources/datasets/{dataset}/manifest.json",
    output:
        "results/{study}/{dataset}/{model}/{variant}/seed{seed}/probe_metrics.json",
    log:
        "logs/probe/{study}/{dataset}/{model}/{variant}/seed{seed}.log",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=get_gpu,
        gres=get_gres,
        gpu_slot=get_gpu_slot,
        cpus_per_gpu=get_cpus_per_gpu,
        mem_mb=get_mem_mb,
    params:
        probe=get_probe_config,
        data=get_dataset_dir,
    shell:
        "python -m curriculum_bench probe --run-dir $(dirname {input.metrics})"
        " --data {params.data} --out {output} --probe {params.probe:q} > {log} 2>&1"
