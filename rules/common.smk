import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "workflow_scripts"))

from cnn_study import settings  # noqa: E402
from cnn_study.run_model import kept_model_file  # noqa: E402


SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"

try:
    validate(config, schema=str(SCHEMA))
    settings.check_config(config)
except WorkflowError:
    raise WorkflowError(settings.explain_config_error(config, SCHEMA)) from None
except settings.ConfigError as error:
    raise WorkflowError(str(error)) from None


RUNS = settings.run_grid(config)
MODELS = config["grid"]["models"]
RUN_DIR = "results/runs/{model}/{optimizer}/lr{lr}/seed{seed}"


wildcard_constraints:
    model="|".join(settings.MODEL_SPECS),
    optimizer="[a-z_]+",
    lr="[0-9.e+-]+",
    seed="[0-9]+",
    size="[0-9]+",


localrules:
    download_kaggle,
    fetch_weights,


# ---- dataset -------------------------------------------------------------------------------


def dataset_archive():
    """Where the raw images come from: a download, the generated demo set, or a local path."""
    source = config["dataset"]["source"]
    if source == "kaggle":
        return KAGGLE_ARCHIVE
    if source == "synthetic":
        return "results/data/synthetic/train.zip"
    if not Path(source).exists():
        raise WorkflowError(
            f"invalid config: dataset.source {source!r} is neither kaggle, synthetic nor an "
            "existing zip archive or folder; fix the path"
        )
    return source


KAGGLE_ARCHIVE = settings.kaggle_archive_path(config["dataset"]["kaggle"])


def selection_inputs(wildcards):
    inputs = {"source": dataset_archive()}
    if config["dataset"]["picklist"]:
        inputs["picklist"] = config["dataset"]["picklist"]
    return inputs


def cache_files(size):
    prefix = f"results/data/cache/{size}px"
    return {
        "train_images": f"{prefix}/train_images.npy",
        "train_labels": f"{prefix}/train_labels.npy",
        "val_images": f"{prefix}/val_images.npy",
        "val_labels": f"{prefix}/val_labels.npy",
    }


# ---- training ------------------------------------------------------------------------------


def run_settings(wildcards):
    return settings.run_settings(
        config, wildcards.model, wildcards.optimizer, wildcards.lr, wildcards.seed
    )


def training_threads():
    """Threads per training job: the local cores shared among the runs, at least 1, at most 8.
    On a small CPU the runs then train side by side, which also overlaps their single-threaded
    graph tracing; profiles set their own with set-threads."""
    try:
        cores = workflow.cores
    except WorkflowError:  # a cluster executor has no local core count: profiles set the threads
        return 1
    return min(8, max(1, (cores or 1) // max(1, len(RUNS))))


def training_inputs(wildcards):
    model = settings.model_settings(config, wildcards.model)
    inputs = cache_files(model["input_size"])
    if model["weights"] == "imagenet":
        inputs["weights"] = f"resources/weights/{wildcards.model}_notop.h5"
    elif model["weights"] != "none":
        inputs["weights"] = model["weights"]
    return inputs


def train_outputs():
    """history.csv and run.json, plus the model file that training.keep asks for (none: no model)."""
    outputs = {"history": f"{RUN_DIR}/history.csv", "provenance": f"{RUN_DIR}/run.json"}
    model_file = kept_model_file(settings.model_keep(config))
    if model_file:
        outputs["model"] = f"{RUN_DIR}/{model_file}"
    return outputs


def run_paths(filename):
    return [f"{RUN_DIR}/{filename}".format(**run) for run in RUNS]


# ---- results -------------------------------------------------------------------------------


FIGURES = {
    "accuracy": "training accuracy against epoch",
    "loss": "training loss against epoch",
    "val_accuracy": "validation accuracy against epoch",
    "val_loss": "validation loss against epoch",
}


def report_labels(model, figure):
    grid = config["grid"]
    return {
        "model": model,
        "figure": figure,
        "optimizers": ", ".join(grid["optimizers"]),
        "learning rates": ", ".join(settings.format_lr(lr) for lr in grid["learning_rates"]),
    }


def model_figure_outputs():
    """Per model: each figure as a PNG in the report and as a PDF for papers."""
    outputs = {}
    for name, description in FIGURES.items():
        outputs[name] = report(
            f"results/figures/{{model}}_{name}.png",
            caption=f"../report/{name}.rst",
            category="{model}",
            labels=report_labels("{model}", description),
        )
        outputs[f"{name}_pdf"] = f"results/figures/{{model}}_{name}.pdf"
    return outputs


def final_outputs():
    return [
        "results/data/manifest.csv",
        "results/metrics/epochs.csv",
        "results/metrics/summary.csv",
        *expand("results/figures/{model}_{name}.png", model=MODELS, name=FIGURES),
        "results/figures/overview.png",
        "results/tables/summary.md",
        "results/tables/claims.md",
    ]
