rule evaluate_test:
    input:
        unpack(evaluation_inputs),
    output:
        test=f"{RUN_DIR}/test.json",
    log:
        "logs/evaluate_test/{model}/{optimizer}/lr{lr}/seed{seed}.log",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        batch_size=config["training"]["batch_size"],
    script:
        "../workflow_scripts/evaluate_test.py"
