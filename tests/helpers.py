"""Shared test helpers: run the workflow in a throwaway copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([*SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result
