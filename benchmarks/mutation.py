"""Mutation testing of the logic modules with mutmut: how many small code changes their tests catch.

Not a CI test (minutes per module). For each module, a throwaway copy gets ``cnn_study`` at its root
(mutmut only mutates a package at the top level), the module's own unit tests, and the config files
they read; mutmut mutates only that module and runs only those tests. Prints one line per module
(killed / total) and, with --markdown, the table for docs/mutation.md.

    .venv/bin/python benchmarks/mutation.py                      # all modules
    .venv/bin/python benchmarks/mutation.py screening selection  # some
    .venv/bin/python benchmarks/mutation.py --max-children 2 --markdown
"""

from __future__ import annotations

import argparse
import configparser
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
    "claims": ["tests/test_claims.py"],
}
# What the tests read beside the code (config defaults, the schema, overlays).
DATA = ["config.yaml", "configs", "schemas"]
# mutmut's result names: killed means a test failed, or the mutant timed out or crashed the tests.
KILLED = {"killed", "timeout", "segfault"}


def prepare(module: str, repo: Path, root: Path) -> None:
    """A copy of the repository ``repo`` laid out for mutmut, mutating only ``module``."""
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
        "only_mutate": f"cnn_study/{module}.py",
        "pytest_add_cli_args_test_selection": "\n".join(MODULES[module]),
        "also_copy": "\n".join(["pytest.ini", *DATA]),
    }
    with open(root / "setup.cfg", "w") as handle:
        mutmut.write(handle)


def score(root: Path) -> dict[str, int]:
    """Counts per mutmut status, from the run's metadata (one JSON file per mutated source file)."""
    counts: dict[str, int] = {}
    subprocess.run([str(MUTMUT), "export-cicd-stats"], cwd=root, check=True, capture_output=True, text=True)
    stats = json.loads((root / "mutants" / "mutmut-cicd-stats.json").read_text())
    for key, value in stats.items():
        counts[key] = int(value)
    return counts


def run_module(module: str, repo: Path, max_children: int, keep: Path | None) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"mutation-{module}-", dir=keep))
    try:
        prepare(module, repo, root)
        started = time.perf_counter()
        done = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(max_children)],
            cwd=root,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"mutmut failed for {module} (rc {done.returncode}):\n{done.stdout[-3000:]}")
        counts = score(root)
        survivors = subprocess.run([str(MUTMUT), "results"], cwd=root, capture_output=True, text=True).stdout
        return {"module": module, "seconds": round(seconds), **counts, "survivors": survivors.strip().splitlines()}
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
