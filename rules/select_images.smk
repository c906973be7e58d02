rule select_images:
    input:
        unpack(selection_inputs),
    output:
        manifest="results/data/manifest.csv",
        rejected="results/data/rejected.csv",
    log:
        "logs/select_images.log",
    # read by benchmarks/run.py (data): the screening and the pick, without Snakemake's start-up
    benchmark:
        "results/benchmarks/select_images.tsv"
    conda:
        "../envs/data.yaml"
    params:
        classes=config["dataset"]["classes"],
        n_train=config["dataset"]["n_train"],
        n_val=config["dataset"]["n_val"],
        pick_seed=config["dataset"]["pick_seed"],
        min_size=config["dataset"]["min_size"],
        near_duplicate_distance=config["dataset"]["near_duplicate_distance"],
    script:
        "../workflow_scripts/select_images.py"


rule select_test_images:
    input:
        unpack(selection_inputs),
        manifest="results/data/manifest.csv",
    output:
        test_manifest="results/data/test_manifest.csv",
    log:
        "logs/select_test_images.log",
    conda:
        "../envs/data.yaml"
    params:
        classes=config["dataset"]["classes"],
        n_test=config["dataset"]["n_test"],
        pick_seed=config["dataset"]["pick_seed"],
        min_size=config["dataset"]["min_size"],
        near_duplicate_distance=config["dataset"]["near_duplicate_distance"],
    script:
        "../workflow_scripts/select_test_images.py"
