"""Snakemake glue: the arms compared (final accuracy per arm and optimizer), from the metric CSVs only."""

from cnn_study.figures import plot_arms
from cnn_study.logs import run_logged

run_logged(
    snakemake.log[0],
    plot_arms,
    runs_path=snakemake.input.runs,
    arms_path=snakemake.input.arms,
    png=snakemake.output.png,
    pdf=snakemake.output.pdf,
)
