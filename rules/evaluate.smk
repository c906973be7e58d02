rule evaluate_test:
    input:
        unpack(evaluation_inputs),
    output:
        test=f"{RUN_DIR}/test.json",
    log:
        f"logs/evaluate_test/{RUN_PATH}.log",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        batch_size=config["training"]["batch_size"],
    script:
        "../workflow_scripts/evaluate_test.py"
