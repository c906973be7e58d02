"""Snakemake glue: evaluate one finished run's model on the held-out test split."""

from cnn_study.evaluation import evaluate_run
from cnn_study.image_cache import TEST_SPLITS, cache_keys
from cnn_study.logs import run_logged

run_logged(
    snakemake.log[0],
    evaluate_run,
    run_record=snakemake.input.provenance,
    data={key: snakemake.input[key] for key in cache_keys(TEST_SPLITS)},
    output_path=snakemake.output.test,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
)
