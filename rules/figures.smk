rule plot_model_figures:
    input:
        epochs="results/metrics/epochs.csv",
    output:
        **model_figure_outputs(),
    log:
        "logs/plot_model_figures/{model}.log",
    conda:
        "../envs/results.yaml"
    script:
        "../workflow_scripts/plot_model_figures.py"


rule plot_overview:
    input:
        epochs="results/metrics/epochs.csv",
    output:
        png=report(
            "results/figures/overview.png",
            caption="../report/overview.rst",
            category="Overview",
            labels=report_labels("all models", "overview"),
        ),
        pdf="results/figures/overview.pdf",
    log:
        "logs/plot_overview.log",
    conda:
        "../envs/results.yaml"
    script:
        "../workflow_scripts/plot_overview.py"
