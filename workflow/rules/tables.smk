rule study_table:
    input:
        get_study_metrics,
    output:
        md="paper_tables/{study}.md",
        csv="paper_tables/{study}.csv",
    log:
        "logs/table/{study}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    shell:
        "python -m curriculum_bench table --study {wildcards.study}"
        " --out-md {output.md} --out-csv {output.csv} {input} > {log} 2>&1"
