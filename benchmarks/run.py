"""The benchmarks: one command, a table of ratios, each measured side by side in the same run.

    python benchmarks/run.py            # the full set (about 15 minutes on 2 quiet CPU cores)
    python benchmarks/run.py --quick    # smaller, one repeat (about 5 minutes)
    python benchmarks/run.py --only train input --repeats 3 --json /tmp/bench.json

0. data: screening and the 250 + 50 per class pick on the real mini archive
   (../shared/data/dogs-vs-cats-mini/train.zip; skipped where it is absent), one fresh process each.
1. training: the workflow's train_run (what the Snakemake job runs) against a hand-written Keras
   script of the same job (ResNet50 at 128 px, batch 10, SGD, same cached arrays, same epochs,
   model.fit(x, y, epochs=N, shuffle=True, validation_data=...)). Each is its own process; the
   two alternate (A B, then B A, ...) and each ratio is the median of those back-to-back pairs.
   Imports, set-up, the first epoch (graph tracing) and the steady epochs are timed inside the
   process, in wall and CPU seconds (CPU: all threads; the process's whole CPU time also comes from
   getrusage), plus where each steady epoch's seconds go. On a shared machine compare CPU seconds.
2. input: the decode-once cache against decoding the JPEGs every epoch (a PIL PyDataset and, on
   TensorFlow, image_dataset_from_directory without cache), base frozen (transfer).
3. workflow: the demo grid once in a temporary copy of the repository, then its no-op rerun, a
   dry run of a 1,000-job grid, and the time from the last training job's end to the figures.

These are measurements, not tests: nothing fails on a missed goal; the table says which goals hold.
Raw numbers go to --json (default: a file in the temporary folder, printed at the end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

REPO = common.REPO
WORKER = Path(__file__).resolve().parent / "worker.py"
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
FAILED_WORKERS: list[str] = []  # a failed worker makes the command fail, after the table is printed


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S} load {common.load_average()}] {message}", flush=True)


def run_worker(spec: dict, timeout: int, label: str) -> dict:
    started, cpu_before = time.perf_counter(), common.child_cpu_seconds()
    load_before = common.load_average()
    try:
        done = subprocess.run(
            [sys.executable, str(WORKER), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        code = "timeout"
    result = common.parse_result(output) or {"ok": False, "error": f"no result (exit {code})"}
    result["wall_s"] = time.perf_counter() - started
    result["process_cpu_s"] = common.child_cpu_seconds() - cpu_before
    result["startup_s"] = result["wall_s"] - result.get("process_s", result["wall_s"])
    result["load_before"], result["load_after"] = load_before, common.load_average()
    result["label"] = label
    if not result.get("ok"):
        result["output_tail"] = output[-3000:]
        FAILED_WORKERS.append(label)
        log(f"  {label}: FAILED {result.get('error')}\n{output[-1500:]}")
    else:
        log(
            f"  {label}: {result.get('images_per_s', float('nan')):.2f} img/s steady "
            f"({result.get('images_per_cpu_s', float('nan')):.2f} per CPU-s), first epoch "
            f"{result.get('first_epoch_s', float('nan')):.1f} s, process {result['wall_s']:.0f} s, "
            f"{result['process_cpu_s']:.0f} CPU-s"
        )
    return result


def alternate(variants: dict, repeats: int, timeout: int) -> dict[str, list[dict]]:
    """Run every variant once per repeat, the order reversed on every other repeat."""
    names = list(variants)
    results = {name: [] for name in names}
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            log(f"repeat {repeat + 1}/{repeats}: {name}")
            results[name].append(run_worker(variants[name], timeout, name))
    return results


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def field(runs: list[dict], key: str):
    return median([r.get(key) for r in runs if r.get("ok")])


def paired_ratios(a: list[dict], b: list[dict], key: str = "images_per_s") -> list[float]:
    """a/b per repeat (each pair measured back to back)."""
    return [
        x[key] / y[key] for x, y in zip(a, b, strict=True) if x.get("ok") and y.get("ok") and x.get(key) and y.get(key)
    ]


def mean_breakdown(runs: list[dict]) -> dict:
    parts: dict[str, list[float]] = {}
    for run in runs:
        for name, value in (run.get("breakdown") or {}).items():
            if isinstance(value, (int, float)):
                parts.setdefault(name, []).append(value)
            elif isinstance(value, dict):
                for sub, seconds in value.items():
                    parts.setdefault(f"on_epoch_end:{sub}", []).append(seconds)
    return {name: statistics.mean(values) for name, values in parts.items()}


# ---- 1 and 2: training and input path --------------------------------------------------------


def bench_training(args, data: dict, workdir: Path) -> dict:
    base = {
        "task": "train",
        "model": "resnet50",
        "size": args.size,
        "optimizer": "sgd",
        "lr": 0.001,
        "seed": 0,
        "epochs": args.epochs,
        "batch": 10,
        "train_images": args.train_images,
        "data": data["cache"],
        "workdir": str(workdir / "train_runs"),
        "protocol": "full",
    }
    variants = {"workflow": {**base, "trainer": "workflow"}}
    if args.profile:
        # Like with like: each script with op determinism on and off (process-wide: a run of its own each),
        # ordered so that the two compared at equal determinism run back to back in every repeat.
        variants["minimal_deterministic"] = {**base, "trainer": "minimal", "deterministic": True}
        variants["workflow_nondeterministic"] = {**base, "trainer": "workflow", "deterministic": False}
    variants["minimal"] = {**base, "trainer": "minimal"}
    runs = alternate(variants, args.repeats, args.timeout)
    result = {"variants": variants, "runs": runs}
    if args.trace:
        result["traces"] = trace_training(args, variants, workdir)
    return result


def trace_training(args, variants: dict, workdir: Path) -> dict:
    """One more process per variant, one epoch traced by the TensorFlow profiler and cProfile (common.EpochTracer;
    --trace-epoch, default the second, the first steady one), split by benchmarks/epoch_profile.py. Not timed:
    tracing costs time."""
    import epoch_profile

    traces = {}
    for name, spec in variants.items():
        trace_dir = workdir / "traces" / name
        log(f"traced run: {name} (epoch {args.trace_epoch + 1})")
        traced = {**spec, "trace_dir": str(trace_dir), "trace_epoch": args.trace_epoch}
        run_worker(traced, args.timeout, f"{name} (traced)")
        if (trace_dir / "window.json").exists():
            traces[name] = epoch_profile.summarize(trace_dir)
            print(epoch_profile.report(name, traces[name]), flush=True)
    return traces


def bench_input(args, data: dict) -> dict:
    base = {
        "task": "input",
        "model": "resnet50",
        "size": args.size,
        "optimizer": "sgd",
        "lr": 0.001,
        "seed": 0,
        "epochs": args.epochs,
        "batch": 10,
        "train_images": args.train_images,
        "data": data["cache"],
        "archive": data["archive"],
        "manifest": data["manifest"],
        "folders": data.get("folders"),
    }
    variants = {"cache": {**base, "loader": "cache"}, "decode": {**base, "loader": "decode"}}
    if BACKEND == "tensorflow" and not args.quick:
        variants["tfdata"] = {**base, "loader": "tfdata"}
    runs = alternate(variants, args.repeats, args.timeout)
    return {"variants": variants, "runs": runs}


def extract_folders(dataset: dict, target: Path) -> str:
    """The picked JPEGs as split/class/file.jpg, for image_dataset_from_directory."""
    with zipfile.ZipFile(dataset["archive"]) as archive:
        for row in dataset["rows"]:
            path = target / row["split"] / row["label"] / Path(row["file"]).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(row["file"]))
    return str(target)


# ---- 3: workflow overhead ----------------------------------------------------------------------

COPY = ["Snakefile", "rules", "workflow_scripts", "schemas", "envs", "config.yaml", "configs", "report"]
GRID_1000 = {
    "models": ["resnet50", "inceptionv3", "vgg16", "mobilenetv2", "alexnet"],
    "optimizers": ["sgd", "adam", "rmsprop", "adamw", "nadam"],
    "learning_rates": [0.1, 0.01, 0.001, 0.0001, 0.00001],
    "seeds": list(range(8)),
}
# The config check refuses weights: imagenet for MobileNetV2 (Keras publishes no hash to verify them).
MODELS_1000 = {"mobilenetv2": {"weights": "none"}}


def snakemake(args_list: list[str], cwd: Path, timeout: int) -> tuple[float, subprocess.CompletedProcess]:
    command = [str(Path(sys.executable).with_name("snakemake")), *args_list]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - started, done


LOG_TIME = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
LOG_FINISHED = re.compile(r"Finished job(?:id)?:? *(\d+)")
LOG_RULE = re.compile(r"^(?:local)?rule (\w+):$")
LOG_JOBID = re.compile(r"^\s*jobid: (\d+)$")


def parse_snakemake_log(text: str) -> list[dict]:
    """(rule, start, end) of every job in a Snakemake log, from its timestamp lines."""
    jobs: dict[str, dict] = {}
    stamp = None
    pending_rule = None
    for line in text.splitlines():
        if match := LOG_TIME.match(line.strip()):
            stamp = dt.datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        if match := LOG_RULE.match(line.strip()):
            pending_rule = (match.group(1), stamp)
            continue
        if (match := LOG_JOBID.match(line)) and pending_rule:
            jobs[match.group(1)] = {"rule": pending_rule[0], "start": pending_rule[1]}
            pending_rule = None
            continue
        if (match := LOG_FINISHED.search(line)) and match.group(1) in jobs:
            jobs[match.group(1)]["end"] = stamp
    return [job for job in jobs.values() if "end" in job]


MINI_ARCHIVE = REPO.parent / "shared" / "data" / "dogs-vs-cats-mini" / "train.zip"


def bench_data(args, workdir: Path) -> dict:
    """Screening and the 250 + 50 per class pick on the real mini archive with config.yaml's
    screening settings, in a fresh process each time (imports included), as select_images runs."""
    if not MINI_ARCHIVE.exists():
        log(f"  {MINI_ARCHIVE} is not here: skipped")
        return {"skipped": str(MINI_ARCHIVE)}
    dataset = common.workflow_config({})["dataset"]
    code = (
        "import json, sys; sys.path.insert(0, 'workflow_scripts')\n"
        "from cnn_study.selection import select_images\n"
        "print('SELECTED', len(select_images(**json.loads(sys.argv[1]))))\n"
    )
    seconds = []
    for repeat in range(args.repeats):
        out = workdir / f"select_{repeat}"
        options = {
            "source_path": str(MINI_ARCHIVE),
            "manifest_path": str(out / "manifest.csv"),
            "rejected_path": str(out / "rejected.csv"),
            "classes": dataset["classes"],
            "n_train": 250,
            "n_val": 50,
            "seed": dataset["pick_seed"],
            "min_size": dataset["min_size"],
            "near_duplicate_distance": dataset["near_duplicate_distance"],
            "picklist": None,
        }
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(options)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
        wall = time.perf_counter() - started
        complete = done.returncode == 0 and f"SELECTED {2 * (250 + 50)}" in done.stdout
        seconds.append(wall if complete else None)
        log(
            f"  screening + pick of 250+50 per class from {MINI_ARCHIVE.name}: {wall:.1f} s "
            f"(rc {done.returncode}{', ' + done.stderr.strip().splitlines()[-1] if done.returncode else ''})"
        )
    return {"archive": str(MINI_ARCHIVE), "seconds": seconds}


def bench_workflow(args, workdir: Path) -> dict:
    wf = workdir / "wf"
    wf.mkdir(parents=True)
    for name in COPY:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, wf / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, wf / name)
    configfiles = ["configs/demo.yaml"]
    if args.quick:
        (wf / "quick.yaml").write_text("training:\n  epochs: 1\n")
        configfiles.append("quick.yaml")
    result: dict = {"configfiles": configfiles}
    log(f"workflow: the demo grid in {wf} ({' '.join(configfiles)})")
    seconds, done = snakemake(["--cores", "2", "--configfile", *configfiles], wf, args.timeout * 4)
    result["demo_s"] = seconds
    result["demo_ok"] = done.returncode == 0
    if done.returncode != 0:
        result["demo_tail"] = (done.stdout + done.stderr)[-3000:]
        log(f"  demo FAILED:\n{result['demo_tail'][-1500:]}")
        return result
    log(f"  demo: {seconds:.0f} s")

    # the time from the last training job's end to the figures and tables
    run_outputs = [p for p in (wf / "results" / "runs").rglob("*") if p.is_file()]
    final = [p for d in ("figures", "tables") for p in (wf / "results" / d).rglob("*") if p.is_file()]
    last_train = max(p.stat().st_mtime for p in run_outputs)
    result["train_end_to_figures_mtime_s"] = max(p.stat().st_mtime for p in final) - last_train
    logs = sorted((wf / ".snakemake" / "log").glob("*.snakemake.log"))
    if logs:
        jobs = parse_snakemake_log(logs[-1].read_text())
        trains = [j for j in jobs if j["rule"] == "train"]
        if trains:
            end = max(j["end"] for j in trains)
            after = [j for j in jobs if j["rule"] not in ("train", "all") and j["end"] >= end]
            result["train_end_to_figures_log_s"] = (
                (max(j["end"] for j in after) - end).total_seconds() if after else None
            )
            result["jobs_after_training"] = [
                {"rule": j["rule"], "seconds": (j["end"] - j["start"]).total_seconds()} for j in after
            ]
            result["train_job_seconds"] = [(j["end"] - j["start"]).total_seconds() for j in trains]

    # No-op reruns alternate with `snakemake --version`: the floor that Snakemake's own start-up
    # (imports, executor plugins) sets before the workflow is read.
    noop, floor = [], []
    for repeat in range(args.repeats + 1):
        seconds, done = snakemake(["--version"], wf, 600)
        floor.append(seconds)
        seconds, done = snakemake(["--cores", "2", "--configfile", *configfiles], wf, 600)
        nothing = "Nothing to be done" in done.stdout + done.stderr
        noop.append({"seconds": seconds, "nothing_to_be_done": nothing, "rc": done.returncode})
        log(
            f"  no-op rerun {repeat + 1}: {seconds:.2f} s (nothing to be done: {nothing}); "
            f"snakemake --version {floor[-1]:.2f} s"
        )
    result["noop"] = noop
    result["snakemake_version_s"] = floor

    # The grid as --config overrides, as a user would type it. Snakemake parses nested --config
    # values with YAML's BaseLoader, so numbers in lists arrive as strings: recorded as found.
    grid, models = json.dumps(GRID_1000), json.dumps(MODELS_1000)
    overrides = ["--config", f"grid={grid}", f"models={models}"]
    seconds, done = snakemake(["-n", "--cores", "2", "--configfile", *configfiles, *overrides], wf, 600)
    text = done.stdout + done.stderr
    result["dry_run_1000_via_config"] = {
        "seconds": seconds,
        "rc": done.returncode,
        "error": next((line for line in text.splitlines() if "invalid config" in line), None)
        if done.returncode
        else None,
    }
    log(
        f"  dry run with --config grid=...: rc {done.returncode} in {seconds:.2f} s "
        f"{result['dry_run_1000_via_config']['error'] or ''}"
    )
    import yaml

    (wf / "grid1000.yaml").write_text(yaml.safe_dump({"grid": GRID_1000, "models": MODELS_1000}))
    dry = []
    for repeat in range(args.repeats):
        arguments = ["-n", "--cores", "2", "--configfile", *configfiles, "grid1000.yaml"]
        if result["dry_run_1000_via_config"]["rc"] == 0:
            arguments = ["-n", "--cores", "2", "--configfile", *configfiles, *overrides]
        seconds, done = snakemake(arguments, wf, 600)
        text = done.stdout + done.stderr
        match = re.search(r"^train\s+(\d+)", text, re.MULTILINE)
        total = re.search(r"^total\s+(\d+)", text, re.MULTILINE)
        dry.append(
            {
                "seconds": seconds,
                "rc": done.returncode,
                "how": " ".join(arguments[4:]),
                "train_jobs": int(match.group(1)) if match else None,
                "total_jobs": int(total.group(1)) if total else None,
            }
        )
        if done.returncode != 0:
            dry[-1]["tail"] = text[-2000:]
        log(
            f"  dry run of the 1,000-job grid {repeat + 1}: {seconds:.2f} s, {dry[-1]['train_jobs']} train jobs, "
            f"{dry[-1]['total_jobs']} jobs in all"
        )
    result["dry_run_1000"] = dry
    return result


# ---- the table ---------------------------------------------------------------------------------


def fmt(value, spec=".2f", suffix=""):
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def table(results: dict) -> str:
    rows = [("measure", "workflow", "baseline", "ratio", "goal", "met")]
    if "training" in results:
        runs = results["training"]["runs"]
        wf, mini = runs["workflow"], runs["minimal"]
        ratios = paired_ratios(wf, mini)
        cpu_ratios = paired_ratios(wf, mini, "images_per_cpu_s")
        ratio = median(ratios)
        rows += [
            (
                "train: steady img/s (wall)",
                fmt(field(wf, "images_per_s")),
                fmt(field(mini, "images_per_s")),
                fmt(ratio, ".2f", "x"),
                ">= 1.0x",
                "yes" if ratio and ratio >= 1.0 else "NO",
            ),
            (
                "train: steady img/CPU-s",
                fmt(field(wf, "images_per_cpu_s")),
                fmt(field(mini, "images_per_cpu_s")),
                fmt(median(cpu_ratios), ".2f", "x"),
                ">= 1.0x",
                "yes" if median(cpu_ratios) and median(cpu_ratios) >= 1.0 else "NO",
            ),
            (
                "train: whole process CPU-s (getrusage)",
                fmt(field(wf, "process_cpu_s"), ".0f"),
                fmt(field(mini, "process_cpu_s"), ".0f"),
                "",
                "",
                "",
            ),
            (
                "train: first epoch s",
                fmt(field(wf, "first_epoch_s"), ".1f"),
                fmt(field(mini, "first_epoch_s"), ".1f"),
                fmt(_ratio(field(mini, "first_epoch_s"), field(wf, "first_epoch_s")), ".2f", "x"),
                "",
                "",
            ),
            ("train: imports s", fmt(field(wf, "import_s"), ".1f"), fmt(field(mini, "import_s"), ".1f"), "", "", ""),
            (
                "train: set-up before fit s",
                fmt(field(wf, "setup_s"), ".1f"),
                fmt(field(mini, "setup_s"), ".1f"),
                "",
                "",
                "",
            ),
            (
                "train: process start + exit s",
                fmt(field(wf, "startup_s"), ".1f"),
                fmt(field(mini, "startup_s"), ".1f"),
                "",
                "",
                "",
            ),
        ]
        if "workflow_nondeterministic" in runs and "minimal_deterministic" in runs:
            nd, mini_det = runs["workflow_nondeterministic"], runs["minimal_deterministic"]
            for label, a, b in (
                ("train: img/CPU-s, both deterministic", wf, mini_det),
                ("train: img/CPU-s, both nondeterministic", nd, mini),
            ):
                r = median(paired_ratios(a, b, "images_per_cpu_s"))
                rows.append(
                    (
                        label,
                        fmt(field(a, "images_per_cpu_s")),
                        fmt(field(b, "images_per_cpu_s")),
                        fmt(r, ".2f", "x"),
                        ">= 1.0x",
                        "yes" if r and r >= 1.0 else "NO",
                    )
                )
            rows.append(
                (
                    "train: img/s (wall), both deterministic",
                    fmt(field(wf, "images_per_s")),
                    fmt(field(mini_det, "images_per_s")),
                    fmt(median(paired_ratios(wf, mini_det)), ".2f", "x"),
                    "",
                    "",
                )
            )
            # What determinism costs each script: img/CPU-s with it on over with it off (< 1: slower with it).
            for label, on, off in (("workflow", wf, nd), ("hand-written", mini_det, mini)):
                rows.append(
                    (
                        f"train: determinism on/off, {label}, img/CPU-s",
                        fmt(field(on, "images_per_cpu_s")),
                        fmt(field(off, "images_per_cpu_s")),
                        fmt(_ratio(field(on, "images_per_cpu_s"), field(off, "images_per_cpu_s")), ".2f", "x"),
                        "",
                        "",
                    )
                )
    if "input" in results:
        runs = results["input"]["runs"]
        cache = runs["cache"]
        for name in ("decode", "tfdata"):
            if name in runs:
                r = median(paired_ratios(cache, runs[name]))
                rows.append(
                    (
                        f"input: cache vs {name}, frozen img/s",
                        fmt(field(cache, "images_per_s")),
                        fmt(field(runs[name], "images_per_s")),
                        fmt(r, ".2f", "x"),
                        ">= 1.0x",
                        "yes" if r and r >= 1.0 else "NO",
                    )
                )
                r = median(paired_ratios(cache, runs[name], "images_per_cpu_s"))
                rows.append(
                    (
                        f"input: cache vs {name}, frozen img/CPU-s",
                        fmt(field(cache, "images_per_cpu_s")),
                        fmt(field(runs[name], "images_per_cpu_s")),
                        fmt(r, ".2f", "x"),
                        ">= 1.0x",
                        "yes" if r and r >= 1.0 else "NO",
                    )
                )
        build = results["input"].get("cache_build_s")
        if build is not None:
            rows.append(("input: cache build s (once)", fmt(build, ".1f"), "", "", "", ""))
    if "data" in results and results["data"].get("seconds"):
        selected = median(results["data"]["seconds"])
        rows.append(
            (
                "data: screen + pick 250+50/class, mini archive s",
                fmt(selected, ".1f"),
                "",
                "",
                "< 30 s",
                "yes" if selected is not None and selected < 30 else "NO",
            )
        )
    if "workflow" in results:
        w = results["workflow"]
        noop = [n["seconds"] for n in w.get("noop", [])[1:]] or [n["seconds"] for n in w.get("noop", [])]
        dry = [d["seconds"] for d in w.get("dry_run_1000", [])]
        rows += [
            ("workflow: demo grid, full run s", fmt(w.get("demo_s"), ".0f"), "", "", "", ""),
            (
                "workflow: no-op rerun s",
                fmt(median(noop)),
                "",
                "",
                "< 3 s",
                "yes" if noop and median(noop) < 3 else "NO",
            ),
            (
                "workflow: snakemake --version s (floor)",
                fmt(median(w.get("snakemake_version_s", [None]))),
                "",
                "",
                "",
                "",
            ),
            (
                "workflow: dry run, 1,000 jobs s",
                fmt(median(dry)),
                "",
                "",
                "< 10 s",
                "yes" if dry and median(dry) < 10 else "NO",
            ),
            (
                "workflow: dry run via --config grid=... rc",
                str((w.get("dry_run_1000_via_config") or {}).get("rc")),
                "",
                "",
                "",
                ((w.get("dry_run_1000_via_config") or {}).get("error") or "")[:60],
            ),
            (
                "workflow: last train end -> figures s",
                fmt(w.get("train_end_to_figures_log_s"), ".0f"),
                "",
                "",
                "",
                f"(mtimes: {fmt(w.get('train_end_to_figures_mtime_s'), '.0f')} s)",
            ),
        ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def machine(results: dict) -> str:
    """The CPU and GPUs as the workers' cnn_study.backend.device_names() saw them (the driver imports no backend)."""
    for stage in ("training", "input"):
        for runs in (results.get(stage) or {}).get("runs", {}).values():
            for run in runs:
                if run.get("device"):
                    device = run["device"]
                    return f"{device['cpu']}, nproc={os.cpu_count()}, GPUs {device['gpus'] or 'none'}"
    return f"nproc={os.cpu_count()}"


def _ratio(a, b):
    return a / b if a and b else None


def breakdown_text(results: dict) -> str:
    lines = []
    if "training" in results:
        lines.append("Where a steady training epoch's seconds go (mean over runs):")
        for name, runs in results["training"]["runs"].items():
            parts = mean_breakdown([r for r in runs if r.get("ok")])
            shown = ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if v >= 0.0005)
            lines.append(f"  {name}: {shown}")
        for name, runs in results["training"]["runs"].items():
            extra = [r.get("after_last_fit_s") for r in runs if r.get("after_last_fit_s") is not None]
            if extra:
                lines.append(f"  {name}: after the last epoch (model.save, run.json, clean-up) {median(extra):.1f} s")
    if "workflow" in results and results["workflow"].get("jobs_after_training"):
        jobs = results["workflow"]["jobs_after_training"]
        lines.append(
            "Jobs after the last training job: " + ", ".join(f"{j['rule']} {j['seconds']:.0f} s" for j in jobs)
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and epochs, one repeat, demo with 1 epoch")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["data", "train", "input", "workflow"],
        default=["data", "train", "input", "workflow"],
    )
    parser.add_argument("--repeats", type=int, help="pairs per comparison (default 2, quick 1)")
    parser.add_argument("--train-images", type=int, help="training images (default 100, quick 30)")
    parser.add_argument("--val-images", type=int, help="validation images (default 20, quick 10)")
    parser.add_argument("--epochs", type=int, help="epochs per run; the first is reported apart (default 3, quick 2)")
    parser.add_argument("--size", type=int, default=128, help="input size in px (default 128)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="add the workflow with determinism off and the hand-written script with determinism on",
    )
    parser.add_argument(
        "--trace", action="store_true", help="then profile one epoch of each training variant (not timed)"
    )
    parser.add_argument("--trace-epoch", type=int, default=1, help="which epoch --trace profiles (0: the first)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per process")
    parser.add_argument("--json", help="where to write the raw results")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.repeats is None:  # 0: no timed runs (with --trace: the traced ones only)
        args.repeats = 1 if args.quick else 2
    args.train_images = args.train_images or (30 if args.quick else 100)
    args.val_images = args.val_images or (10 if args.quick else 20)
    args.epochs = args.epochs or (2 if args.quick else 3)

    workdir = Path(tempfile.mkdtemp(prefix="cnn-bench-"))
    results: dict = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "backend": BACKEND,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": vars(args),
        "load_start": common.load_average(),
    }
    log(f"{os.cpu_count()} CPUs; backend {BACKEND}; work in {workdir}")
    started = time.perf_counter()
    try:
        if "train" in args.only or "input" in args.only:
            log(f"data: {args.train_images}+{args.val_images} synthetic 400x350 JPEGs, cache at {args.size} px")
            dataset = common.make_dataset(workdir / "data", args.train_images, args.val_images)
            cache, build_s = common.build_cache(workdir / "data", dataset, args.size)
            data = {"cache": cache, "archive": dataset["archive"], "manifest": dataset["manifest"]}
            if BACKEND == "tensorflow" and not args.quick and "input" in args.only:
                data["folders"] = extract_folders(dataset, workdir / "folders")
            log(f"  cache built in {build_s:.2f} s")
        if "data" in args.only:
            log("0. data: screening and the hand-pick on the real mini archive")
            results["data"] = bench_data(args, workdir)
        if "train" in args.only:
            log("1. training throughput: workflow train_run vs hand-written model.fit")
            results["training"] = bench_training(args, data, workdir)
        if "input" in args.only:
            log("2. input path: decode-once cache vs decode every epoch (base frozen)")
            results["input"] = bench_input(args, data)
            results["input"]["cache_build_s"] = build_s
        if "workflow" in args.only:
            log("3. workflow overhead")
            results["workflow"] = bench_workflow(args, workdir)
    finally:
        results["machine"] = machine(results)
        results["total_s"] = time.perf_counter() - started
        results["load_end"] = common.load_average()
        out = Path(args.json) if args.json else workdir / "results.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1, default=str))
        if not args.keep:
            for child in workdir.iterdir():
                if child != out:
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
    print()
    print(
        f"{results['date']}  {results['machine']}  backend {BACKEND}  load {results['load_start']} -> "
        f"{results['load_end']}  total {results['total_s'] / 60:.1f} min"
    )
    print(
        f"{args.train_images}+{args.val_images} images at {args.size} px, {args.epochs} epochs, "
        f"{args.repeats} repeat(s); ratio = workflow speed / baseline speed (>1: workflow faster), "
        "median of back-to-back pairs"
    )
    print(table(results))
    print(breakdown_text(results))
    print(f"raw results: {out}")
    if FAILED_WORKERS:
        raise SystemExit(f"{len(FAILED_WORKERS)} benchmark worker(s) failed ({', '.join(FAILED_WORKERS)}): see above")


if __name__ == "__main__":
    main()
