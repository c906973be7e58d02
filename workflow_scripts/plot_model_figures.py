"""Snakemake glue: one model's accuracy and loss figures, from the metric CSV only."""

from cnn_study.figures import plot_model
from cnn_study.logs import run_logged

run_logged(
    snakemake.log[0],
    plot_model,
    epochs_path=snakemake.input.epochs,
    arm=snakemake.wildcards.arm,
    model=snakemake.wildcards.model,
    outputs=dict(snakemake.output.items()),
)
