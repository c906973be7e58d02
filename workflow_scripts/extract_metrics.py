"""Snakemake glue: gather every run's history into tidy epoch and summary tables."""
from cnn_study.logs import run_logged
from cnn_study.metrics import write_metrics

run_logged(
    snakemake.log[0],
    write_metrics,
    history_paths=list(snakemake.input.histories),
    epochs_path=snakemake.output.epochs,
    summary_path=snakemake.output.summary,
    target_accuracy=snakemake.params.target_accuracy,
)
