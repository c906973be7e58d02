import sys
import warnings
from pathlib import Path

from snakemake.exceptions import WorkflowError

# From this file's own folder, not the main Snakefile's: the workflow also runs as a module of another one.
sys.path.insert(0, str(Path(workflow.current_basedir).parent / "workflow_scripts"))

from cnn_study import run_layout, settings  # noqa: E402
from cnn_study.image_cache import CACHE_FOLDER, SPLITS, TEST_SPLITS, cache_paths  # noqa: E402
from cnn_study.figure_names import ARM_FIGURE, FIGURES, pdf_key  # noqa: E402
from cnn_study.migrate_runs import legacy_runs_message  # noqa: E402
from cnn_study.run_model import kept_model_file  # noqa: E402
from cnn_study.kaggle_download import damaged_archive_message  # noqa: E402

try:
    # Every arm's merged settings, validated (defaults from schemas/config.schema.yaml) before any job runs.
    ARMS = settings.prepare_study(config)
except settings.ConfigError as error:
    raise WorkflowError(str(error)) from None

RUNS = settings.run_grid(ARMS)
REFERENCE_ARM = config["results"]["reference_arm"]
# A run's place in the study as a path (cnn_study.run_layout): its results folder, logs and benchmark.
RUN_PATH = run_layout.RUN_PATH
RUN_DIR = f"{run_layout.RUNS_ROOT}/{RUN_PATH}"

if message := legacy_runs_message(run_layout.RUNS_ROOT):
    raise WorkflowError(message)


wildcard_constraints:
    arm="|".join(ARMS),
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
# A half-written archive at the download's place would be refused by every job that reads it, and never
# downloaded again (the rule's output exists): stop now, naming the command that puts it aside.
if config["dataset"]["source"] == "kaggle" and damaged_archive_message(KAGGLE_ARCHIVE):
    raise WorkflowError(damaged_archive_message(KAGGLE_ARCHIVE))


# Where rule make_synthetic_dataset writes the generated demo archive (dataset.source synthetic).
SYNTHETIC_ARCHIVE = "results/data/synthetic/train.zip"


def dataset_archive():
    """Where the raw images come from: a download, the generated demo set, or a local path."""
    source = config["dataset"]["source"]
    if source == "kaggle":
        return KAGGLE_ARCHIVE
    if source == "synthetic":
        return SYNTHETIC_ARCHIVE
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
    """The decode-once cache of one input size: every arm whose models have that size shares it."""
    return cache_paths(CACHE_FOLDER.format(size=size), splits)


def test_cache_files(size):
    return cache_files(size, TEST_SPLITS)


# The held-out test split (dataset.n_test > 0) is picked, cached and evaluated by rules of its own, so
# adding it never retrains a run.
HAS_TEST_SPLIT = config["dataset"]["n_test"] > 0


# ---- training ------------------------------------------------------------------------------


def run_settings(wildcards):
    """The run's settings from its arm's config: changing one arm's overlay reruns that arm's runs only."""
    return settings.run_settings(
        ARMS[wildcards.arm], wildcards.model, wildcards.optimizer, wildcards.lr, wildcards.seed
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


# training_env_name reads a job's resources while Snakemake builds the DAG (for the conda env). Resources
# that depend on input sizes (e.g. the default disk_mb of cluster runs) then stay <TBD> until the job runs, as
# Snakemake intends, but Python warns that their coroutine was never awaited: that one warning is noise.
warnings.filterwarnings("ignore", "coroutine 'InputFiles._predicated_size_files", RuntimeWarning)

# The training env each value of the train rule's train_env resource selects under --use-conda.
TRAINING_ENVS = {"cpu": "../envs/train.yaml", "gpu": "../envs/train-gpu.yaml"}


def training_env_name(wildcards, resources):
    """The train job's train_env resource, which a profile sets (gpu in profiles/local and slurm/) and
    Snakemake gives to params functions: cpu where none does. A param derived from resources is no rerun
    trigger; the env itself is one under --use-conda."""
    return str(resources.get("train_env", "cpu"))


def training_env(wildcards, params):
    """The training job's conda env: envs/train-gpu.yaml where a profile gives the train rule
    `train_env: gpu`, else envs/train.yaml. Not the gpu resource: the rule asks for gpu=1 wherever it runs,
    and a laptop without a GPU needs the CPU env (Snakemake has no profile key for a rule's env)."""
    if params.train_env not in TRAINING_ENVS:
        raise WorkflowError(
            f"invalid resource train_env={params.train_env!r} for rule train (set-resources in a profile, or "
            f"--set-resources): use one of {', '.join(TRAINING_ENVS)}"
        )
    return TRAINING_ENVS[params.train_env]


def model_of(wildcards):
    return settings.model_settings(ARMS[wildcards.arm], wildcards.model)


def training_inputs(wildcards):
    model = model_of(wildcards)
    inputs = cache_files(model["input_size"])
    if model["weights"] == "imagenet":
        inputs["weights"] = f"resources/weights/{wildcards.model}_notop.h5"
    elif model["weights"] != "none":
        inputs["weights"] = model["weights"]
    return inputs


def train_outputs():
    """history.csv and run.json, plus the model file that training.keep asks for (none: no model)."""
    outputs = {
        "history": run_layout.run_file(run_layout.HISTORY),
        "provenance": run_layout.run_file(run_layout.PROVENANCE),
    }
    model_file = kept_model_file(settings.model_keep(config))
    if model_file:
        outputs["model"] = run_layout.run_file(model_file)
    return outputs


def run_paths(filename):
    return [run_layout.run_file(filename).format(**run) for run in RUNS]


def evaluation_inputs(wildcards):
    """The test cache, and the run's outputs: run.json names the model file that training.keep kept."""
    inputs = test_cache_files(model_of(wildcards)["input_size"])
    for key, path in train_outputs().items():
        inputs[key] = path.format(**wildcards)
    return inputs


def evaluation_batch_size(wildcards):
    return ARMS[wildcards.arm]["training"]["batch_size"]


def metrics_inputs(wildcards):
    """Every run's history, and its test evaluation when there is a test split; in RUNS' order."""
    inputs = {"histories": run_paths(run_layout.HISTORY)}
    if HAS_TEST_SPLIT:
        inputs["tests"] = run_paths(run_layout.TEST_RESULT)
    return inputs


# ---- results -------------------------------------------------------------------------------


def model_figure_outputs():
    """Per arm and model: each figure as a PNG in the report and as a PDF for papers."""
    outputs = {}
    for name, (_, label) in FIGURES.items():
        outputs[name] = report(
            f"results/figures/{{arm}}/{{model}}_{name}.png",
            caption=f"../report/{name}.rst",
            category="{arm}",
            subcategory="{model}",
            labels={"arm": "{arm}", "model": "{model}", "figure": f"{label} against epoch"},
        )
        outputs[pdf_key(name)] = f"results/figures/{{arm}}/{{model}}_{name}.pdf"
    return outputs


def figure_paths():
    """Every arm's figures: each model's, and the arm's overview."""
    paths = []
    for arm, arm_config in ARMS.items():
        paths += expand(
            "results/figures/{arm}/{model}_{name}.png", arm=arm, model=arm_config["grid"]["models"], name=FIGURES
        )
        paths.append(f"results/figures/{arm}/overview.png")
    return paths


def final_outputs():
    return [
        "results/data/manifest.csv",
        "results/metrics/epochs.csv",
        "results/metrics/runs.csv",
        "results/metrics/summary.csv",
        "results/metrics/arms.csv",
        *figure_paths(),
        f"results/figures/{ARM_FIGURE}.png",
        "results/tables/summary.md",
        "results/tables/claims.md",
    ]


# ---- cluster -------------------------------------------------------------------------------

from cnn_study import slurm_partitions, slurm_status  # noqa: E402


def slurm_settings():
    """The Slurm plugin's settings for this run, None under any other executor. Internal, as no public API
    tells a workflow its executor or the plugin's settings: workflow.executor_plugin (part of the stable
    WorkflowExecutorInterface of snakemake-interface-executor-plugins) and workflow.executor_settings."""
    plugin = workflow.executor_plugin
    return workflow.executor_settings if plugin is not None and plugin.name == "slurm" else None


def planned_slurm_requests():
    """What each job this run will submit asks Slurm for. Internal (workflow.dag), as no public API lists the
    planned jobs and their resources; job.rule, job.resources and job.threads are the plugin interface's."""
    return [
        slurm_partitions.request_of(job.rule.name, job.resources, job.threads)
        for job in workflow.dag.needrun_jobs()
        if not job.is_local
    ]


onstart:
    # Before any job is submitted (not in dry-runs), a Slurm run that could not go well stops, one line per
    # problem: job states it could never read (it would wait forever), partitions its jobs cannot run on.
    slurm = slurm_settings()
    if slurm:
        try:
            lines = slurm_status.check_before_submitting(
                slurm.status_command,
                slurm.init_seconds_before_status_checks,
                planned_slurm_requests(),
            )
        except slurm_status.SlurmStatusError as error:
            raise WorkflowError(str(error)) from None
        # While it runs: a job Slurm keeps pending for a reason that waiting does not cure is named, at the
        # plugin's first status check and pace.
        watch = slurm_partitions.PendingWatch(
            str(Path.cwd()),
            interval=slurm.init_seconds_before_status_checks or 40,
            warn=logger.warning,
        )
        for line in [*lines, watch.start()]:
            logger.info(line)
        # A retried time limit is expected: show-failed-logs then prints the train log's few lines only.
        slurm_status.report_expected_stops_briefly(slurm.logdir or ".snakemake/slurm_logs")
