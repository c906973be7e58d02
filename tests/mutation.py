"""Mutation testing of the logic modules with mutmut: how many small code changes their tests catch.

Not a CI test (minutes per module). For each module, a throwaway copy gets ``cnn_study`` at its root
(mutmut only mutates a package at the top level), the module's own unit tests, and the config files
they read; mutmut mutates only that module (and the code of others it is scored with, ALSO_MUTATED) and runs
only those tests. Prints one line per module
(killed / total) and, with --markdown, the table for docs/mutation.md.

    .venv/bin/python tests/mutation.py                      # all modules
    .venv/bin/python tests/mutation.py screening selection  # some
    .venv/bin/python tests/mutation.py --max-children 2 --markdown
"""

from __future__ import annotations

import argparse
import configparser
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")

# module -> the unit tests that cover it, fastest modules first
MODULES = {
    "image_cache": ["tests/test_image_cache.py"],
    # test_image_cache checks the decode to RGB (screening.decode_rgb, to_rgb) on every image mode.
    "screening": ["tests/test_screening.py", "tests/test_image_cache.py"],
    # test_test_split checks the held-out test pick (select_test_images, pick_test).
    "selection": ["tests/test_selection.py", "tests/test_test_split.py"],
    "kaggle_download": ["tests/test_kaggle_download.py"],
    "summary_stats": ["tests/test_summary_stats.py"],
    # test_claims_across_arms checks C6-C11 (the statements judged across arms).
    "claims": ["tests/test_claims.py", "tests/test_claims_across_arms.py"],
    # test_predict runs predict on a fake model; test_run_model's tests that need a trained ResNet50 are left out
    # (its module fixture would be built again for every mutant).
    "predict": ["tests/test_predict.py"],
    "progress": ["tests/test_progress.py"],
    # test_slurm_status also runs the partition check through check_before_submitting.
    "slurm_status": ["tests/test_slurm_status.py"],
    "slurm_partitions": ["tests/test_slurm_partitions.py", "tests/test_slurm_status.py"],
    "metrics": ["tests/test_metrics.py"],
    # Both on a tiny model in this process; tests/test_training.py's real runs in child processes are left out.
    "training_callbacks": ["tests/test_training_callbacks.py"],
    "training": ["tests/test_train_run.py"],
}
# module -> the code of other modules it is scored with, where it uses it: {module: functions (None: all)}.
# metrics counts the warm-up with schedule.warmup_length and names its columns with metric_columns.
ALSO_MUTATED = {"metrics": {"metric_columns": None, "schedule": ["warmup_length"]}}
# module -> environment of its mutmut run. train_run's TensorFlow feed (tf.data) deadlocks in the children mutmut
# forks from a process that has already run TensorFlow; torch's thread pools are rebuilt after a fork.
ENVIRONMENT = {"training": {"KERAS_BACKEND": "torch"}}
# What the tests read beside the code (config defaults, the schema, overlays).
DATA = ["config.yaml", "configs", "schemas"]
# mutmut's result names: killed means a test failed, or the mutant timed out or crashed the tests.
KILLED = {"killed", "timeout", "segfault"}


def mutant_patterns(module: str) -> list[str]:
    """mutmut's names of the mutants a module is scored on (mutmut names them <module>.x_<function>__mutmut_<n>)."""
    patterns = [f"cnn_study.{module}.*"]
    for other, functions in ALSO_MUTATED.get(module, {}).items():
        if functions is None:
            patterns.append(f"cnn_study.{other}.*")
        else:
            patterns += [f"cnn_study.{other}.x_{function}__mutmut_*" for function in functions]
    return patterns


def prepare(module: str, repo: Path, root: Path) -> None:
    """A copy of the repository ``repo`` laid out for mutmut, mutating only ``module`` and its ALSO_MUTATED."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(repo / "workflow_scripts" / "cnn_study", root / "cnn_study", ignore=ignore)
    shutil.copytree(repo / "tests", root / "tests", ignore=shutil.ignore_patterns("__pycache__", "slurm_overlay"))
    for test in MODULES[module]:
        if re.search(r"sys\.path\.insert\(\s*\d+\s*,\s*[\"']/", (root / test).read_text()):
            raise SystemExit(
                f"{test} puts an absolute path first on sys.path, so it tests that checkout's code, not the "
                "mutants: remove the line (pytest.ini sets the path)"
            )
    for name in DATA:
        source = repo / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / name)
    shared = REPO.parent / "shared"
    if shared.exists():  # the tests find the sample photos at <repository>/../shared, also from mutmut's copy
        (root / "shared").symlink_to(shared)
    ini = configparser.ConfigParser()
    ini.read(repo / "pytest.ini")
    ini["pytest"]["pythonpath"] = ". tests"
    # Tests that run Snakemake on a copy of the workflow would test the unmutated checkout.
    ini["pytest"]["addopts"] = "-m 'not slow and not slurm and not workflow' -p no:cacheprovider"
    with open(root / "pytest.ini", "w") as handle:
        ini.write(handle)
    mutmut = configparser.ConfigParser()
    mutmut["mutmut"] = {
        "source_paths": "cnn_study",
        "only_mutate": "\n".join(f"cnn_study/{name}.py" for name in [module, *ALSO_MUTATED.get(module, {})]),
        "pytest_add_cli_args_test_selection": "\n".join(MODULES[module]),
        "also_copy": "\n".join(["pytest.ini", *DATA]),
    }
    with open(root / "setup.cfg", "w") as handle:
        mutmut.write(handle)


def score(root: Path, patterns: list[str]) -> tuple[dict[str, int], list[str]]:
    """Counts per mutmut status (``no tests`` as no_tests) of the mutants named by ``patterns``, and the lines
    of those not killed ("name: status")."""
    listed = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"], cwd=root, check=True, capture_output=True, text=True
    )
    counts: dict[str, int] = {"total": 0, "killed": 0, "survived": 0}
    survivors = []
    for line in listed.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
            continue
        key = status.replace(" ", "_")
        counts[key] = counts.get(key, 0) + 1
        counts["total"] += 1
        if status not in KILLED:
            survivors.append(line.strip())
    return counts, survivors


def run_module(module: str, repo: Path, max_children: int, keep: Path | None) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"mutation-{module}-", dir=keep))
    try:
        prepare(module, repo, root)
        started = time.perf_counter()
        patterns = mutant_patterns(module)
        done = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(max_children), *patterns],
            cwd=root,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **ENVIRONMENT.get(module, {})},
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"mutmut failed for {module} (rc {done.returncode}):\n{done.stdout[-3000:]}")
        counts, survivors = score(root, patterns)
        return {"module": module, "seconds": round(seconds), **counts, "survivors": survivors}
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    parser.add_argument("--source", type=Path, default=REPO, help="the checkout to test (default: this one)")
    parser.add_argument("--keep", type=Path, help="keep each module's mutmut folder under this folder")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--markdown", action="store_true", help="print the table for docs/mutation.md")
    args = parser.parse_args()
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown modules {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    results = []
    for module in args.modules or list(MODULES):
        result = run_module(module, args.source.resolve(), args.max_children, args.keep)
        results.append(result)
        killed = result["killed"] + result.get("timeout", 0) + result.get("segfault", 0)
        total = result["total"] - result.get("skipped", 0)
        print(
            f"{module}: {killed}/{total} killed ({100 * killed / max(total, 1):.1f}%), "
            f"{result['survived']} survived, {result.get('no_tests', 0)} without tests, {result['seconds']} s",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        print("\n| module | unit tests | killed | total | score |\n|---|---|---:|---:|---:|")
        for result in results:
            killed = result["killed"] + result.get("timeout", 0) + result.get("segfault", 0)
            total = result["total"] - result.get("skipped", 0)
            print(
                f"| {result['module']} | {', '.join(MODULES[result['module']])} | {killed} | {total} "
                f"| {100 * killed / max(total, 1):.1f}% |"
            )


if __name__ == "__main__":
    main()
