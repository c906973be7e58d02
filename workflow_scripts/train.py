"""Snakemake glue: train one run (model, optimizer, learning rate, seed)."""
from cnn_study.logs import run_logged
from cnn_study.training import train_run

run_logged(
    snakemake.log[0],
    train_run,
    settings=snakemake.params.settings,
    data={key: snakemake.input[key] for key in ("train_images", "train_labels", "val_images", "val_labels")},
    weights_file=snakemake.input.get("weights"),
    history_path=snakemake.output.history,
    model_path=snakemake.output.get("model"),
    provenance_path=snakemake.output.provenance,
    resume_dir=snakemake.params.resume_dir,
    threads=snakemake.threads,
    keep=snakemake.params.keep,
)
