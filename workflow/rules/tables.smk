rule study_table:
    input:
        metrics=get_study_metrics,
        reported=REPORTED,
    output:
        md="paper_tables/{study}.md",
        csv="paper_tables/{study}.csv",
        html=report(
            "paper_tables/{study}.html",
            caption="../report/table.rst",
            category="{study}",
            subcategory="table",
            labels={"study": "{study}", "item": "table"},
        ),
    log:
        "logs/table/{study}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    params:
        options=get_report_options,
    shell:
        "python -m curriculum_bench table --study {wildcards.study}"
        " --reported {input.reported} --options {params.options:q}"
        " --out-md {output.md} --out-csv {output.csv} --out-html {output.html}"
        " {input.metrics} > {log} 2>&1"


rule study_figure:
    input:
        # metrics.json marks a finished run; its folder holds history.jsonl and artifacts.
        get_study_metrics,
    output:
        png=report(
            "paper_tables/figures/{study}/{figure}.png",
            caption="../report/figure.rst",
            category="{study}",
            subcategory="figures",
            labels={"study": "{study}", "item": "figure: {figure}"},
        ),
        svg="paper_tables/figures/{study}/{figure}.svg",
    log:
        "logs/figure/{study}/{figure}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    shell:
        "python -m curriculum_bench figure --study {wildcards.study} --name {wildcards.figure}"
        " --out {output.png} {input} > {log} 2>&1"


rule paper_index:
    input:
        get_all_tables_and_figures,
    output:
        "paper_tables/README.md",
    log:
        "logs/table/index.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    params:
        studies=get_index_studies(),
        config_files=get_config_files(),
    shell:
        "python -m curriculum_bench index --studies {params.studies:q}"
        " --config-files {params.config_files:q} --out {output} > {log} 2>&1"
