rule build_image_cache:
    input:
        source=dataset_archive(),
        manifest="results/data/manifest.csv",
    output:
        **cache_files("{size}"),
    log:
        "logs/build_image_cache/{size}px.log",
    conda:
        "../envs/data.yaml"
    params:
        classes=config["dataset"]["classes"],
        splits=list(SPLITS),
    script:
        "../workflow_scripts/build_image_cache.py"


rule build_test_cache:
    input:
        source=dataset_archive(),
        manifest="results/data/test_manifest.csv",
    output:
        **test_cache_files("{size}"),
    log:
        "logs/build_test_cache/{size}px.log",
    conda:
        "../envs/data.yaml"
    params:
        classes=config["dataset"]["classes"],
        splits=list(TEST_SPLITS),
    script:
        "../workflow_scripts/build_image_cache.py"
