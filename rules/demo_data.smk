rule make_synthetic_dataset:
    output:
        archive=SYNTHETIC_ARCHIVE,
    log:
        "logs/make_synthetic_dataset.log",
    conda:
        "../envs/data.yaml"
    params:
        classes=config["dataset"]["classes"],
        images_per_class=config["dataset"]["synthetic"]["images_per_class"],
        image_size=config["dataset"]["synthetic"]["image_size"],
        seed=config["dataset"]["synthetic"]["seed"],
    script:
        "../workflow_scripts/make_synthetic_dataset.py"
