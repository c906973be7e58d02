rule download_kaggle:
    output:
        archive=KAGGLE_ARCHIVE,
    params:
        competition=config["dataset"]["kaggle"]["competition"],
        dataset=config["dataset"]["kaggle"]["dataset"],
        file_name=config["dataset"]["kaggle"]["file"],
        endpoint=config["dataset"]["kaggle"]["endpoint"],
    log:
        "logs/download_kaggle.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/download_kaggle.py"


rule fetch_weights:
    output:
        weights="resources/weights/{model}_notop.h5",
    params:
        base_url=config["weights"]["base_url"],
    log:
        "logs/fetch_weights/{model}.log",
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/fetch_weights.py"
