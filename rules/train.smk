rule train:
    input:
        unpack(training_inputs),
    output:
        **train_outputs(),
    log:
        f"{run_layout.TRAIN_LOGS}/{RUN_PATH}.log",
    benchmark:
        f"{run_layout.TRAIN_BENCHMARKS}/{RUN_PATH}.tsv"
    conda:
        training_env
    threads: training_threads()
    # What one training job needs, wherever it runs (Slurm: --gpus, --cpus-per-task, --mem, -t in minutes).
    # Here, not in a profile, so a profile overlay that sets only the partition keeps them; a profile's
    # set-resources still overrides each key. Locally only limits given with --resources apply (gpu=1 in
    # profiles/local), so a CPU-only `--cores N` run is not held back by gpu=1.
    resources:
        gpu=1,
        cpus_per_task=8,
        mem_mb=32000,
        runtime=240,
    params:
        settings=run_settings,
        # Picks the conda env (training_env): the train_env resource a profile sets.
        train_env=training_env_name,
        keep=settings.model_keep(config),
        # Resume state lives beside the run but is not an output: Snakemake keeps it when a job fails.
        resume_dir=f"{RUN_DIR}/{run_layout.RESUME}",
    script:
        "../workflow_scripts/train.py"
