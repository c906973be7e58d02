"""Snakemake glue: decode the picked images of some splits (train and val, or test) once and store them resized
for one input size."""

from cnn_study.image_cache import build_cache
from cnn_study.logs import run_logged

run_logged(
    snakemake.log[0],
    build_cache,
    source_path=snakemake.input.source,
    manifest_path=snakemake.input.manifest,
    classes=snakemake.params.classes,
    size=int(snakemake.wildcards.size),
    outputs=dict(snakemake.output.items()),
    splits=tuple(snakemake.params.splits),
)
