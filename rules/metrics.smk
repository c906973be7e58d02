rule extract_metrics:
    input:
        unpack(metrics_inputs),
    output:
        epochs="results/metrics/epochs.csv",
        runs="results/metrics/runs.csv",
        summary="results/metrics/summary.csv",
    log:
        "logs/extract_metrics.log",
    conda:
        "../envs/results.yaml"
    params:
        # Each run's keys, in the order of the inputs: the metrics never parse them out of paths.
        runs=RUNS,
        target_accuracy=config["results"]["target_accuracy"],
        final_epochs=config["results"]["final_epochs"],
    script:
        "../workflow_scripts/extract_metrics.py"
