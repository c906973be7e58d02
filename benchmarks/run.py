"""The benchmarks: the workflow itself, run by Snakemake, measured side by side in one run of one command.

    python benchmarks/run.py                         # all (about 20 minutes on 2 quiet CPU cores)
    python benchmarks/run.py --quick                 # smaller, one repeat
    python benchmarks/run.py --only train --repeats 3 --workdir /tmp/bench
    python benchmarks/run.py --report /tmp/bench     # the table again, from a finished work folder

Every training job is a job of benchmarks/Snakefile (this study imported as a module, plus the hand-written
Keras script as rule handwritten), with the study of benchmarks/cpu.yaml; its arms are the sides of each
comparison and its seeds the repeats. One job runs at a time; each repeat runs the sides in turn, the order
reversed on every other repeat, and a ratio is the median of the per-repeat ratios. The numbers are read
from what the jobs wrote: history.csv or epochs.csv (per epoch: wall and CPU seconds, the training steps'
images per second) and the benchmark TSVs (the whole job). Steady epochs are the second and later.

  train     the train job against the hand-written script, with op determinism on (the study's default) and
            off; also what determinism costs each
  input     decode-once cache against decoding the JPEGs every epoch, base frozen (both hand-written)
  data      screening and the 250 + 50 per class pick of the real mini archive (rule select_images' TSV)
  workflow  the demo from nothing, its no-op rerun (beside `snakemake --version`), a 1,000-job dry run, and
            the time from the last training job's end to the figures

Measurements, not tests: nothing fails on a missed goal. The raw numbers go to WORKDIR/bench.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow_scripts"))
from cnn_study import run_layout, settings  # noqa: E402

SNAKEFILE = REPO / "benchmarks" / "Snakefile"
MINI_ARCHIVE = REPO.parent / "shared" / "data" / "dogs-vs-cats-mini" / "train.zip"
RUN = {"model": "resnet50", "optimizer": "sgd", "lr": "0.001"}  # benchmarks/cpu.yaml's grid
# Sides of each comparison: (label, arm, feed); feed None is the workflow's train job.
SIDES = {
    "train": [
        ("workflow", "deterministic", None),
        ("hand-written", "deterministic", "arrays"),
        ("hand-written", "nondeterministic", "arrays"),
        ("workflow", "nondeterministic", None),
    ],
    "input": [("cache", "frozen", "arrays"), ("decode", "frozen", "decode")],
}
# Measures in seconds: their ratio is hand-written / workflow, so that above 1.0x the workflow is ahead in every row.
SECONDS = {"epoch_s", "first_epoch_s", "job_s", "job_cpu_s"}
GRID_1000 = {  # 5 models x 5 optimizers x 5 learning rates x 8 seeds
    "grid": {"models": ["resnet50", "inceptionv3", "vgg16", "mobilenetv2", "alexnet"], "seeds": list(range(8)),
             "optimizers": ["sgd", "adam", "rmsprop", "adamw", "nadam"], "learning_rates": [0.1, 0.01, 0.001, 1e-4, 1e-5]},
    "models": {"mobilenetv2": {"weights": "none"}},
}  # fmt: skip


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S} load {os.getloadavg()[0]:.1f}] {message}", flush=True)


def snakemake(workdir: Path, configfiles: list, *args: str, check: bool = True) -> float:
    """One Snakemake call on benchmarks/Snakefile in workdir; its wall seconds."""
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir)]
    command += ["--configfile", *map(str, configfiles), *args]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed in {workdir}:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - started


def study_files(workdir: Path, args) -> list:
    """config.yaml, benchmarks/cpu.yaml and this run's overlay: the data source, the repeats, --quick."""
    overlay = {"grid": {"seeds": list(range(args.repeats))}}
    if MINI_ARCHIVE.exists():  # real photos where they are at hand
        overlay["dataset"] = {"source": str(MINI_ARCHIVE)}
    if args.quick:
        overlay["dataset"] = {**overlay.get("dataset", {}), "n_train": 15, "n_val": 5}
        overlay["training"] = {"epochs": 2}
    (workdir / "bench.yaml").write_text(yaml.safe_dump(overlay))
    return [REPO / "config.yaml", REPO / "benchmarks" / "cpu.yaml", workdir / "bench.yaml"]


def side_files(arm: str, feed: str | None, seed: int, run: dict | None = None) -> tuple[str, str]:
    """A side's per-epoch file (history.csv of the train job, or the hand-written job's epochs.csv) and TSV."""
    path = run_layout.run_path(run or {"arm": arm, "seed": seed, **RUN})
    if feed is None:
        return f"{run_layout.RUNS_ROOT}/{path}/{run_layout.HISTORY}", f"{run_layout.TRAIN_BENCHMARKS}/{path}.tsv"
    folder = f"{run_layout.HANDWRITTEN_ROOT}/{path}/{feed}"
    return f"{folder}/epochs.csv", f"{folder}/benchmark.tsv"


def side_by_side(workdir: Path, files: list, sides: list, repeats: int, cores: int) -> None:
    threads = ["--set-threads", f"train={cores}", f"handwritten={cores}"]
    for repeat in range(repeats):
        for label, arm, feed in sides if repeat % 2 == 0 else sides[::-1]:
            log(f"repeat {repeat + 1}/{repeats}: {label} ({arm}{', ' + feed if feed else ''})")
            snakemake(workdir, files, "--cores", str(cores), *threads, "--", side_files(arm, feed, repeat)[0])


def side_numbers(workdir: Path, arm: str, feed: str | None, seed: int, images: int) -> dict:
    """What one job wrote: its epochs (steady = second and later) and its benchmark TSV."""
    epochs_file, benchmark = side_files(arm, feed, seed)
    epochs = pd.read_csv(workdir / epochs_file)
    steady = epochs[epochs["epoch"] >= 2]
    job = pd.read_csv(workdir / benchmark, sep="\t").iloc[0]
    return {
        "steps_img_per_s": float(steady["images_per_second"].median()),
        "img_per_cpu_s": images / float(steady["epoch_cpu_seconds"].median()),
        "epoch_s": float(steady["epoch_seconds"].median()),
        "first_epoch_s": float(epochs["epoch_seconds"].iloc[0]),
        "job_s": float(job["s"]),
        "job_cpu_s": float(job["cpu_time"]),
        "max_rss_mb": float(job["max_rss"]),
    }


def compare(workdir: Path, sides: list, repeats: int) -> dict:
    manifest = pd.read_csv(workdir / "results/data/manifest.csv")
    images = int((manifest["split"] == "train").sum())
    return {
        f"{label} {arm}": [side_numbers(workdir, arm, feed, seed, images) for seed in range(repeats)]
        for label, arm, feed in sides
    }


def bench_data(root: Path, args) -> dict:
    """Rule select_images on the real mini archive at the paper's 250 + 50 per class, --forcerun each repeat."""
    if not MINI_ARCHIVE.exists():
        log(f"data: {MINI_ARCHIVE} is not here: skipped")
        return {}
    workdir = root / "data"
    workdir.mkdir(exist_ok=True)
    (workdir / "paper.yaml").write_text(yaml.safe_dump({"dataset": {"source": str(MINI_ARCHIVE)}}))
    seconds = []
    for _ in range(args.repeats):
        arguments = ["--cores", "1", "--forcerun", "select_images", "--", "results/data/manifest.csv"]
        snakemake(workdir, [REPO / "config.yaml", workdir / "paper.yaml"], *arguments)
        seconds.append(float(pd.read_csv(workdir / "results/benchmarks/select_images.tsv", sep="\t")["s"].iloc[0]))
        log(f"data: screening + pick {seconds[-1]:.1f} s")
    return {"select_images_s": seconds}


def bench_workflow(root: Path, args) -> dict:
    workdir = root / "demo"
    workdir.mkdir(exist_ok=True)
    files = [REPO / "config.yaml", REPO / "configs" / "demo.yaml"]
    if args.quick:
        (workdir / "quick.yaml").write_text("training:\n  epochs: 2\n")
        files.append(workdir / "quick.yaml")
    log("workflow: the demo from nothing")
    result = {"demo_s": snakemake(workdir, files, "--cores", "2")}
    trained = [p.stat().st_mtime for p in (workdir / run_layout.RUNS_ROOT).rglob(run_layout.HISTORY)]
    final = [p.stat().st_mtime for d in ("figures", "tables") for p in (workdir / "results" / d).rglob("*.*")]
    result["last_training_to_figures_s"] = max(final) - max(trained)
    result["noop_s"], result["snakemake_version_s"] = [], []
    for _ in range(args.repeats + 1):  # Snakemake's own start-up, beside each no-op rerun
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True, check=True)
        result["snakemake_version_s"].append(time.perf_counter() - started)
        result["noop_s"].append(snakemake(workdir, files, "--cores", "2"))
    (workdir / "grid1000.yaml").write_text(yaml.safe_dump(GRID_1000))
    result["dry_run_1000_s"] = [
        snakemake(workdir, [*files, workdir / "grid1000.yaml"], "-n", "--cores", "2") for _ in range(args.repeats)
    ]
    log(f"workflow: {json.dumps(result)}")
    return result


# ---- the table ------------------------------------------------------------------------------------------


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def paired(a: list[dict], b: list[dict], key: str) -> float | None:
    return median([x[key] / y[key] for x, y in zip(a, b, strict=True)])


def fmt(value, spec=".2f", suffix=""):
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def row(measure: str, workflow="", baseline="", ratio=None, goal="", met=None) -> tuple:
    """A line of the table; met is shown where there is a goal (for ratios: at least 1.0x)."""
    met = (ratio is not None and ratio >= 1.0) if met is None else met
    return (
        measure,
        workflow,
        baseline,
        fmt(ratio, ".2f", "x") if ratio else "",
        goal,
        ("yes" if met else "NO") * bool(goal),
    )


def side_median(sides: list[dict], key: str) -> str:
    return fmt(median(side[key] for side in sides))


def rows_of(results: dict) -> list[tuple]:
    rows, train = [], results.get("train")
    for arm in ("deterministic", "nondeterministic") if train else ():
        wf, hand = train[f"workflow {arm}"], train[f"hand-written {arm}"]
        for key, what, goal in [
            ("img_per_cpu_s", "steady img per CPU-s", ">= 1.0x"),
            ("steps_img_per_s", "steady img/s (steps)", ""),
            ("epoch_s", "steady epoch s (wall)", ""),
            ("first_epoch_s", "first epoch s", ""),
            ("job_cpu_s", "whole job CPU-s", ""),
        ]:
            ratio = paired(hand, wf, key) if key in SECONDS else paired(wf, hand, key)
            rows.append(row(f"train, {arm}: {what}", side_median(wf, key), side_median(hand, key), ratio, goal))
    for label in ("workflow", "hand-written") if train else ():
        on, off = train[f"{label} deterministic"], train[f"{label} nondeterministic"]
        rows.append(row(f"determinism: {label}, CPU-s per image, on / off", ratio=paired(off, on, "img_per_cpu_s")))
    if results.get("input"):
        cache, decode = results["input"]["cache frozen"], results["input"]["decode frozen"]
        ratio = paired(cache, decode, "img_per_cpu_s")
        rows.append(row("input, frozen: steady img per CPU-s, cache / decode", side_median(cache, "img_per_cpu_s"),
                        side_median(decode, "img_per_cpu_s"), ratio, ">= 1.0x"))  # fmt: skip
    if results.get("data"):
        seconds = median(results["data"]["select_images_s"])
        rows.append(row("data: screening + pick, 250 + 50 per class, s", fmt(seconds, ".1f"), goal="< 30 s",
                        met=seconds < 30))  # fmt: skip
    flow = results.get("workflow")
    if flow:
        noop, dry = median(flow["noop_s"][1:]), median(flow["dry_run_1000_s"])
        rows += [
            row(
                "workflow: demo from nothing, s", fmt(flow["demo_s"], ".0f"), goal="<= 300 s", met=flow["demo_s"] <= 300
            ),
            row(
                "workflow: no-op rerun s (snakemake --version)",
                fmt(noop),
                fmt(median(flow["snakemake_version_s"])),
                goal="< 3 s",
                met=noop < 3,
            ),  # fmt: skip
            row("workflow: dry run of 1,000 jobs, s", fmt(dry), goal="< 10 s", met=dry < 10),
            row("workflow: last training to figures, s", fmt(flow["last_training_to_figures_s"], ".0f")),
        ]
    return rows


def table(results: dict) -> str:
    rows = [("measure", "workflow", "baseline", "ratio", "goal", "met"), *rows_of(results)]
    widths = [max(len(str(row[i])) for row in rows) for i in range(6)]
    lines = [" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


# ---- the runs of whole arms (benchmarks/gpu_paper_grid.sh) ----------------------------------------------


def arm_runs(files: list, arms: list[str]) -> list[dict]:
    return [
        run
        for run in settings.run_grid(settings.prepare_study(settings.read_config_files(files)))
        if run["arm"] in arms
    ]


def runs_report(workdir: Path, files: list, arms: list[str]) -> str:
    """Per run of the arms: epochs done (an unfinished run's from its resume folder), first and steady epoch,
    ms per training step, and the run's projected time at its full epochs."""
    study = settings.prepare_study(settings.read_config_files(files))
    lines = ["run | epochs | first s | steady s | ms/step | projected s"]
    for run in arm_runs(files, arms):
        folder, training = workdir / run_layout.run_folder(run), study[run["arm"]]["training"]
        found = [p for p in (folder / run_layout.HISTORY, folder / run_layout.RESUME / run_layout.PARTIAL_HISTORY)
                 if p.exists()]  # fmt: skip
        epochs = pd.read_csv(found[0]) if found else pd.DataFrame({"epoch_seconds": [], "images_per_second": []})
        first, steady = epochs["epoch_seconds"].iloc[:1].sum(), epochs["epoch_seconds"].iloc[1:].median()
        step_ms = 1000 * training["batch_size"] / epochs["images_per_second"].iloc[1:].median()
        projected = first + (training["epochs"] - 1) * steady
        lines.append(f"{run_layout.run_path(run)} | {len(epochs)} of {training['epochs']} | {first:.1f} | "
                     f"{steady:.2f} | {step_ms:.1f} | {projected:.0f}")  # fmt: skip
    return "\n".join(lines)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return f"{cpu or platform.processor()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer images and epochs, one repeat")
    parser.add_argument("--only", nargs="+", choices=["train", "input", "data", "workflow"])
    parser.add_argument("--repeats", type=int, help="repeats of each comparison (default 2, quick 1)")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="cores (and threads) of each job")
    parser.add_argument("--workdir", type=Path, help="where the jobs run (default: a new temporary folder)")
    parser.add_argument("--report", type=Path, metavar="WORKDIR", help="print the table of a finished run")
    parser.add_argument("--configfile", nargs="+", type=Path, help="with --targets or --runs: the study's files")
    parser.add_argument("--targets", nargs="+", metavar="ARM", help="print the history files of these arms' runs")
    parser.add_argument("--runs", nargs="+", metavar="ARM", help="print the progress of these arms' runs in --workdir")
    args = parser.parse_args()
    if args.targets:
        print(" ".join(side_files(r["arm"], None, r["seed"], r)[0] for r in arm_runs(args.configfile, args.targets)))
        return
    if args.runs:
        print(runs_report(args.workdir, args.configfile, args.runs))
        return
    if args.report:
        results = json.loads((args.report / "bench.json").read_text())
        print(f"{results['machine']}, {results['started']}\n{table(results)}")
        return
    args.repeats = args.repeats or (1 if args.quick else 2)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="cnn_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(), "started": f"{dt.datetime.now():%Y-%m-%d %H:%M}", "command": sys.argv}
    stages = args.only or ["train", "input", "data", "workflow"]
    files = study_files(root, args)
    if {"train", "input"} & set(stages):
        log(f"the study in {root}: preparing the data")
        snakemake(root, files, "--cores", str(args.cores), "--", "results/data/manifest.csv")
    for stage in ("train", "input"):
        if stage in stages:
            side_by_side(root, files, SIDES[stage], args.repeats, args.cores)
            results[stage] = compare(root, SIDES[stage], args.repeats)
    if "data" in stages:
        results["data"] = bench_data(root, args)
    if "workflow" in stages:
        results["workflow"] = bench_workflow(root, args)
    (root / "bench.json").write_text(json.dumps(results, indent=1))
    print(f"\n{results['machine']}, {results['started']}\n{table(results)}\n\nraw: {root / 'bench.json'}")


if __name__ == "__main__":
    main()
