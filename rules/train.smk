rule train:
    input:
        unpack(training_inputs),
    output:
        **train_outputs(),
    params:
        settings=run_settings,
        keep=settings.model_keep(config),
        # Resume state lives beside the run but is not an output: Snakemake keeps it when a job fails.
        resume_dir=f"{RUN_DIR}/resume",
    log:
        f"logs/train/{RUN_DIR.removeprefix('results/runs/')}.log",
    benchmark:
        f"results/benchmarks/train/{RUN_DIR.removeprefix('results/runs/')}.tsv"
    threads: training_threads()
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=0,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/train.py"
