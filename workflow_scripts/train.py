"""Snakemake glue: train one run (model, optimizer, learning rate, seed)."""

from cnn_study.attempt_logs import start_attempt
from cnn_study.image_cache import cache_keys
from cnn_study.logs import run_logged
from cnn_study.training import train_run

# The full log goes to a file per attempt (Snakemake deletes the rule's log before each attempt).
attempt_log = start_attempt(
    snakemake.log[0],
    run=dict(snakemake.wildcards.items()),
    resume_dir=snakemake.params.resume_dir,
    history_path=snakemake.output.history,
    epochs=snakemake.params.settings["epochs"],
)
run_logged(
    attempt_log,
    train_run,
    settings=snakemake.params.settings,
    data={key: snakemake.input[key] for key in cache_keys()},
    weights_file=snakemake.input.get("weights"),
    history_path=snakemake.output.history,
    model_path=snakemake.output.get("model"),
    provenance_path=snakemake.output.provenance,
    resume_dir=snakemake.params.resume_dir,
    threads=snakemake.threads,
    # The rule's gpu resource (a profile sets it): a job given a GPU that its backend cannot see stops at once.
    gpus=int(snakemake.resources.get("gpu", 0)),
    keep=snakemake.params.keep,
)
