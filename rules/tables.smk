rule make_tables:
    input:
        runs="results/metrics/runs.csv",
        summary="results/metrics/summary.csv",
        arms="results/metrics/arms.csv",
    output:
        summary_md=report(
            "results/tables/summary.md",
            caption="../report/summary_table.rst",
            category="Study",
            labels={"arm": "all arms", "model": "all models", "figure": "summary table"},
        ),
        summary_tex="results/tables/summary.tex",
        claims=report(
            "results/tables/claims.md",
            caption="../report/claims.rst",
            category="Study",
            labels={"arm": "all arms", "model": "all models", "figure": "claims check"},
        ),
        tests=report(
            "results/tables/optimizer_tests.md",
            caption="../report/optimizer_tests.rst",
            category="Study",
            labels={"arm": "all arms", "model": "all models", "figure": "optimizer comparison"},
        ),
    log:
        "logs/make_tables.log",
    conda:
        "../envs/results.yaml"
    script:
        "../workflow_scripts/make_tables.py"
