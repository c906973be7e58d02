"""Snakemake glue: gather every run's history (and test evaluation) into tidy epoch, run, summary and arm tables."""

from cnn_study.logs import run_logged
from cnn_study.metrics import write_metrics

run_logged(
    snakemake.log[0],
    write_metrics,
    history_paths=list(snakemake.input.histories),
    runs=snakemake.params.runs,
    outputs=dict(snakemake.output.items()),
    target_accuracy=snakemake.params.target_accuracy,
    final_epochs=snakemake.params.final_epochs,
    arm_changes=snakemake.params.arm_changes,
    reference_arm=snakemake.params.reference_arm,
    test_paths=list(snakemake.input.get("tests", [])),
)
