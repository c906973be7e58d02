"""The benchmarks run the workflow itself: benchmarks/Snakefile plans the study's train jobs beside the hand-written
script on the same settings, and benchmarks/run.py reads its ratios from what those jobs wrote."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import run as bench  # noqa: E402

CPU_STUDY = [REPO / "config.yaml", REPO / "benchmarks" / "cpu.yaml"]
GPU_STUDY = [REPO / "config.yaml", REPO / "benchmarks" / "gpu.yaml"]


def dry_run(workdir, files, *targets) -> dict[str, int]:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "benchmarks" / "Snakefile"), "--directory"]
    command += [str(workdir), "--configfile", *map(str, files), "-n", "--quiet", "rules", "--", *targets]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.MULTILINE)}


@pytest.mark.workflow
def test_every_side_of_the_cpu_comparisons_is_a_job_of_the_benchmark_workflow(tmp_path):
    targets = [bench.side_files(arm, feed, 1)[0] for stage in bench.SIDES.values() for _, arm, feed in stage]
    counts = dry_run(tmp_path, CPU_STUDY, *targets)
    assert counts["train"] == 2 and counts["handwritten"] == 4  # deterministic and not; the input's cache and decode
    assert counts["build_image_cache"] == 1  # one cache: both sides read the same arrays
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_the_gpu_arms_plan_the_papers_grid_and_the_levers(tmp_path):
    paper = bench.arm_runs(GPU_STUDY, ["paper"])
    assert {(r["model"], r["optimizer"]) for r in paper} == {
        (m, o) for m in ("resnet50", "inceptionv3") for o in ("sgd", "adam", "rmsprop")
    }
    levers = bench.arm_runs(GPU_STUDY, ["spe1", "spe50", "bfloat16"])
    assert [r["arm"] for r in levers] == ["spe1", "spe50", "bfloat16"]
    targets = [bench.side_files(r["arm"], None, r["seed"], r)[0] for r in paper + levers]
    assert dry_run(tmp_path, GPU_STUDY, *targets)["train"] == 9


def write_side(workdir, arm, feed, seed, epoch_seconds, cpu_seconds, images_per_second):
    epochs_file, benchmark_file = bench.side_files(arm, feed, seed)
    target = workdir / epochs_file
    target.parent.mkdir(parents=True, exist_ok=True)
    epochs = range(1, len(epoch_seconds) + 1)
    pd.DataFrame(
        {"epoch": epochs, "epoch_seconds": epoch_seconds, "epoch_cpu_seconds": cpu_seconds,
         "images_per_second": images_per_second}
    ).to_csv(target, index=False)  # fmt: skip
    benchmark = workdir / benchmark_file
    benchmark.parent.mkdir(parents=True, exist_ok=True)
    benchmark.write_text("s\tcpu_time\tmax_rss\n30\t50\t900\n")


def test_ratios_are_medians_of_the_per_repeat_pairs_from_steady_epochs(tmp_path):
    (tmp_path / "results/data").mkdir(parents=True)
    pd.DataFrame({"split": ["train"] * 100 + ["val"] * 20}).to_csv(tmp_path / "results/data/manifest.csv")
    sides = bench.SIDES["train"][:2]  # the workflow and the hand-written script, determinism on
    # the first epoch (graph tracing) is far slower and must not count
    for seed, (workflow_cpu, hand_cpu) in enumerate([(10.0, 8.0), (10.0, 12.5), (8.0, 10.0)]):
        write_side(tmp_path, "deterministic", None, seed, [60, 5], [90, workflow_cpu], [1, 20])
        write_side(tmp_path, "deterministic", "arrays", seed, [20, 6], [30, hand_cpu], [1, 16])
    sides_numbers = bench.compare(tmp_path, sides, repeats=3)
    workflow, hand = sides_numbers["workflow deterministic"], sides_numbers["hand-written deterministic"]
    assert workflow[0]["img_per_cpu_s"] == 10.0 and workflow[0]["first_epoch_s"] == 60
    # per repeat, workflow / hand-written images per CPU-second: 0.8, 1.25, 1.25 -> median 1.25
    assert bench.paired(workflow, hand, "img_per_cpu_s") == pytest.approx(1.25)
    row = next(r for r in bench.rows_of({"train": {**sides_numbers, **nondeterministic(sides_numbers)}})
               if r[0] == "train, deterministic: steady img per CPU-s")  # fmt: skip
    assert row[3:] == ("1.25x", ">= 1.0x", "yes")


def nondeterministic(numbers: dict) -> dict:
    return {name.replace("deterministic", "nondeterministic"): sides for name, sides in numbers.items()}
