"""Snakemake glue: all models side by side, from the metric CSV only."""

from cnn_study.figures import plot_overview
from cnn_study.logs import run_logged

run_logged(
    snakemake.log[0],
    plot_overview,
    epochs_path=snakemake.input.epochs,
    arm=snakemake.wildcards.arm,
    png=snakemake.output.png,
    pdf=snakemake.output.pdf,
)
