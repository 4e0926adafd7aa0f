rule prepare_dataset:
    output:
        # The manifest stands for the whole store: it is renamed into place with the arrays.
        "resources/datasets/{dataset}/manifest.json",
    log:
        "logs/prepare/{dataset}.log",
    wildcard_constraints:
        dataset=BASE_DATASETS,
    conda:
        "../../envs/data.yaml"
    threads: 1
    params:
        spec=get_dataset_spec,
        out_dir=get_dataset_dir,
    shell:
        "python -m curriculum_bench prepare --dataset {wildcards.dataset}"
        " --spec {params.spec:q} --out {params.out_dir} > {log} 2>&1"


rule derive_dataset:
    input:
        get_base_manifest,
    output:
        "resources/datasets/{dataset}/manifest.json",
    log:
        "logs/derive/{dataset}.log",
    wildcard_constraints:
        dataset=DERIVED_DATASETS,
    conda:
        "../../envs/data.yaml"
    threads: 1
    params:
        spec=get_dataset_spec,
        base=get_base_dir,
        out_dir=get_dataset_dir,
    shell:
        "python -m curriculum_bench derive --dataset {wildcards.dataset}"
        " --spec {params.spec:q} --base {params.base} --out {params.out_dir} > {log} 2>&1"
