"""Snakemake glue: write the generated demo image set as a train.zip."""

from cnn_study.logs import run_logged
from cnn_study.synthetic import write_synthetic_archive

run_logged(
    snakemake.log[0],
    write_synthetic_archive,
    path=snakemake.output.archive,
    classes=snakemake.params.classes,
    images_per_class=snakemake.params.images_per_class,
    size=snakemake.params.image_size,
    seed=snakemake.params.seed,
)
