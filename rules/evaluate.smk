rule evaluate_test:
    input:
        unpack(evaluation_inputs),
    output:
        test=f"{RUN_DIR}/test.json",
    params:
        batch_size=config["training"]["batch_size"],
    log:
        "logs/evaluate_test/{model}/{optimizer}/lr{lr}/seed{seed}.log",
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/evaluate_test.py"
