rule plot_model_figures:
    input:
        epochs="results/metrics/epochs.csv",
    output:
        **model_figure_outputs(),
    log:
        "logs/plot_model_figures/{arm}/{model}.log",
    conda:
        "../envs/results.yaml"
    script:
        "../workflow_scripts/plot_model_figures.py"


rule plot_overview:
    input:
        epochs="results/metrics/epochs.csv",
    output:
        png=report(
            "results/figures/{arm}/overview.png",
            caption="../report/overview.rst",
            category="{arm}",
            subcategory="Overview",
            labels={"arm": "{arm}", "model": "all models", "figure": "overview"},
        ),
        pdf="results/figures/{arm}/overview.pdf",
    log:
        "logs/plot_overview/{arm}.log",
    conda:
        "../envs/results.yaml"
    script:
        "../workflow_scripts/plot_overview.py"


rule plot_arms:
    input:
        runs="results/metrics/runs.csv",
        arms="results/metrics/arms.csv",
    output:
        png=report(
            f"results/figures/{ARM_FIGURE}.png",
            caption="../report/arms.rst",
            category="Study",
            labels={"arm": "all arms", "model": "all models", "figure": "arms compared"},
        ),
        pdf=f"results/figures/{ARM_FIGURE}.pdf",
    log:
        "logs/plot_arms.log",
    conda:
        "../envs/results.yaml"
    script:
        "../workflow_scripts/plot_arms.py"
