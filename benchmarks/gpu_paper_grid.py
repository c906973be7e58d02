"""The paper's grid on one GPU, KERAS_BACKEND=torch, no TensorFlow: seconds per epoch, images per
second and total wall time, plus the input-path ratio on the GPU. Driven by gpu_paper_grid.sh.

    python benchmarks/gpu_paper_grid.py --out DIR [options]

Stages, in order, each skipped when the time budget left cannot hold it:
  prepare  500+100 synthetic 400x350 JPEGs (train.zip + manifest) and the workflow's decode-once
           caches at 224 and 299 px (cnn_study.image_cache.build_cache)
  input    ResNet50 at 224, base frozen: the cache's arrays against decoding every JPEG every
           epoch (a PIL PyDataset, workers=1), one process each, back to back
  grid     ResNet50 at 224 and InceptionV3 at 299 x SGD, Adam, RMSprop, lr 0.001, batch 10,
           50 epochs, random initial weights, the paper's protocol from config.yaml (fine_tune:
           5 epochs frozen, then the base unfrozen), each run in its own process running the
           workflow's train_run; --parallel of them at once on the one GPU
  probes   short single-process runs of one grid job (default InceptionV3 + Adam) under other
           options (--probes), to compare per-epoch seconds: eager vs torch.compile, float32 vs
           mixed_bfloat16, workflow train_run vs a hand-written fit

Writes results.json and results.txt (the table) into --out, rewritten after every stage, so a run
stopped by the budget or killed still leaves what was measured. Per-epoch progress of every
process is read from its own JSON-lines file, so a run cut off by the budget reports its epochs.
"""

from __future__ import annotations

import argparse
import json
import os
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
PAPER_PROTOCOL = None  # from config.yaml: filled in main()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f} s] {message}", flush=True)


def left(args) -> float:
    return args.budget_s - (time.perf_counter() - STARTED)


# ---- processes ---------------------------------------------------------------------------------


class Job:
    def __init__(self, name: str, spec: dict, workdir: Path):
        self.name, self.spec = name, dict(spec)
        self.jsonl = workdir / f"{name}.jsonl"
        self.logfile = workdir / f"{name}.log"
        self.jsonl.unlink(missing_ok=True)
        self.spec["jsonl"] = str(self.jsonl)
        self.process: subprocess.Popen | None = None
        self.started = self.ended = None
        self.result: dict | None = None
        self.killed = False

    def start(self, env: dict) -> None:
        self.started = time.perf_counter()
        self.handle = open(self.logfile, "w")
        # Own process group (not a new session): the budget can stop it with its children.
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(self.spec)], stdout=self.handle, stderr=subprocess.STDOUT,
            env=env, cwd=common.REPO, process_group=0,
        )

    def poll(self) -> bool:
        if self.process is None or self.ended is not None:
            return self.ended is not None
        if self.process.poll() is None:
            return False
        self.finish()
        return True

    def finish(self) -> None:
        self.ended = time.perf_counter()
        self.handle.close()
        self.result = common.parse_result(self.logfile.read_text(errors="replace"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.killed = True
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.ended is None and self.process is not None:
            self.finish()

    def progress(self) -> dict:
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
        out = {"name": self.name, "epochs_done": len(ends), "killed": self.killed,
               "ok": bool(self.result and self.result.get("ok")),
               "process_wall_s": (self.ended or time.perf_counter()) - self.started if self.started else None}
        if self.result:
            for key in ("import_s", "setup_s", "error", "device", "params", "after_last_fit_s", "train_run_s",
                        "breakdown"):
                if key in self.result:
                    out[key] = self.result[key]
        if self.ended is not None and not out["ok"] and self.logfile.exists():
            out["log_tail"] = self.logfile.read_text(errors="replace")[-2000:]
        if first and ends:
            out["to_first_fit_s"] = first["wall"] - self.started if self.started else None
            durations = [ends[0]["wall"] - first["wall"]] + [b["wall"] - a["wall"] for a, b in zip(ends, ends[1:])]
            out["epoch_s"] = [round(d, 3) for d in durations]
            out["first_epoch_s"] = durations[0]
            phases = [e.get("phase", "all") for e in ends]
            out["phases"] = phases
            steady = durations[1:]
            if steady:
                out["steady_epoch_s"] = statistics.mean(steady)
                by_phase = {}
                for phase, seconds in zip(phases[1:], steady):
                    by_phase.setdefault(phase, []).append(seconds)
                out["steady_epoch_s_by_phase"] = {p: statistics.mean(v) for p, v in by_phase.items()}
                out["images_per_s"] = self.spec["train_images"] / out["steady_epoch_s"]
            out["images_per_s_overall"] = self.spec["train_images"] * len(ends) / sum(durations)
            out["last_loss"] = ends[-1].get("loss")
            out["last_accuracy"] = ends[-1].get("accuracy")
            out["projected_run_s"] = project(out, self.spec["epochs"])
        return out


def project(progress: dict, epochs: int) -> float | None:
    """Process wall time had it run all epochs: what ran, plus the rest at the last phase's pace."""
    if not progress.get("epoch_s") or progress.get("to_first_fit_s") is None:
        return None
    done = progress["epochs_done"]
    pace = progress["epoch_s"][-1] if done < 3 else statistics.mean(progress["epoch_s"][-min(done - 1, 5):])
    return progress["to_first_fit_s"] + sum(progress["epoch_s"]) + (epochs - done) * pace


def run_jobs(jobs: list[Job], parallel: int, deadline: float, env: dict) -> float:
    """Run the jobs, `parallel` at a time; stop all at the deadline. Returns the wall seconds."""
    started = time.perf_counter()
    pending, running = list(jobs), []
    last_report = started
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            job.start(env)
            running.append(job)
        running = [job for job in running if not job.poll()]
        now = time.perf_counter()
        if now >= deadline:
            log(f"  time budget reached: stopping {len(running)} running, {len(pending)} not started")
            for job in running:
                job.stop()
            for job in pending:
                job.ended = job.started = None
            break
        if now - last_report > 30:
            last_report = now
            log("  " + ", ".join(f"{j.name} {j.progress()['epochs_done']}/{j.spec['epochs']}" for j in jobs if j.started))
        time.sleep(0.5)
    return time.perf_counter() - started


# ---- stages ------------------------------------------------------------------------------------


def stage_prepare(args, work: Path) -> dict:
    started = time.perf_counter()
    dataset = common.make_dataset(work / "data", args.train_images, args.val_images, width=args.photo_width,
                                  height=args.photo_height, processes=min(16, os.cpu_count() or 1))
    made = time.perf_counter() - started
    caches, build = {}, {}
    for size in sorted({size for _, size in args.models}):
        caches[size], build[size] = common.build_cache(work / "data", dataset, size)
    log(f"  {args.train_images}+{args.val_images} JPEGs in {made:.1f} s; caches built in "
        + ", ".join(f"{s} px {t:.1f} s" for s, t in build.items()))
    return {"dataset": dataset, "caches": caches, "jpeg_s": made, "cache_build_s": build}


def base_spec(args, model: str, size: int, optimizer: str, data: dict) -> dict:
    return {
        "task": "train", "trainer": args.trainer, "model": model, "size": size, "optimizer": optimizer,
        "lr": 0.001, "seed": 0, "epochs": args.epochs, "batch": args.batch, "train_images": args.train_images,
        "data": data["caches"][size], "workdir": str(args.work / "runs"), "protocol": args.protocol,
        "precision": args.precision, "jit_compile": True if args.jit else None, "force_jit": args.jit,
        "compile_mode": args.compile_mode, "threads": args.threads,
        "deterministic": None if args.deterministic == "config" else args.deterministic == "true",
        "verbose": 2,
    }


def stage_input(args, data: dict, env: dict, budget: float) -> dict:
    model, size = args.input_model
    spec = {
        "task": "input", "model": model, "size": size, "optimizer": "sgd", "lr": 0.001, "seed": 0,
        "epochs": args.input_epochs, "batch": args.batch, "train_images": args.train_images,
        "data": data["caches"].get(size) or common.build_cache(args.work / "data", data["dataset"], size)[0],
        "archive": data["dataset"]["archive"], "manifest": data["dataset"]["manifest"],
        "decode_workers": args.decode_workers, "threads": args.threads,
    }
    order = ["cache", "decode"] + (["decode", "cache"] if args.input_repeats > 1 else [])
    deadline = time.perf_counter() + budget
    runs: dict[str, list[dict]] = {"cache": [], "decode": []}
    for index, loader in enumerate(order):
        job = Job(f"input_{loader}_{index}", {**spec, "loader": loader}, args.work / "logs")
        run_jobs([job], 1, deadline, env)
        progress = job.progress()
        runs[loader].append(progress)
        log(f"  input {loader}: {fmt(progress.get('images_per_s'))} img/s steady "
            f"({progress['epochs_done']} epochs, s/epoch {progress.get('epoch_s')})")
        if time.perf_counter() >= deadline:
            break
    ratios = [c["images_per_s"] / d["images_per_s"] for c, d in zip(runs["cache"], runs["decode"])
              if c.get("images_per_s") and d.get("images_per_s")]
    return {"spec": spec, "runs": runs, "ratio_cache_over_decode": statistics.median(ratios) if ratios else None}


def grid_jobs(args, data: dict, suffix: str = "") -> list[Job]:
    jobs = []
    for model, size in args.models:
        for optimizer in args.optimizers:
            spec = base_spec(args, model, size, optimizer, data)
            jobs.append(Job(f"{model}_{size}_{optimizer}{suffix}", spec, args.work / "logs"))
    # The slowest first, so that a queue (parallel < jobs) ends sooner.
    return sorted(jobs, key=lambda j: -j.spec["size"])


def stage_grid(args, data: dict, env: dict, budget: float) -> dict:
    jobs = grid_jobs(args, data)
    log(f"  {len(jobs)} runs, {args.parallel} at a time, {args.epochs} epochs, budget {budget:.0f} s")
    wall = run_jobs(jobs, args.parallel, time.perf_counter() + budget, env)
    runs = [job.progress() for job in jobs]
    complete = all(r["epochs_done"] == args.epochs and r["ok"] for r in runs)
    projected = [r.get("projected_run_s") for r in runs]
    return {
        "options": options_of(args), "runs": runs, "wall_s": wall, "complete": complete,
        "projected_wall_s": None if complete or None in projected else max(projected) if args.parallel >= len(jobs) else None,
        "total_images_per_s": sum(args.train_images * r["epochs_done"] for r in runs) / wall if wall else None,
    }


def stage_probes(args, data: dict, env: dict, budget: float) -> list[dict]:
    model, size, optimizer = args.probe_run
    deadline = time.perf_counter() + budget
    results = []
    for probe in args.probes:
        remaining = deadline - time.perf_counter()
        if remaining < args.probe_min_s:
            log(f"  probe {probe['name']}: skipped, {remaining:.0f} s left")
            results.append({"name": probe["name"], "skipped": True})
            continue
        spec = base_spec(args, model, size, optimizer, data)
        spec.update(epochs=args.probe_epochs, protocol=probe.get("protocol", "full"))
        for key, value in probe.items():
            if key == "jit":
                spec["jit_compile"], spec["force_jit"] = (True, True) if value else (None, False)
            elif key != "name":
                spec[key] = value
        job = Job(f"probe_{probe['name']}", spec, args.work / "logs")
        run_jobs([job], 1, min(deadline, time.perf_counter() + args.probe_max_s), env)
        progress = job.progress()
        progress["probe"] = probe
        results.append(progress)
        log(f"  probe {probe['name']}: steady {fmt(progress.get('steady_epoch_s'))} s/epoch, first "
            f"{fmt(progress.get('first_epoch_s'))} s, {fmt(progress.get('images_per_s'))} img/s"
            + (f" ERROR {progress.get('error')}" if progress.get("error") else ""))
    return results


# ---- report ------------------------------------------------------------------------------------


def fmt(value, spec=".2f"):
    return "n/a" if value is None else f"{value:{spec}}"


def options_of(args) -> dict:
    return {"parallel": args.parallel, "precision": args.precision, "jit": args.jit,
            "compile_mode": args.compile_mode, "trainer": args.trainer, "protocol": args.protocol,
            "deterministic": args.deterministic, "epochs": args.epochs, "batch": args.batch,
            "train_images": args.train_images, "val_images": args.val_images}


def report(results: dict) -> str:
    lines = [f"GPU paper grid  {results.get('device', '')}  {results.get('date', '')}"]
    grid = results.get("grid")
    if grid:
        o = grid["options"]
        lines.append(
            f"grid: {len(grid['runs'])} runs, {o['parallel']} at a time, {o['epochs']} epochs, "
            f"{o['train_images']}+{o['val_images']} images, batch {o['batch']}, {o['precision']}, "
            f"jit={o['jit']}, trainer={o['trainer']}, protocol={o['protocol']}, deterministic={o['deterministic']}"
        )
        header = ("run", "epochs", "first s", "s/epoch", "frozen", "fine_tune", "backup s/ep", "img/s",
                  "process s", "projected s", "GPU GB", "loss", "acc")
        rows = [header]
        for r in grid["runs"]:
            phases = r.get("steady_epoch_s_by_phase", {})
            backup = (r.get("breakdown") or {}).get("per_callback_on_epoch_end", {}).get("EpochBackup")
            rows.append((
                r["name"] + (" (cut off)" if r.get("killed") else ""), f"{r['epochs_done']}",
                fmt(r.get("first_epoch_s"), ".1f"), fmt(r.get("steady_epoch_s")),
                fmt(phases.get("frozen")), fmt(phases.get("fine_tune", phases.get("full"))), fmt(backup),
                fmt(r.get("images_per_s"), ".1f"), fmt(r.get("process_wall_s"), ".0f"),
                fmt(r.get("projected_run_s"), ".0f"), fmt((r.get("device") or {}).get("max_memory_gb"), ".1f"),
                fmt(r.get("last_loss"), ".3f"), fmt(r.get("last_accuracy"), ".3f"),
            ))
        lines += table_lines(rows)
        goal = grid["wall_s"] < 300 and grid["complete"]
        lines.append(
            f"grid wall time {grid['wall_s']:.0f} s ({'complete' if grid['complete'] else 'CUT OFF by the budget'}); "
            f"projected {fmt(grid.get('projected_wall_s'), '.0f')} s; all runs together "
            f"{fmt(grid.get('total_images_per_s'), '.0f')} train img/s; goal < 300 s: {'met' if goal else 'NOT met'}"
        )
    inp = results.get("input")
    if inp:
        c, d = inp["runs"]["cache"], inp["runs"]["decode"]
        lines.append(
            f"input path ({inp['spec']['model']} {inp['spec']['size']} px, base frozen): cache "
            f"{fmt(c[0].get('images_per_s') if c else None, '.0f')} img/s, decode every epoch "
            f"{fmt(d[0].get('images_per_s') if d else None, '.0f')} img/s, ratio "
            f"{fmt(inp.get('ratio_cache_over_decode'))}x (goal >= 2x)"
        )
    probes = results.get("probes")
    if probes:
        lines.append(f"probes: one process each, {results.get('probe_run')}, protocol full (all layers train)")
        rows = [("probe", "options", "epochs", "first s", "s/epoch", "train steps s", "backup s/ep", "img/s", "note")]
        for p in probes:
            b = p.get("breakdown") or {}
            note = "skipped: no time left" if p.get("skipped") else (
                p.get("error") or ("stopped at its time limit" if p.get("killed") else ""))
            options = ",".join(f"{k}={v}" for k, v in (p.get("probe") or {}).items() if k != "name")
            rows.append((p["name"], options, str(p.get("epochs_done", "-")), fmt(p.get("first_epoch_s"), ".1f"),
                         fmt(p.get("steady_epoch_s")), fmt(b.get("train_steps")),
                         fmt(b.get("per_callback_on_epoch_end", {}).get("EpochBackup")),
                         fmt(p.get("images_per_s"), ".1f"), note[:70]))
        lines += table_lines(rows)
    prep = results.get("prepare")
    if prep:
        lines.append(f"prepare: JPEGs {prep['jpeg_s']:.1f} s, caches {prep['cache_build_s']}")
    lines.append(f"total wall time {results.get('total_s', 0):.0f} s")
    return "\n".join(lines)


def table_lines(rows) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
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


DEFAULT_PROBES = (
    "eager_fp32:trainer=workflow;"
    "minimal_fp32:trainer=minimal;"
    "eager_bf16:precision=mixed_bfloat16;"
    "jit_fp32:jit=true"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_out"), help="where results.json/.txt go")
    parser.add_argument("--work", default="/tmp/cnn_gpu", help="scratch folder (data, run folders, logs)")
    parser.add_argument("--budget-s", type=float, default=440, help="the whole script stops itself by then")
    parser.add_argument("--stages", default="prepare,input,grid,probes")
    parser.add_argument("--models", type=model_list, default=model_list("resnet50:224,inceptionv3:299"))
    parser.add_argument("--optimizers", type=lambda s: s.split(","), default=["sgd", "adam", "rmsprop"])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--train-images", type=int, default=500)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--photo-width", type=int, default=400)
    parser.add_argument("--photo-height", type=int, default=350)
    parser.add_argument("--parallel", type=int, default=6, help="grid processes at once on the GPU")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--jit", action="store_true", help="compile(jit_compile=True): torch.compile of the steps")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode with --jit (e.g. max-autotune-no-cudagraphs)")
    parser.add_argument("--trainer", default="workflow", choices=["workflow", "minimal"])
    parser.add_argument("--protocol", default="config", help="config (the paper's fine_tune), full or transfer")
    parser.add_argument("--deterministic", default="config", choices=["config", "true", "false"])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per process (the train rule's threads)")
    parser.add_argument("--grid-budget-s", type=float, default=280, help="at most this for the grid (the goal: 300)")
    parser.add_argument("--input-model", type=lambda s: model_list(s)[0], default=("resnet50", 224))
    parser.add_argument("--input-epochs", type=int, default=3)
    parser.add_argument("--input-repeats", type=int, default=1)
    parser.add_argument("--input-budget-s", type=float, default=70)
    parser.add_argument("--decode-workers", type=int, default=1)
    parser.add_argument("--probes", type=probe_list, default=probe_list(DEFAULT_PROBES),
                        help=f"'name:key=value,...;...' (default {DEFAULT_PROBES!r})")
    parser.add_argument("--probe-run", type=lambda s: (s.split(":")[0], int(s.split(":")[1]), s.split(":")[2]),
                        default=("resnet50", 224, "adam"), help="model:size:optimizer of the probes")
    parser.add_argument("--probe-epochs", type=int, default=4)
    parser.add_argument("--probe-min-s", type=float, default=25, help="skip a probe with less time left")
    parser.add_argument("--probe-max-s", type=float, default=60, help="stop a probe after this")
    parser.add_argument("--reserve-s", type=float, default=10, help="kept back at the end for the report")
    args = parser.parse_args()
    args.work = Path(args.work)
    out = Path(args.out)
    (args.work / "logs").mkdir(parents=True, exist_ok=True)
    if args.protocol == "config":
        args.protocol = common.workflow_config({})["training"]["protocol"]["mode"]
    stages = args.stages.split(",")

    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "torch"), PYTHONUNBUFFERED="1")
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv, "options": options_of(args),
                     "machine": common.cpu_description(), "budget_s": args.budget_s}
    log(f"stages {stages}; budget {args.budget_s:.0f} s")
    save(results, out)
    try:
        data = None
        if "prepare" in stages:
            log("prepare")
            results["prepare"] = data = stage_prepare(args, args.work)
            save(results, out)
        # Only now: CUDA is not initialised in this process before prepare's worker processes fork.
        try:
            import torch

            results["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
            results["torch"] = torch.__version__
        except Exception as error:  # noqa: BLE001
            results["device"] = f"torch unavailable: {error}"
        log(f"device {results['device']}")
        if data and "input" in stages:
            budget = min(args.input_budget_s, left(args) - args.reserve_s)
            if budget > 30:
                log(f"input path (budget {budget:.0f} s)")
                results["input"] = stage_input(args, data, env, budget)
                save(results, out)
        if data and "grid" in stages:
            reserve = args.reserve_s + (args.probe_min_s if "probes" in stages and args.probes else 0)
            budget = min(args.grid_budget_s, left(args) - reserve)
            if budget > 30:
                log(f"grid (budget {budget:.0f} s)")
                results["grid"] = stage_grid(args, data, env, budget)
                save(results, out)
        results["probe_run"] = ":".join(map(str, args.probe_run))
        if data and "probes" in stages and args.probes:
            budget = left(args) - args.reserve_s
            log(f"probes (budget {budget:.0f} s)")
            results["probes"] = stage_probes(args, data, env, budget)
            save(results, out)
    finally:
        save(results, out)
        print(report(results), flush=True)


if __name__ == "__main__":
    main()
