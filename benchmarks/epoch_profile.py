"""Where one steady epoch's time goes, for the workflow's training and for the hand-written script.

    python benchmarks/epoch_profile.py WORKDIR [--arm deterministic] [--seed 0] [--epoch 2]

WORKDIR: a finished `benchmarks/run.py --workdir WORKDIR`. Each side runs again on that run's settings (run.json)
and cache, one epoch traced (not timed): the TensorFlow profiler's op time (an op's own time, summed over
threads) by what the op belongs to, and cProfile of the training thread's Python."""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "workflow_scripts"), str(HERE)]
import handwritten  # noqa: E402
import run as bench  # noqa: E402

from cnn_study import run_layout  # noqa: E402
from cnn_study.image_cache import CACHE_FOLDER, cache_paths  # noqa: E402

# (category, substrings of an op's name or type; the first category that matches wins). Names are the
# traced functions' scopes: Keras names them after the layers.
CATEGORIES = [
    ("input: tf.data / PyDataset", ("Iterator", "Dataset", "PyFunc", "generator", "Prefetch")),
    ("dtype casts", (":Cast",)),
    ("optimizer update", ("/sgd/", "/SGD/", "/adam/", "/rmsprop/", "AssignSubVariableOp", "ResourceApply")),
    ("loss and metrics", ("compile_loss", "compile_metrics", "/loss", "categorical_crossentropy", "LogSoftmax")),
    ("batch normalization", ("_bn_", "_bn/", "BatchNorm", "batch_normalization")),
    ("backward pass", ("gradient_tape/",)),
    ("augmentation", ("random_flip", "random_rotation", "random_zoom")),
    ("preprocessing", ("preprocessing", "/lambda", "/rescaling")),
    ("head (forward)", ("/pool/", "/head_", "/predictions", "global_average_pooling", "/dropout", "/dense")),
    ("backbone (forward)", ("resnet50", "inception_v3", "mobilenetv2", "vgg16", "alexnet")),
]
SKIPPED = ("ExecutorState::Process", "ThreadpoolListener", "ExecutorDoneCallback", "ParallelFor")


def categorize(name: str) -> str:
    for category, needles in CATEGORIES:
        if any(needle in name for needle in needles):
            return category
    return "other ops"


def op_split(trace_dir: Path) -> dict:
    """Seconds per category and the ten costliest op types, from the trace's host plane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted((trace_dir / "tf").rglob("*.xplane.pb"))
    if not files:
        return {}
    space = xplane_pb2.XSpace()
    space.ParseFromString(files[-1].read_bytes())
    by_category: dict[str, float] = collections.defaultdict(float)
    by_type: dict[str, float] = collections.defaultdict(float)
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            data_thread = line.name.startswith("tf_data")
            events = []
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name.startswith(SKIPPED):
                    continue
                events.append((event.offset_ps, event.duration_ps, name))
            if line.name == "python":
                continue  # the training thread waits in the step function there: its Python is cProfile's
            own = _own_times(events)
            for name, picoseconds in own.items():
                seconds = picoseconds / 1e12
                category = "input: tf.data / PyDataset" if data_thread else categorize(name)
                by_category[category] += seconds
                if ":" in name:
                    by_type[name.rsplit(":", 1)[1]] += seconds
    top = dict(sorted(by_type.items(), key=lambda item: -item[1])[:10])
    return {"categories": dict(sorted(by_category.items(), key=lambda item: -item[1])), "op_types": top}


def _own_times(events: list[tuple[int, int, str]]) -> dict[str, int]:
    own: dict[str, int] = collections.defaultdict(int)
    stack: list[tuple[int, str]] = []  # (end, name)
    for start, duration, name in sorted(events, key=lambda e: (e[0], -e[1])):
        while stack and stack[-1][0] <= start:
            stack.pop()
        if stack:
            own[stack[-1][1]] -= duration
        own[name] += duration
        stack.append((start + duration, name))
    return own


def python_split(trace_dir: Path, top: int = 12) -> dict:
    """The training thread's Python: total seconds and the functions with the most own time."""
    stats = pstats.Stats(str(trace_dir / "python.pstats")).stats.items()
    rows = sorted(((own, cum, calls, f"{Path(file).name}:{line}({name})") for (file, line, name), (_, calls, own, cum, _)
                   in stats), reverse=True)  # fmt: skip
    return {"total_own_s": sum(r[0] for r in rows), "top_own": rows[:top]}


def summarize(trace_dir: Path) -> dict:
    window = json.loads((trace_dir / "window.json").read_text())
    return {"window": window, "ops": op_split(trace_dir), "python": python_split(trace_dir)}


def report(name: str, summary: dict) -> str:
    window, ops, python = summary["window"], summary["ops"], summary["python"]
    total = sum(ops["categories"].values())
    return "\n".join([
        f"{name}: traced epoch {window['wall_s']:.2f} s wall, {window['cpu_s']:.2f} CPU-s (with the profiler's cost)",
        f"  op time {total:.2f} s: "
        + ", ".join(f"{k} {v:.2f} ({v / total:.0%})" for k, v in ops["categories"].items() if v >= 0.005),
        "  costliest op types: " + ", ".join(f"{k} {v:.2f}" for k, v in ops["op_types"].items()),
        f"  training thread's Python, own time {python['total_own_s']:.2f} s; most:",
        *(f"    {own:.3f} s own, {cum:.3f} s cum, {calls} calls  {where}" for own, cum, calls, where in python["top_own"]),
    ])  # fmt: skip


def epoch_tracer(keras, directory: Path, epoch: int):
    """A Keras callback tracing epoch `epoch` (1-based), from its start to its end, into `directory`."""
    import tensorflow as tf  # its profiler: the TensorFlow backend only

    window = {}

    def start(index, logs=None):
        if index + 1 == epoch:
            tf.profiler.experimental.start(str(directory / "tf"))
            window.update(profile=cProfile.Profile(), wall=time.perf_counter(), cpu=time.process_time())
            window["profile"].enable()

    def stop(index, logs=None):
        if index + 1 == epoch:
            window["profile"].disable()
            seconds = {"wall_s": time.perf_counter() - window["wall"], "cpu_s": time.process_time() - window["cpu"]}
            tf.profiler.experimental.stop()
            window["profile"].dump_stats(str(directory / "python.pstats"))
            (directory / "window.json").write_text(json.dumps(seconds))

    return keras.callbacks.LambdaCallback(on_epoch_begin=start, on_epoch_end=stop)


def trace(workdir: Path, run: dict, side: str, epoch: int, directory: Path, threads: int) -> dict:
    """Run one side again with `epoch` traced. Keras' fit gets the tracer as one more callback (a profiler's
    only way in: neither side takes callbacks from outside)."""
    settings = json.loads((workdir / run_layout.run_folder(run) / run_layout.PROVENANCE).read_text())["settings"]
    data = cache_paths(workdir / CACHE_FOLDER.format(size=settings["input_size"]))
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["KERAS_BACKEND"] = settings["backend"]
    import keras

    tracer, fit = epoch_tracer(keras, directory, epoch), keras.Model.fit
    keras.Model.fit = lambda model, *args, callbacks=(), **kwargs: fit(
        model, *args, callbacks=[*callbacks, tracer], **kwargs
    )
    if side == "workflow":
        from cnn_study.training import train_run

        run = directory / "run"
        train_run(settings, data, None, run / run_layout.HISTORY, None, run / run_layout.PROVENANCE,
                  run / run_layout.RESUME, threads, keep="none")  # fmt: skip
    else:
        handwritten.train(settings, data, "arrays", str(directory / "epochs.csv"), threads)
    return summarize(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--arm", default="deterministic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch", type=int, default=2, help="the traced epoch, 1-based (default: the first steady)")
    parser.add_argument("--side", choices=["workflow", "handwritten"], help="one side only, in this process")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="trace_")), help="trace folder")
    args = parser.parse_args()
    if args.side:
        run = {"arm": args.arm, "seed": args.seed, **bench.RUN}
        summary = trace(args.workdir, run, args.side, args.epoch, args.out / args.side, args.threads)
        print(report(f"{args.side} ({args.arm})", summary))
        return
    for side in ("workflow", "handwritten"):  # each in a process of its own: determinism and threads are global
        subprocess.run([sys.executable, *sys.argv, "--side", side, "--out", str(args.out)], check=True)


if __name__ == "__main__":
    main()
