"""Snakemake glue: summary, claims and optimizer-comparison tables, from the metric CSVs only."""

from cnn_study.logs import run_logged
from cnn_study.report_tables import write_tables

run_logged(
    snakemake.log[0],
    write_tables,
    runs_path=snakemake.input.runs,
    summary_path=snakemake.input.summary,
    arms_path=snakemake.input.arms,
    outputs=dict(snakemake.output.items()),
)
