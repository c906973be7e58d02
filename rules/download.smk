rule download_kaggle:
    output:
        archive=KAGGLE_ARCHIVE,
    log:
        "logs/download_kaggle.log",
    conda:
        "../envs/data.yaml"
    params:
        competition=config["dataset"]["kaggle"]["competition"],
        dataset=config["dataset"]["kaggle"]["dataset"],
        file_name=config["dataset"]["kaggle"]["file"],
        endpoint=config["dataset"]["kaggle"]["endpoint"],
        network=config["dataset"]["kaggle"]["network"],
    script:
        "../workflow_scripts/download_kaggle.py"


rule fetch_weights:
    output:
        weights="resources/weights/{model}_notop.h5",
    log:
        "logs/fetch_weights/{model}.log",
    conda:
        "../envs/data.yaml"
    params:
        base_url=config["weights"]["base_url"],
    script:
        "../workflow_scripts/fetch_weights.py"
