import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "workflow_scripts"))

from cnn_study import settings  # noqa: E402
from cnn_study.image_cache import SPLITS, TEST_SPLITS, cache_paths  # noqa: E402
from cnn_study.figure_names import FIGURES, pdf_key  # noqa: E402
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
# A run's place in the grid, as a path: its results folder, and its logs and benchmark under the same name.
RUN_PATH = "{model}/{optimizer}/lr{lr}/seed{seed}"
RUN_DIR = f"results/runs/{RUN_PATH}"


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


KAGGLE_ARCHIVE = settings.kaggle_archive_path(config["dataset"]["kaggle"])


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


def selection_inputs(wildcards):
    inputs = {"source": dataset_archive()}
    if config["dataset"]["picklist"]:
        inputs["picklist"] = config["dataset"]["picklist"]
    return inputs


def cache_files(size, splits=SPLITS):
    return cache_paths(f"results/data/cache/{size}px", splits)


def test_cache_files(size):
    return cache_files(size, TEST_SPLITS)


# The held-out test split (dataset.n_test > 0) is picked, cached and evaluated by rules of its own, so
# adding it never retrains a run.
HAS_TEST_SPLIT = config["dataset"]["n_test"] > 0


# ---- training ------------------------------------------------------------------------------


def run_settings(wildcards):
    return settings.run_settings(config, wildcards.model, wildcards.optimizer, wildcards.lr, wildcards.seed)


def training_threads():
    """Threads per training job: the local cores shared among the runs, at least 1, at most 8.
    On a small CPU the runs then train side by side, which also overlaps their single-threaded
    graph tracing; profiles set their own with set-threads."""
    try:
        cores = workflow.cores
    except WorkflowError:  # a cluster executor has no local core count: profiles set the threads
        return 1
    return min(8, max(1, (cores or 1) // max(1, len(RUNS))))


def training_env(wildcards):
    """The training job's conda env: envs/train-gpu.yaml where a profile or --set-resources gives the train rule
    a GPU (profiles/local, slurm/), else the CPU one. The rule's own gpu=1 is a request that a laptop ignores, so
    it does not choose the env; set-resources does, and Snakemake forwards it to cluster jobs, which then pick
    the same env. (Snakemake has no profile key for a rule's env, and a conda: function cannot see resources.)"""
    overrides = workflow.resource_settings.overwrite_resources.get("train") or {}
    gpu = overrides["gpu"] if "gpu" in overrides else 0
    gpus = getattr(gpu, "value", gpu) or 0
    return "../envs/train-gpu.yaml" if int(gpus) > 0 else "../envs/train.yaml"


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


def evaluation_inputs(wildcards):
    """The test cache, and the run's outputs: run.json names the model file that training.keep kept."""
    inputs = test_cache_files(settings.model_settings(config, wildcards.model)["input_size"])
    for key, path in train_outputs().items():
        inputs[key] = path.format(**wildcards)
    return inputs


def metrics_inputs(wildcards):
    """Every run's history, and its test evaluation when there is a test split; in RUNS' order."""
    inputs = {"histories": run_paths("history.csv")}
    if HAS_TEST_SPLIT:
        inputs["tests"] = run_paths("test.json")
    return inputs


# ---- results -------------------------------------------------------------------------------


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
    for name, (_, label) in FIGURES.items():
        outputs[name] = report(
            f"results/figures/{{model}}_{name}.png",
            caption=f"../report/{name}.rst",
            category="{model}",
            labels=report_labels("{model}", f"{label} against epoch"),
        )
        outputs[pdf_key(name)] = f"results/figures/{{model}}_{name}.pdf"
    return outputs


def final_outputs():
    return [
        "results/data/manifest.csv",
        "results/metrics/epochs.csv",
        "results/metrics/runs.csv",
        "results/metrics/summary.csv",
        *expand("results/figures/{model}_{name}.png", model=MODELS, name=FIGURES),
        "results/figures/overview.png",
        "results/tables/summary.md",
        "results/tables/claims.md",
    ]


# ---- cluster -------------------------------------------------------------------------------

from cnn_study import slurm_status  # noqa: E402


onstart:
    # Before any job is submitted (not in dry-runs): a Slurm run whose job states could never be read
    # would otherwise wait forever without a word (no accounting, slurm-status-command: sacct).
    try:
        line = slurm_status.check_executor(workflow.executor_plugin.name, workflow.executor_settings)
    except slurm_status.SlurmStatusError as error:
        raise WorkflowError(str(error)) from None
    if line:
        logger.info(line)
        # A retried time limit is expected: show-failed-logs then prints the train log's few lines only.
        slurm_status.report_expected_stops_briefly(workflow.executor_settings.logdir or ".snakemake/slurm_logs")
