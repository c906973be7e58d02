"""Snakemake glue: fetch a model's published ImageNet weights once (a local rule)."""

from pathlib import Path

from cnn_study.logs import run_logged
from cnn_study.weights import fetch_weights

run_logged(
    snakemake.log[0],
    fetch_weights,
    model=snakemake.wildcards.model,
    dest=Path(snakemake.output.weights),
    base_url=snakemake.params.base_url,
)
