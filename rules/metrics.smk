rule extract_metrics:
    input:
        histories=run_paths("history.csv"),
    output:
        epochs="results/metrics/epochs.csv",
        summary="results/metrics/summary.csv",
    params:
        target_accuracy=config["results"]["target_accuracy"],
    log:
        "logs/extract_metrics.log",
    conda:
        "../envs/results.yaml"
    script:
        "../workflow_scripts/extract_metrics.py"
