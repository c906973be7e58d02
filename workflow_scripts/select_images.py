"""Snakemake glue: screen the source's images and make the deterministic hand-pick."""

from cnn_study.logs import run_logged
from cnn_study.selection import select_images

run_logged(
    snakemake.log[0],
    select_images,
    source_path=snakemake.input.source,
    manifest_path=snakemake.output.manifest,
    rejected_path=snakemake.output.rejected,
    classes=snakemake.params.classes,
    n_train=snakemake.params.n_train,
    n_val=snakemake.params.n_val,
    seed=snakemake.params.pick_seed,
    min_size=snakemake.params.min_size,
    near_duplicate_distance=snakemake.params.near_duplicate_distance,
    picklist=snakemake.input.get("picklist"),
)
