"""Snakemake glue: download the dataset archive from Kaggle (a local rule: compute nodes may be offline)."""

from pathlib import Path

from cnn_study.kaggle_download import download_from_kaggle
from cnn_study.logs import run_logged

run_logged(
    snakemake.log[0],
    download_from_kaggle,
    competition=snakemake.params.competition,
    dataset=snakemake.params.dataset,
    file_name=snakemake.params.file_name,
    dest=Path(snakemake.output.archive),
    endpoint=snakemake.params.endpoint,
    network=dict(snakemake.params.network),
)
