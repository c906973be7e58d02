rule evaluate_test:
    input:
        unpack(evaluation_inputs),
    output:
        test=run_layout.run_file(run_layout.TEST_RESULT),
    log:
        f"{run_layout.TEST_LOGS}/{RUN_PATH}.log",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        batch_size=evaluation_batch_size,
    script:
        "../workflow_scripts/evaluate_test.py"
