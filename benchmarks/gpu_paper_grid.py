"""The paper's grid on one GPU, and the speed levers measured beside it, in one run of at most
10 minutes. Driven by gpu_paper_grid.sh; every stage runs the workflow's own functions.

    python benchmarks/gpu_paper_grid.py --out DIR [options]

Stages, in order (--stages), each skipped when the time budget left cannot hold it:
  prepare       the hand-pick of 250 + 50 real photos per class from the mini archive (--archive,
                cnn_study.selection.select_images with config.yaml's screening settings) and the
                decode-once caches at every model's size (cnn_study.image_cache.build_cache)
  grid          the paper's protocol (config.yaml: ResNet50 at 224 and InceptionV3 at 299; SGD,
                Adam, RMSprop at 0.001; batch 10; 50 epochs; 5 frozen, then fine-tuning), random
                initial weights, on --fast-backend (JAX), the six runs side by side, each its own
                process running train_run as the Snakemake job does, into runs/{model}/...
  results       the results stage on the grid's histories: cnn_study.metrics.write_metrics,
                report_tables.write_tables, figures.plot_model and plot_overview, into OUT/results
  side_by_side  the same six runs on --baseline-backend (torch, eager) for a few epochs, side by
                side: their pace gives the baseline grid's projected wall time
  probes        one process alone each (--probes): the baseline eager, the fast backend with
                steps_per_execution 1, 10 and 50, bfloat16, and the input path (the cache's arrays
                against decoding the JPEGs every epoch, base frozen)

For every run: first epoch (on JAX mostly XLA compilation, reported apart as first minus steady
epoch), steady seconds per epoch, ms per training step, the fixed cost per epoch (validation,
epoch-end callbacks, time between epochs) and the GPU's busy % over the run (nvidia_smi.csv, written
by gpu_paper_grid.sh). results.json and results.txt are rewritten after every stage, so a run
stopped by the budget still leaves what it measured.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

WORKER = Path(__file__).resolve().parent / "worker.py"
STARTED = time.perf_counter()
MINI_ARCHIVE = common.REPO.parent / "shared" / "data" / "dogs-vs-cats-mini" / "train.zip"
CARRIED_ARCHIVE = common.REPO / ".whl" / "train.zip"  # how the archive travels to the GPU machine


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f} s] {message}", flush=True)


def left(args) -> float:
    return args.budget_s - (time.perf_counter() - STARTED)


# ---- processes ---------------------------------------------------------------------------------


class Job:
    """One worker process (benchmarks/worker.py) on one backend, with its per-epoch JSON lines."""

    def __init__(self, name: str, spec: dict, backend: str, logs: Path):
        self.name, self.spec, self.backend = name, dict(spec), backend
        self.jsonl, self.logfile = logs / f"{name}.jsonl", logs / f"{name}.log"
        self.jsonl.unlink(missing_ok=True)
        self.spec["jsonl"] = str(self.jsonl)
        self.process: subprocess.Popen | None = None
        self.started = self.ended = None
        self.started_at = self.ended_at = None  # wall-clock, for the GPU busy % over the run
        self.result: dict | None = None
        self.killed = False

    def start(self, env: dict) -> None:
        self.started, self.started_at = time.perf_counter(), time.time()
        self.handle = open(self.logfile, "w")
        # Own process group: the budget can stop it with its children.
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(self.spec)],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            env={**env, "KERAS_BACKEND": self.backend},
            cwd=common.REPO,
            process_group=0,
        )

    def poll(self) -> bool:
        if self.process is None or self.ended is not None:
            return self.ended is not None
        if self.process.poll() is None:
            return False
        self.finish()
        return True

    def finish(self) -> None:
        self.ended, self.ended_at = time.perf_counter(), time.time()
        self.handle.close()
        self.result = common.parse_result(self.logfile.read_text(errors="replace"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.killed = True
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                    self.process.wait(5)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.ended is None and self.process is not None:
            self.finish()

    def progress(self, steps: int) -> dict:
        """Epoch timings from the JSON lines (also for a run the budget cut off)."""
        rows = []
        if self.jsonl.exists():
            for line in self.jsonl.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        first = next((r for r in rows if r.get("event") == "first_fit"), None)
        ends = [r for r in rows if r.get("event") == "epoch_end"]
        out = {
            "name": self.name,
            "backend": self.backend,
            "epochs_done": len(ends),
            "killed": self.killed,
            "ok": bool(self.result and self.result.get("ok")),
            "window": [self.started_at, self.ended_at],
            "process_wall_s": (self.ended or time.perf_counter()) - self.started if self.started else None,
        }
        for key in ("import_s", "setup_s", "error", "device", "params", "breakdown"):
            if self.result and key in self.result:
                out[key] = self.result[key]
        if self.ended is not None and not out["ok"] and self.logfile.exists():
            out["log_tail"] = self.logfile.read_text(errors="replace")[-2000:]
        if first and ends:
            durations = [ends[0]["wall"] - first["wall"]] + [b["wall"] - a["wall"] for a, b in itertools.pairwise(ends)]
            # perf_counter is the system's monotonic clock: the worker's stamps compare with this process's
            out.update(
                to_first_fit_s=first["wall"] - self.started if self.started else None,
                epoch_s=[round(d, 3) for d in durations],
                first_epoch_s=durations[0],
                phases=[e.get("phase", "all") for e in ends],
                last_loss=ends[-1].get("loss"),
                last_accuracy=ends[-1].get("accuracy"),
            )
            steady = durations[1:]
            if steady:
                out["steady_epoch_s"] = statistics.mean(steady)
                out["compile_s"] = durations[0] - out["steady_epoch_s"]  # first epoch's extra: tracing, XLA
                out["images_per_s"] = self.spec["train_images"] / out["steady_epoch_s"]
                train_steps = (out.get("breakdown") or {}).get("train_steps")
                if train_steps:
                    out["ms_per_step"] = 1000 * train_steps / steps
                    out["fixed_s_per_epoch"] = out["steady_epoch_s"] - train_steps
            out["projected_run_s"] = project(out, self.spec["epochs"])
        return out


def project(progress: dict, epochs: int) -> float | None:
    """Process wall time had it run all epochs: what ran, plus the rest at the last epochs' pace."""
    if not progress.get("epoch_s") or progress.get("to_first_fit_s") is None:
        return None
    done, durations = progress["epochs_done"], progress["epoch_s"]
    pace = durations[-1] if done < 3 else statistics.mean(durations[-min(done - 1, 5) :])
    return progress["to_first_fit_s"] + sum(durations) + (epochs - done) * pace


def run_jobs(jobs: list[Job], deadline: float, env: dict, parallel: int | None = None) -> float:
    """Run the jobs, `parallel` at a time (default all); stop what still runs at the deadline."""
    started, pending, running = time.perf_counter(), list(jobs), []
    last_report = started
    while pending or running:
        while pending and len(running) < (parallel or len(jobs)):
            pending[0].start(env)
            running.append(pending.pop(0))
        running = [job for job in running if not job.poll()]
        if time.perf_counter() >= deadline:
            log(f"  time budget reached: stopping {len(running)} running, {len(pending)} not started")
            for job in running:
                job.stop()
            break
        if time.perf_counter() - last_report > 30:
            last_report = time.perf_counter()
            done = (f"{j.name} {j.progress(1)['epochs_done']}/{j.spec['epochs']}" for j in jobs if j.started)
            log("  " + ", ".join(done))
        time.sleep(0.5)
    return time.perf_counter() - started


def gpu_busy(out: Path, window: list) -> float | None:
    """Mean utilization.gpu (%) of the nvidia-smi samples inside a wall-clock window."""
    samples = out / "nvidia_smi.csv"
    if not samples.exists() or None in window:
        return None
    values = []
    with open(samples, newline="") as handle:
        for row in csv.reader(handle):
            try:
                when = dt.datetime.strptime(row[0].strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp()
                busy = float(row[1].strip().split()[0])
            except (ValueError, IndexError):
                continue  # the header line
            if window[0] <= when <= window[1]:
                values.append(busy)
    return statistics.mean(values) if values else None


# ---- stages ------------------------------------------------------------------------------------


def stage_prepare(args) -> dict:
    """The workflow's hand-pick and decode-once caches, on the real photos."""
    from cnn_study.selection import select_images

    dataset = common.workflow_config({})["dataset"]
    data = args.work / "data"
    started = time.perf_counter()
    picked = select_images(
        source_path=str(args.archive),
        manifest_path=str(data / "manifest.csv"),
        rejected_path=str(data / "rejected.csv"),
        classes=dataset["classes"],
        n_train=args.n_train,
        n_val=args.n_val,
        seed=dataset["pick_seed"],
        min_size=dataset["min_size"],
        near_duplicate_distance=dataset["near_duplicate_distance"],
        picklist=None,
    )
    picked_s = time.perf_counter() - started
    source = {"archive": str(args.archive), "manifest": str(data / "manifest.csv")}
    caches, build = {}, {}
    for size in sorted({size for _, size in args.models} | {args.probe_run[1]}):
        caches[size], build[size] = common.build_cache(data, source, size)
    log(
        f"  picked {len(picked)} photos from {args.archive} in {picked_s:.1f} s; caches built in "
        + ", ".join(f"{s} px {t:.1f} s" for s, t in build.items())
    )
    return {
        **source,
        "caches": caches,
        "pick_s": picked_s,
        "cache_build_s": build,
        "train_images": 2 * args.n_train,
        "val_images": 2 * args.n_val,
    }


def run_spec(args, data: dict, model: str, size: int, optimizer: str, **options) -> dict:
    spec = {
        "task": "train",
        "trainer": "workflow",
        "model": model,
        "size": size,
        "optimizer": optimizer,
        "lr": args.lr,
        "seed": 0,
        "epochs": args.epochs,
        "batch": args.batch,
        "train_images": data["train_images"],
        "data": data["caches"][size],
        "workdir": str(args.work / "runs"),
        "protocol": args.protocol,
        "threads": args.threads,
        "steps_per_execution": 1,
        "precision": "float32",
        "verbose": 2,
    }
    spec.update(options)
    return spec


def run_folder(root: Path, model: str, optimizer: str, lr: float, seed: int, arm: str = "paper") -> Path:
    """The workflow's run folder layout (cnn_study.run_layout) under root: the results stage reads it."""
    from cnn_study.run_layout import run_folder as layout_folder
    from cnn_study.settings import format_lr

    return layout_folder(dict(arm=arm, model=model, optimizer=optimizer, lr=format_lr(lr), seed=seed), root / "runs")


def grid_jobs(args, data: dict, backend: str, prefix: str, **options) -> list[Job]:
    jobs = []
    for model, size in args.models:
        for optimizer in args.optimizers:
            run_dir = run_folder(args.work / prefix, model, optimizer, args.lr, 0)
            shutil.rmtree(run_dir, ignore_errors=True)
            spec = run_spec(args, data, model, size, optimizer, run_dir=str(run_dir), **options)
            jobs.append(Job(f"{prefix}_{model}_{optimizer}", spec, backend, args.work / "logs"))
    return jobs


def stage_grid(args, data: dict, env: dict, budget: float, out: Path) -> dict:
    options = {"steps_per_execution": args.grid_steps_per_execution, "precision": args.grid_precision}
    jobs = grid_jobs(args, data, args.fast_backend, "grid", **options)
    log(
        f"  {len(jobs)} runs side by side on {args.fast_backend}, {args.epochs} epochs, {options}, "
        f"budget {budget:.0f} s"
    )
    wall = run_jobs(jobs, time.perf_counter() + budget, env)
    return summarize_runs(args, jobs, data, wall, out, options)


def stage_side_by_side(args, data: dict, env: dict, budget: float, out: Path) -> dict:
    """The baseline's six runs side by side for a few epochs: their pace projects its grid."""
    jobs = grid_jobs(args, data, args.baseline_backend, "baseline", epochs=args.side_epochs)
    log(f"  {len(jobs)} runs side by side on {args.baseline_backend}, {args.side_epochs} epochs, budget {budget:.0f} s")
    wall = run_jobs(jobs, time.perf_counter() + budget, env)
    result = summarize_runs(args, jobs, data, wall, out, {"epochs": args.side_epochs})
    # had each run all the grid's epochs at the pace it showed (the first epoch counted once)
    projected = [
        r["to_first_fit_s"] + r["first_epoch_s"] + (args.epochs - 1) * r["steady_epoch_s"]
        for r in result["runs"]
        if r.get("steady_epoch_s") and r.get("to_first_fit_s") is not None
    ]
    result["projected_grid_s"] = max(projected) if len(projected) == len(jobs) else None
    return result


def summarize_runs(args, jobs: list[Job], data: dict, wall: float, out: Path, options: dict) -> dict:
    steps = -(-data["train_images"] // args.batch)
    runs = [job.progress(steps) for job in jobs]
    window = [min(j.started_at for j in jobs), max(j.ended_at or time.time() for j in jobs)]
    return {
        "options": options,
        "runs": runs,
        "wall_s": wall,
        "gpu_busy_pct": gpu_busy(out, window),
        "complete": all(r["ok"] and r["epochs_done"] == job.spec["epochs"] for r, job in zip(runs, jobs, strict=True)),
        "run_dirs": [job.spec["run_dir"] for job in jobs],
        # Each run's keys, as the workflow's run grid gives them (settings.run_grid): the results stage reads them.
        "run_keys": [
            {"arm": "paper", **{key: job.spec[key] for key in ("model", "optimizer", "lr", "seed")}} for job in jobs
        ],
        "total_images_per_s": sum(data["train_images"] * r["epochs_done"] for r in runs) / wall if wall else None,
    }


def stage_results(args, grid: dict, out: Path) -> dict:
    """The results stage's functions on the finished runs' histories, as the Snakemake jobs call them."""
    from cnn_study.figure_names import FIGURES, pdf_key
    from cnn_study.figures import plot_model, plot_overview
    from cnn_study.metrics import write_metrics
    from cnn_study.report_tables import write_tables
    from cnn_study.settings import format_lr

    settings = common.workflow_config({})["results"]
    results = out / "results"
    histories, runs = [], []
    for run_dir, keys in zip(map(Path, grid["run_dirs"]), grid["run_keys"], strict=True):
        if (run_dir / "history.csv").exists():
            kept = run_folder(results, **keys)
            keys = {**keys, "lr": format_lr(keys["lr"])}  # as settings.run_grid gives it
            kept.mkdir(parents=True, exist_ok=True)
            for name in ("history.csv", "run.json"):
                shutil.copy2(run_dir / name, kept / name)
            histories.append(str(kept / "history.csv"))
            runs.append(keys)
    if not histories:
        return {"error": "no run finished: nothing to tabulate"}
    metrics = {name: str(results / "metrics" / f"{name}.csv") for name in ("epochs", "runs", "summary", "arms")}
    write_metrics(
        histories,
        runs,
        metrics,
        settings["target_accuracy"],
        settings["final_epochs"],
        arm_changes={"paper": {}},
        reference_arm="paper",
    )
    tables = results / "tables"
    # the make_tables rule's output names (rules/tables.smk)
    write_tables(
        metrics["runs"],
        metrics["summary"],
        metrics["arms"],
        {
            "summary_md": str(tables / "summary.md"),
            "summary_tex": str(tables / "summary.tex"),
            "claims": str(tables / "claims.md"),
            "tests": str(tables / "optimizer_tests.md"),
        },
    )
    figures = results / "figures"
    for model in sorted({run["model"] for run in runs}):
        outputs = {}
        for name in FIGURES:
            outputs[name] = str(figures / f"{model}_{name}.png")
            outputs[pdf_key(name)] = str(figures / f"{model}_{name}.pdf")
        plot_model(metrics["epochs"], "paper", model, outputs)
    plot_overview(metrics["epochs"], "paper", str(figures / "overview.png"), str(figures / "overview.pdf"))
    return {"runs": len(histories), "files": sorted(str(p.relative_to(out)) for p in results.rglob("*") if p.is_file())}


def stage_probes(args, data: dict, env: dict, budget: float, out: Path) -> list[dict]:
    model, size, optimizer = args.probe_run
    deadline = time.perf_counter() + budget
    steps = -(-data["train_images"] // args.batch)
    results = []
    for probe in args.probes:
        remaining = deadline - time.perf_counter()
        if remaining < args.probe_min_s:
            log(f"  probe {probe['name']}: skipped, {remaining:.0f} s left")
            results.append({"name": probe["name"], "probe": probe, "skipped": True})
            continue
        options = {k: v for k, v in probe.items() if k not in ("name", "backend")}
        spec = run_spec(args, data, model, size, optimizer, epochs=args.probe_epochs, protocol="full", **options)
        if spec.get("task") == "input":  # a hand-written fit, base frozen, fed by loader=cache or decode
            spec.update(archive=data["archive"], manifest=data["manifest"], decode_workers=args.decode_workers)
        job = Job(f"probe_{probe['name']}", spec, probe.get("backend", args.fast_backend), args.work / "logs")
        run_jobs([job], min(deadline, time.perf_counter() + args.probe_max_s), env)
        progress = job.progress(steps)
        progress["probe"] = probe
        progress["gpu_busy_pct"] = gpu_busy(out, progress["window"])
        results.append(progress)
        log(
            f"  probe {probe['name']}: steady {fmt(progress.get('steady_epoch_s'))} s/epoch, first "
            f"{fmt(progress.get('first_epoch_s'))} s, {fmt(progress.get('ms_per_step'), '.0f')} ms/step, "
            f"GPU {fmt(progress.get('gpu_busy_pct'), '.0f')}%"
            + (f" ERROR {progress.get('error')}" * bool(progress.get("error")))
        )
    return results


# ---- report ------------------------------------------------------------------------------------


def fmt(value, spec=".2f"):
    return "n/a" if value is None else f"{value:{spec}}"


def runs_table(stage: dict) -> list[str]:
    header = (
        "run",
        "epochs",
        "first s",
        "compile s",
        "s/epoch",
        "ms/step",
        "fixed s/ep",
        "backup s/ep",
        "img/s",
        "process s",
        "projected s",
        "loss",
        "acc",
    )
    rows = [header]
    for r in stage["runs"]:
        backup = (r.get("breakdown") or {}).get("per_callback_on_epoch_end", {}).get("AsyncBackup")
        rows.append(
            (
                r["name"] + (" (cut off)" if r.get("killed") else " FAILED" if not r["ok"] else ""),
                str(r["epochs_done"]),
                fmt(r.get("first_epoch_s"), ".1f"),
                fmt(r.get("compile_s"), ".1f"),
                fmt(r.get("steady_epoch_s")),
                fmt(r.get("ms_per_step"), ".0f"),
                fmt(r.get("fixed_s_per_epoch")),
                fmt(backup, ".3f"),
                fmt(r.get("images_per_s"), ".1f"),
                fmt(r.get("process_wall_s"), ".0f"),
                fmt(r.get("projected_run_s"), ".0f"),
                fmt(r.get("last_loss"), ".3f"),
                fmt(r.get("last_accuracy"), ".3f"),
            )
        )
    return table_lines(rows)


def report(results: dict) -> str:
    o = results["options"]
    device = results.get("device") or {}
    lines = [
        f"GPU paper grid  {', '.join(device.get('gpus') or []) or 'no GPU'}, {device.get('cpu', '')}, "
        f"{results['nproc']} CPUs  {results['date']}",
        f"{o['train_images']}+{o['val_images']} real photos, batch {o['batch']}, lr {o['lr']}, "
        f"protocol {o['protocol']}, fast backend {o['fast_backend']}, baseline {o['baseline_backend']}",
    ]
    grid, side = results.get("grid"), results.get("side_by_side")
    if grid:
        lines.append(f"grid on {o['fast_backend']} ({grid['options']}), {len(grid['runs'])} runs side by side:")
        lines += runs_table(grid)
        goal = grid["complete"] and grid["wall_s"] < 300
        lines.append(
            f"grid wall time {grid['wall_s']:.0f} s ({'complete' if grid['complete'] else 'CUT OFF'}), "
            f"GPU busy {fmt(grid['gpu_busy_pct'], '.0f')}%, all runs together "
            f"{fmt(grid['total_images_per_s'], '.1f')} img/s; goal < 300 s: {'met' if goal else 'NOT met'}"
        )
    if side:
        lines.append(
            f"baseline on {o['baseline_backend']}, {len(side['runs'])} runs side by side for "
            f"{side['options']['epochs']} epochs:"
        )
        lines += runs_table(side)
        lines.append(
            f"baseline GPU busy {fmt(side['gpu_busy_pct'], '.0f')}%; projected grid wall time "
            f"{fmt(side.get('projected_grid_s'), '.0f')} s"
        )
        if grid and grid["complete"] and side.get("projected_grid_s"):
            lines.append(
                f"grid speed-up {o['fast_backend']} vs {o['baseline_backend']}: "
                f"{side['projected_grid_s'] / grid['wall_s']:.2f}x (projected baseline / measured)"
            )
    probes = results.get("probes")
    if probes:
        lines.append(
            f"probes, one process alone each: {results['probe_run']}, protocol full, "
            f"{o['probe_epochs']} epochs (the first one apart)"
        )
        base = next((p for p in probes if p["probe"]["name"] == "baseline_eager" and p.get("images_per_s")), None)
        rows = [
            (
                "probe",
                "backend",
                "options",
                "epochs",
                "first s",
                "compile s",
                "s/epoch",
                "ms/step",
                "fixed s/ep",
                "GPU %",
                "img/s",
                "vs baseline",
                "note",
            )
        ]
        for p in probes:
            note = (
                "skipped: no time left"
                if p.get("skipped")
                else (p.get("error") or ("stopped at its time limit" if p.get("killed") else ""))
            )
            options = ",".join(f"{k}={v}" for k, v in p["probe"].items() if k not in ("name", "backend"))
            same_task = p["probe"].get("task", "train") == "train"  # the input probes train the head alone
            ratio = p["images_per_s"] / base["images_per_s"] if base and same_task and p.get("images_per_s") else None
            rows.append(
                (
                    p["name"],
                    p.get("backend", ""),
                    options,
                    str(p.get("epochs_done", "-")),
                    fmt(p.get("first_epoch_s"), ".1f"),
                    fmt(p.get("compile_s"), ".1f"),
                    fmt(p.get("steady_epoch_s")),
                    fmt(p.get("ms_per_step"), ".0f"),
                    fmt(p.get("fixed_s_per_epoch")),
                    fmt(p.get("gpu_busy_pct"), ".0f"),
                    fmt(p.get("images_per_s"), ".1f"),
                    fmt(ratio, ".2f"),
                    note[:60],
                )
            )
        lines += table_lines(rows)
        speed = {p["probe"]["name"]: p.get("images_per_s") for p in probes}
        if speed.get("input_cache") and speed.get("input_decode"):
            lines.append(
                f"input path: cache {speed['input_cache']:.0f} img/s, decoding every epoch "
                f"{speed['input_decode']:.0f} img/s: {speed['input_cache'] / speed['input_decode']:.2f}x (goal >= 2x)"
            )
    res = results.get("results")
    if res:
        lines.append(f"results stage: {res.get('error') or str(res['runs']) + ' runs -> ' + ', '.join(res['files'])}")
    prep = results.get("prepare")
    if prep:
        lines.append(f"prepare: pick {prep['pick_s']:.1f} s, caches {prep['cache_build_s']}")
    lines.append(f"total wall time {results.get('total_s', 0):.0f} s")
    return "\n".join(lines)


def table_lines(rows) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return out


def save(results: dict, out: Path) -> None:
    results["total_s"] = time.perf_counter() - STARTED
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "results.txt").write_text(report(results) + "\n")


# ---- main --------------------------------------------------------------------------------------


def model_list(text: str) -> list[tuple[str, int]]:
    return [(item.split(":")[0], int(item.split(":")[1])) for item in text.split(",")]


def probe_list(text: str) -> list[dict]:
    """'name:key=value,key=value;name2:...' -> [{'name': name, key: value}]"""
    probes = []
    for item in filter(None, (p.strip() for p in text.split(";"))):
        name, _, options = item.partition(":")
        probe = {"name": name}
        for pair in filter(None, options.split(",")):
            key, _, value = pair.partition("=")
            probe[key] = {"true": True, "false": False}.get(value, int(value) if value.isdigit() else value)
        probes.append(probe)
    return probes


# In order of importance: a probe the budget cannot hold is skipped. backend=baseline/fast: the flags'.
DEFAULT_PROBES = (
    "baseline_eager:backend=baseline;"
    "fast:steps_per_execution=1;"
    "fast_spe10:steps_per_execution=10;"
    "fast_bf16:steps_per_execution=10,precision=mixed_bfloat16;"
    "input_cache:task=input,loader=cache;"
    "input_decode:task=input,loader=decode;"
    "fast_spe50:steps_per_execution=50"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_out"), help="where results.json/.txt go")
    parser.add_argument("--work", default="/tmp/cnn_gpu", help="scratch folder (data, run folders, logs)")
    parser.add_argument("--budget-s", type=float, default=540, help="the whole script stops itself by then")
    parser.add_argument("--stages", default="prepare,grid,results,side_by_side,probes")
    parser.add_argument("--archive", type=Path, default=CARRIED_ARCHIVE if CARRIED_ARCHIVE.exists() else MINI_ARCHIVE)
    parser.add_argument("--n-train", type=int, default=250, help="training photos per class")
    parser.add_argument("--n-val", type=int, default=50, help="validation photos per class")
    parser.add_argument("--models", type=model_list, default=model_list("resnet50:224,inceptionv3:299"))
    parser.add_argument("--optimizers", type=lambda s: s.split(","), default=["sgd", "adam", "rmsprop"])
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--protocol", default="config", help="config (the paper's fine_tune), full or transfer")
    parser.add_argument("--fast-backend", default="jax")
    parser.add_argument("--baseline-backend", default="torch")
    parser.add_argument("--grid-steps-per-execution", type=int, default=10)
    parser.add_argument("--grid-precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--grid-budget-s", type=float, default=300, help="at most this for the grid (the goal: 300)")
    parser.add_argument("--side-epochs", type=int, default=3, help="epochs of the baseline's side-by-side runs")
    parser.add_argument("--side-budget-s", type=float, default=80)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per process (the train rule's threads)")
    parser.add_argument(
        "--probes",
        type=probe_list,
        default=probe_list(DEFAULT_PROBES),
        help=f"'name:key=value,...;...' (default {DEFAULT_PROBES!r})",
    )
    parser.add_argument(
        "--probe-run",
        type=lambda s: (s.split(":")[0], int(s.split(":")[1]), s.split(":")[2]),
        default=("resnet50", 224, "adam"),
        help="model:size:optimizer of the probes",
    )
    parser.add_argument("--probe-epochs", type=int, default=3)
    parser.add_argument("--probe-min-s", type=float, default=25, help="skip a probe with less time left")
    parser.add_argument("--probe-max-s", type=float, default=60, help="stop a probe after this")
    parser.add_argument("--decode-workers", type=int, default=1)
    parser.add_argument("--reserve-s", type=float, default=10, help="kept back at the end for the report")
    args = parser.parse_args()
    args.work, out = Path(args.work), Path(args.out)
    (args.work / "logs").mkdir(parents=True, exist_ok=True)
    if args.protocol == "config":
        args.protocol = common.workflow_config({})["training"]["protocol"]["mode"]
    for probe in args.probes:
        if probe.get("backend") in ("baseline", "fast"):
            probe["backend"] = args.baseline_backend if probe["backend"] == "baseline" else args.fast_backend
    stages = args.stages.split(",")
    # Several JAX processes share the GPU: none may take 75% of its memory up front (JAX's default).
    env = dict(os.environ, PYTHONUNBUFFERED="1", XLA_PYTHON_CLIENT_PREALLOCATE="false")
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "argv": sys.argv,
        "budget_s": args.budget_s,
        "nproc": os.cpu_count(),
        "options": {k: v for k, v in vars(args).items() if k not in ("work", "probes", "archive")}
        | {"archive": str(args.archive), "train_images": 2 * args.n_train, "val_images": 2 * args.n_val},
    }
    log(f"stages {stages}; budget {args.budget_s:.0f} s")
    save(results, out)
    try:
        data = None
        if "prepare" in stages:
            log("prepare")
            results["prepare"] = data = stage_prepare(args)
            save(results, out)
        if data and "grid" in stages:
            reserve = args.reserve_s + (args.side_budget_s if "side_by_side" in stages else 0)
            budget = min(args.grid_budget_s, left(args) - reserve)
            if budget > 30:
                log(f"grid (budget {budget:.0f} s)")
                results["grid"] = stage_grid(args, data, env, budget, out)
                save(results, out)
        if results.get("grid") and "results" in stages:
            log("results stage")
            try:
                results["results"] = stage_results(args, results["grid"], out)
            except Exception as error:  # noqa: BLE001 - report it, measure the rest
                results["results"] = {"error": f"{type(error).__name__}: {error}"}
            save(results, out)
        if data and "side_by_side" in stages:
            budget = min(args.side_budget_s, left(args) - args.reserve_s)
            if budget > 30:
                log(f"baseline side by side (budget {budget:.0f} s)")
                results["side_by_side"] = stage_side_by_side(args, data, env, budget, out)
                save(results, out)
        results["probe_run"] = ":".join(map(str, args.probe_run))
        if data and "probes" in stages and args.probes:
            budget = left(args) - args.reserve_s
            log(f"probes (budget {budget:.0f} s)")
            results["probes"] = stage_probes(args, data, env, budget, out)
            save(results, out)
    finally:
        runs = [*(results.get("grid") or {}).get("runs", []), *(results.get("probes") or [])]
        results["device"] = next((r["device"] for r in runs if r.get("device")), None)  # cnn_study.backend's names
        save(results, out)
        print(report(results), flush=True)


if __name__ == "__main__":
    main()
