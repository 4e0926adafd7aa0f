# A table is rebuilt whenever the runs it should hold change, judged from its own CSV (which
# lists them) rather than from .snakemake/metadata, which a fresh checkout or a DVC restore
# lacks: a seed or variant added or removed, another config, or a run folder deleted (Snakemake
# alone keeps a table newer than every run file still there). Its input `rebuild` is a marker
# file that report.table_rebuild.rebuild_marker (pandas-free) dates newer than the table exactly then.
from curriculum_bench.report.table_rebuild import rebuild_marker


rule study_table:
    input:
        metrics=get_study_metrics,
        reported=REPORTED,
        rebuild=lambda w: rebuild_marker(
            f"paper_tables/{w.study}.csv",
            get_study_metrics(w),
            f"logs/table/{w.study}.rebuild",
        ),
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
        metrics=get_study_metrics,
        # Drawn after the table has checked the runs, and again whenever it is rebuilt.
        table="paper_tables/{study}.csv",
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
        " --out {output.png} {input.metrics} > {log} 2>&1"


rule paper_index:
    input:
        get_all_tables_and_figures,
        reported=REPORTED,
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
        fabricated="--fabricated-data" if config["fabricated_data"] else "",
    shell:
        "python -m curriculum_bench index --studies {params.studies:q} {params.fabricated}"
        " --config-files {params.config_files:q} --reported {input.reported} --out {output} > {log} 2>&1"


rule claims:
    input:
        # Decided from the runs each study's table has checked (config/claims.yaml).
        metrics=get_claims_metrics,
        tables=get_claims_tables,
        claims=CLAIMS,
    output:
        md="paper_tables/claims.md",
        csv="paper_tables/claims.csv",
        html=report(
            "paper_tables/claims.html",
            caption="../report/claims.rst",
            category="claims",
            labels={"item": "claims"},
        ),
    log:
        "logs/table/claims.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    params:
        planned=to_json(
            {"claims": PLANNED_CLAIMS, "fabricated_data": config["fabricated_data"]}
        ),
    shell:
        "python -m curriculum_bench claims --planned {params.planned:q}"
        " --out-md {output.md} --out-csv {output.csv} --out-html {output.html}"
        " {input.metrics} > {log} 2>&1"
