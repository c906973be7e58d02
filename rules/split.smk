rule select_images:
    input:
        unpack(selection_inputs),
    output:
        manifest="results/data/manifest.csv",
        rejected="results/data/rejected.csv",
    params:
        classes=config["dataset"]["classes"],
        n_train=config["dataset"]["n_train"],
        n_val=config["dataset"]["n_val"],
        pick_seed=config["dataset"]["pick_seed"],
        min_size=config["dataset"]["min_size"],
        near_duplicate_distance=config["dataset"]["near_duplicate_distance"],
    log:
        "logs/select_images.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/select_images.py"


rule build_image_cache:
    input:
        source=dataset_archive(),
        manifest="results/data/manifest.csv",
    output:
        **cache_files("{size}"),
    params:
        classes=config["dataset"]["classes"],
    log:
        "logs/build_image_cache/{size}px.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/build_image_cache.py"


rule select_test_images:
    input:
        unpack(selection_inputs),
        manifest="results/data/manifest.csv",
    output:
        test_manifest="results/data/test_manifest.csv",
    params:
        classes=config["dataset"]["classes"],
        n_test=config["dataset"]["n_test"],
        pick_seed=config["dataset"]["pick_seed"],
        min_size=config["dataset"]["min_size"],
        near_duplicate_distance=config["dataset"]["near_duplicate_distance"],
    log:
        "logs/select_test_images.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/select_test_images.py"


rule build_test_cache:
    input:
        source=dataset_archive(),
        manifest="results/data/test_manifest.csv",
    output:
        **test_cache_files("{size}"),
    params:
        classes=config["dataset"]["classes"],
    log:
        "logs/build_test_cache/{size}px.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/build_test_cache.py"
