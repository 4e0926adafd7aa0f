rule study_table:
    input:
        metrics=get_study_metrics,
        reported=REPORTED,
    output:
        md="paper_tables/{study}.md",
        csv="paper_tables/{study}.csv",
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
        " --out-md {output.md} --out-csv {output.csv} {input.metrics} > {log} 2>&1"


rule study_figure:
    input:
        # metrics.json marks a finished run; its folder holds history.jsonl and artifacts.
        get_study_metrics,
    output:
        png="paper_tables/figures/{study}/{figure}.png",
        svg="paper_tables/figures/{study}/{figure}.svg",
    log:
        "logs/figure/{study}/{figure}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    shell:
        "python -m curriculum_bench figure --study {wildcards.study} --name {wildcards.figure}"
        " --out {output.png} {input} > {log} 2>&1"
