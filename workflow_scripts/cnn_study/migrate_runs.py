"""Runs finished before the study had arms, moved into an arm without retraining.

Before arms, a run's folder was ``results/runs/{model}/{optimizer}/lr{lr}/seed{seed}`` (its logs and benchmark
likewise); now it is ``results/runs/{arm}/...`` (cnn_study.run_layout). ``python workflow_scripts/migrate_runs.py``
moves every such run, with its logs and benchmark, into the reference arm (``results.reference_arm``, paper), after
checking that the run was trained with that arm's settings: Snakemake then finds the run's outputs where it expects
them and does not train it again. A run whose recorded settings differ from the arm's stays where it is, named.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from cnn_study import settings
from cnn_study.model_specs import MODEL_SPECS
from cnn_study.run_layout import (
    LEGACY_RUN_PATH,
    PROVENANCE,
    RESUME,
    RUN_PATH,
    RUNS_ROOT,
    TEST_LOGS,
    TRAIN_BENCHMARKS,
    TRAIN_LOGS,
)

COMMAND = "python workflow_scripts/migrate_runs.py"


def legacy_runs(runs_root: str | Path = RUNS_ROOT) -> list[Path]:
    """Run folders in the layout before arms: results/runs/<model>/<optimizer>/lr<lr>/seed<seed>."""
    root = Path(runs_root)
    found = []
    for model in MODEL_SPECS:
        found += sorted(path for path in (root / model).glob("*/lr*/seed*") if path.is_dir())
    return found


def legacy_runs_message(runs_root: str | Path) -> str:
    """One line for a study that still has runs in the old layout ('' when it has none): Snakemake would
    otherwise train them again in their arm's folder."""
    found = legacy_runs(runs_root)
    if not found:
        return ""
    return (
        f"{found[0]} and {len(found) - 1} more run folder(s) are in the layout before arms "
        f"({RUNS_ROOT}/{LEGACY_RUN_PATH}); move them into their arm without retraining: {COMMAND} "
        "(add the --configfile overlays of this study), or delete them"
    )


def _keys(run_dir: Path, runs_root: Path) -> dict:
    model, optimizer, lr, seed = run_dir.relative_to(runs_root).parts
    return {"model": model, "optimizer": optimizer, "lr": lr.removeprefix("lr"), "seed": seed.removeprefix("seed")}


def settings_difference(recorded: dict, expected: dict, prefix: str = "") -> str:
    """The first setting a finished run was trained with that differs from its arm's ('' when none does).
    Only the keys the run recorded count, at every depth: a setting added since then (training.head.batch_norm)
    had no other value before."""
    for key in sorted(recorded):
        if key not in expected:
            continue
        if isinstance(recorded[key], dict) and isinstance(expected[key], dict):
            difference = settings_difference(recorded[key], expected[key], f"{prefix}{key}.")
            if difference:
                return difference
        elif json.dumps(recorded[key], sort_keys=True) != json.dumps(expected[key], sort_keys=True):
            return f"{prefix}{key}: {recorded[key]!r} in its run.json, {expected[key]!r} in the arm"
    return ""


def _move(source: Path, target: Path) -> None:
    if source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise FileExistsError(f"{target} already exists: move or delete it, then run {COMMAND} again")
        shutil.move(str(source), str(target))


def migrate(arm: str, arm_config: dict, workdir: str | Path = ".") -> tuple[list[str], list[str]]:
    """Move every finished old-layout run whose settings are the arm's into the arm; returns (moved, kept), each
    a line per run. Unfinished runs (a resume/ folder, no run.json) are kept: their job starts afresh anyway."""
    workdir = Path(workdir)
    runs_root = workdir / RUNS_ROOT
    moved, kept = [], []
    for run_dir in legacy_runs(runs_root):
        keys = _keys(run_dir, runs_root)
        old, new = LEGACY_RUN_PATH.format(**keys), RUN_PATH.format(arm=arm, **keys)
        record = run_dir / PROVENANCE
        if not record.is_file() or (run_dir / RESUME).exists():
            kept.append(f"{old}: not finished (no {PROVENANCE}); delete it, the arm's job trains it afresh")
            continue
        expected = settings.run_settings(arm_config, **keys)
        difference = settings_difference(json.loads(record.read_text())["settings"], expected)
        if difference:
            kept.append(f"{old}: trained with other settings than arm {arm} ({difference}); not moved")
            continue
        _move(run_dir, runs_root / new)
        _move(workdir / TRAIN_LOGS / f"{old}.log", workdir / TRAIN_LOGS / f"{new}.log")
        _move(workdir / TRAIN_LOGS / old, workdir / TRAIN_LOGS / new)
        _move(workdir / TEST_LOGS / f"{old}.log", workdir / TEST_LOGS / f"{new}.log")
        _move(workdir / TRAIN_BENCHMARKS / f"{old}.tsv", workdir / TRAIN_BENCHMARKS / f"{new}.tsv")
        moved.append(f"{old} -> {new}")
    return moved, kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    settings.add_study_arguments(parser)
    parser.add_argument("--arm", help="the arm to move the runs into (default: results.reference_arm)")
    args = parser.parse_args(argv)
    try:
        config, arms = settings.study_of(args)
    except (FileNotFoundError, settings.ConfigError) as error:
        print(f"Error: {error}")
        return 1
    arm = args.arm or config["results"]["reference_arm"]
    if arm not in arms:
        print(f"Error: --arm {arm}: not an arm of this study ({', '.join(arms)})")
        return 1
    try:
        moved, kept = migrate(arm, arms[arm], args.directory)
    except FileExistsError as error:
        print(f"Error: {error}")
        return 1
    for line in moved:
        print(f"moved {line}")
    for line in kept:
        print(f"kept {line}")
    print(f"{len(moved)} run(s) moved into arm {arm}, {len(kept)} kept in place.")
    return 0 if not kept else 1
