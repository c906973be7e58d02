# Reproduces and extends Poojary & Pai, "Comparative Study of Model Optimization Techniques in
# Fine-Tuned CNN Models": ImageNet CNNs fine-tuned on a hand-picked dogs-vs-cats subset with
# several optimizers, compared by accuracy and loss against epochs.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/demo_data.smk"
include: "rules/select_images.smk"
include: "rules/image_cache.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/metrics.smk"
include: "rules/figures.smk"
include: "rules/tables.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
