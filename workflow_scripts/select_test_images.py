"""Snakemake glue: pick the held-out test split after the manifest's train and validation images."""

from cnn_study.logs import run_logged
from cnn_study.selection import select_test_images

run_logged(
    snakemake.log[0],
    select_test_images,
    source_path=snakemake.input.source,
    manifest_path=snakemake.input.manifest,
    test_manifest_path=snakemake.output.test_manifest,
    classes=snakemake.params.classes,
    n_test=snakemake.params.n_test,
    seed=snakemake.params.pick_seed,
    min_size=snakemake.params.min_size,
    near_duplicate_distance=snakemake.params.near_duplicate_distance,
    picklist=snakemake.input.get("picklist"),
)
