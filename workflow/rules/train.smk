rule train:
    input:
        "resources/datasets/{dataset}/manifest.json",
        get_run_inputs,
    output:
        metrics="results/{study}/{dataset}/{model}/{variant}/seed{seed}/metrics.json",
        history="results/{study}/{dataset}/{model}/{variant}/seed{seed}/history.jsonl",
        final_model="results/{study}/{dataset}/{model}/{variant}/seed{seed}/final_model.pt",
    log:
        "logs/train/{study}/{dataset}/{model}/{variant}/seed{seed}.log",
    wildcard_constraints:
        study=TRAIN_STUDIES,
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
        run_config=get_run_config,
        data=get_dataset_dir,
        checkpoint=get_checkpoint,
    shell:
        TRAIN_COMMAND
