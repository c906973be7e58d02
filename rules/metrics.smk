rule extract_metrics:
    input:
        unpack(metrics_inputs),
    output:
        epochs="results/metrics/epochs.csv",
        runs="results/metrics/runs.csv",
        summary="results/metrics/summary.csv",
        arms="results/metrics/arms.csv",
    log:
        "logs/extract_metrics.log",
    conda:
        "../envs/results.yaml"
    params:
        # Each run's keys, in the order of the inputs: the metrics never parse them out of paths.
        runs=RUNS,
        # What each arm changes against the reference arm: the claims across arms read it from arms.csv.
        arm_changes=settings.arm_changes(ARMS, REFERENCE_ARM),
        reference_arm=REFERENCE_ARM,
        target_accuracy=config["results"]["target_accuracy"],
        final_epochs=config["results"]["final_epochs"],
    script:
        "../workflow_scripts/extract_metrics.py"
