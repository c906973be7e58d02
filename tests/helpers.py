"""Shared test helpers: run the workflow in a throwaway copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from cnn_study.model_specs import MODEL_SPECS

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
WORKFLOW_FILES = [
    "Snakefile",
    "config.yaml",
    "rules",
    "workflow_scripts",
    "schemas",
    "envs",
    "configs",
    "report",
    "profiles",
    "slurm",
]
MINI_ARCHIVE = (REPO / ".." / "shared" / "data" / "dogs-vs-cats-mini" / "train.zip").resolve()

#: The quickest model to train, at its smallest input, from random weights: for tests of the workflow's machinery.
FAST_MODEL = "alexnet"
FAST_MODEL_SETTINGS = {FAST_MODEL: {"input_size": MODEL_SPECS[FAST_MODEL].min_size, "weights": "none"}}


def copy_workflow(destination: Path) -> Path:
    """The workflow's own files, without results, so a test starts from a clean checkout."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, destination / name)
    return destination


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: int = 1200, env: dict | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    result = subprocess.run([*SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


SMALL_DISK_SCRIPT = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'


def ran_nothing(result: subprocess.CompletedProcess) -> bool:
    """Snakemake found every requested file up to date: it says so in words, or (with --until) by a job total of 0."""
    text = result.stdout + result.stderr
    totals = re.findall(r"^total\s+(\d+)\s*$", text, flags=re.MULTILINE)
    return "Nothing to be done" in text or totals == ["0"]


def demo_workdir(destination: Path, onednn: str, *targets: str) -> Path:
    """The demo run in a copy of the workflow, to the end or to ``targets``, with TensorFlow's oneDNN kernels on
    ("1") or off ("0"): their sums differ in the last bits, which a demo must not depend on (issue 21)."""
    workdir = copy_workflow(destination)
    snakemake(
        workdir, *targets, "--cores", "2", "--configfile", "configs/demo.yaml", env={"TF_ENABLE_ONEDNN_OPTS": onednn}
    )
    return workdir


def assert_the_demo_settles(workdir: Path) -> None:
    """What the README promises of the demo on any CPU: every run's validation accuracy at its last epoch above
    0.6, and their mean above 0.8."""
    import pandas as pd
    import yaml

    grid = yaml.safe_load((workdir / "configs/demo.yaml").read_text())["grid"]
    last = pd.read_csv(workdir / "results/metrics/runs.csv").set_index(["model", "optimizer"])["last_val_accuracy"]
    assert len(last) == len(grid["models"]) * len(grid["optimizers"]), last.to_string()
    assert (last > 0.6).all(), last.to_string()
    assert last.mean() > 0.8, last.to_string()


def run_on_small_disk(folder: Path, size: str, code: str, *args: str, timeout: int = 120):
    """Run ``python -c code args`` with ``folder`` mounted as a tmpfs of ``size`` (e.g. "1m"): a real full disk.

    It runs in a new user and mount namespace (unshare), so it needs no root, and the file system disappears
    with the process: what the test must see afterwards, the code writes outside ``folder``. None where the
    system allows no such namespace (not Linux, no unshare, namespaces disabled)."""
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or unshare is None:
        return None
    namespace = [unshare, "--user", "--map-root-user", "--mount"]
    if subprocess.run([*namespace, "true"], capture_output=True, timeout=30).returncode != 0:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "workflow_scripts"), str(REPO / "tests")])}
    command = [*namespace, "sh", "-c", SMALL_DISK_SCRIPT, "sh", size, str(folder), sys.executable, "-c", code, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
