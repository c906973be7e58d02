"""Snakemake glue: summary, claims and optimizer-comparison tables, from the metric CSVs only."""
from cnn_study.logs import run_logged
from cnn_study.report_tables import write_tables

run_logged(
    snakemake.log[0],
    write_tables,
    epochs_path=snakemake.input.epochs,
    summary_path=snakemake.input.summary,
    target_accuracy=snakemake.params.target_accuracy,
    outputs=dict(snakemake.output.items()),
)
