"""Where a run's files lie: the one home of the run folder layout and of the file names in it.

A run is one (arm, model, optimizer, learning rate, seed) of the study. Its folder, its logs and its benchmark
share one relative path, :data:`RUN_PATH`::

    results/runs/{arm}/{model}/{optimizer}/lr{lr}/seed{seed}/   history.csv, run.json, model.keras, test.json
        resume/                                                  an unfinished run's state (not a rule output)
            settings.json  history.csv  started_at  backup/training_metadata.json  backup/epoch-NNNN.npz
    logs/train/{arm}/.../seed{seed}.log                          the train rule's log
    results/benchmarks/train/{arm}/.../seed{seed}.tsv            its benchmark

Plain strings and pure functions: no import of the package, of Keras or of Snakemake, so the rules, the user
commands (progress, migrate_runs, predict) and the tests all read the layout from here.
"""

from __future__ import annotations

from pathlib import Path

#: The keys that name a run, in the order of its path.
RUN_KEYS = ("arm", "model", "optimizer", "lr", "seed")
#: A run's path under the runs, logs and benchmark folders (Snakemake wildcards, or str.format with a run).
RUN_PATH = "{arm}/{model}/{optimizer}/lr{lr}/seed{seed}"
#: The layout before arms (no arm folder); runs found there are moved by workflow_scripts/migrate_runs.py.
LEGACY_RUN_PATH = "{model}/{optimizer}/lr{lr}/seed{seed}"

RUNS_ROOT = "results/runs"
TRAIN_LOGS = "logs/train"
TEST_LOGS = "logs/evaluate_test"
TRAIN_BENCHMARKS = "results/benchmarks/train"
#: benchmarks/Snakefile: the hand-written Keras script of a run, under the run's path, per feed.
HANDWRITTEN_ROOT = "results/benchmarks/handwritten"

# ---- a finished run's files -------------------------------------------------------------------------------
HISTORY = "history.csv"
PROVENANCE = "run.json"
TEST_RESULT = "test.json"

# ---- an unfinished run's resume folder ----------------------------------------------------------------------
RESUME = "resume"
#: Inside the resume folder: the history rows so far, the settings they belong to, the first start, the backup.
PARTIAL_HISTORY = "history.csv"
RESUME_SETTINGS = "settings.json"
STARTED_AT = "started_at"
BACKUP_FOLDER = "backup"
#: Inside the backup folder: the commit point naming the last complete epoch's state file.
BACKUP_METADATA = "training_metadata.json"


def run_path(run: dict) -> str:
    """A run's relative path: ``paper/resnet50/sgd/lr0.001/seed0``."""
    return RUN_PATH.format(**run)


def run_folder(run: dict, root: str | Path = RUNS_ROOT) -> Path:
    """A run's results folder under ``root`` (``results/runs`` of the working directory by default)."""
    return Path(root) / run_path(run)


def run_file(name: str) -> str:
    """A file of a run's folder as a Snakemake pattern (wildcards in braces)."""
    return f"{RUNS_ROOT}/{RUN_PATH}/{name}"


def resume_folder(run_dir: str | Path) -> Path:
    return Path(run_dir) / RESUME


def backup_folder(resume_dir: str | Path) -> Path:
    return Path(resume_dir) / BACKUP_FOLDER
