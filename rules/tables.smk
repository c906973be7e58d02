rule make_tables:
    input:
        runs="results/metrics/runs.csv",
        summary="results/metrics/summary.csv",
    output:
        summary_md=report(
            "results/tables/summary.md",
            caption="../report/summary_table.rst",
            category="Overview",
            labels=report_labels("all models", "summary table"),
        ),
        summary_tex="results/tables/summary.tex",
        claims=report(
            "results/tables/claims.md",
            caption="../report/claims.rst",
            category="Overview",
            labels=report_labels("all models", "claims check"),
        ),
        tests=report(
            "results/tables/optimizer_tests.md",
            caption="../report/optimizer_tests.rst",
            category="Overview",
            labels=report_labels("all models", "optimizer comparison"),
        ),
    log:
        "logs/make_tables.log",
    conda:
        "../envs/results.yaml"
    script:
        "../workflow_scripts/make_tables.py"
