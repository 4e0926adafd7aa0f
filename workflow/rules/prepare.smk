rule prepare_dataset:
    output:
        multiext(
            "resources/datasets/{dataset}/",
            "manifest.json",
            "train_images.npy",
            "train_labels.npy",
            "test_images.npy",
            "test_labels.npy",
        ),
    log:
        "logs/prepare/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    params:
        spec=get_dataset_spec,
        out_dir=get_dataset_dir,
    shell:
        "python -m curriculum_bench prepare --dataset {wildcards.dataset}"
        " --spec {params.spec:q} --out {params.out_dir} > {log} 2>&1"
