"""Where one steady epoch's time goes, for the workflow's training and for the hand-written script.

    python benchmarks/epoch_profile.py WORKDIR [--arm deterministic] [--seed 0] [--epoch 2]

WORKDIR is a finished `benchmarks/run.py --workdir WORKDIR` (stage train). Each side is run again in this
process, on that run's own settings (its run.json) and cache, with one epoch traced: the TensorFlow profiler
(every op and thread) and cProfile (the training thread's Python). Tracing slows the epoch it traces, so these
runs are not timed; run.py's are. Op time is an op's own time, without the ops it runs inside it, summed
over threads, grouped by what the op belongs to: the input feed, augmentation, preprocessing, dtype casts,
the backbone's forward and backward pass, the head, loss and metrics, the optimizer, validation.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "workflow_scripts"), str(HERE)]
from cnn_study import run_layout  # noqa: E402
from cnn_study.image_cache import CACHE_FOLDER, cache_paths  # noqa: E402

# (category, substrings of an op's name or type; the first category that matches wins). Names are the
# traced functions' scopes: Keras names them after the layers.
CATEGORIES = [
    ("input: tf.data / PyDataset", ("Iterator", "Dataset", "PyFunc", "generator", "Prefetch")),
    ("dtype casts", (":Cast",)),
    ("optimizer update", ("/sgd/", "/SGD/", "/adam/", "/rmsprop/", "AssignSubVariableOp", "ResourceApply")),
    ("loss and metrics", ("compile_loss", "compile_metrics", "/loss", "categorical_crossentropy", "LogSoftmax")),
    ("backward pass", ("gradient_tape/",)),
    ("augmentation", ("random_flip", "random_rotation", "random_zoom")),
    ("preprocessing", ("preprocessing", "/lambda", "/rescaling")),
    (
        "head (forward)",
        ("/pool/", "/head_", "/predictions", "global_average_pooling", "/batch_normalization", "/dropout", "/dense"),
    ),
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
    path = trace_dir / "python.pstats"
    if not path.exists():
        return {}
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():
        rows.append((own, cumulative, calls, f"{Path(filename).name}:{line}({function})"))
    rows.sort(reverse=True)
    return {
        "total_own_s": sum(r[0] for r in rows),
        "top_own": [{"function": r[3], "own_s": r[0], "cumulative_s": r[1], "calls": r[2]} for r in rows[:top]],
    }


def summarize(trace_dir: str | Path) -> dict:
    trace_dir = Path(trace_dir)
    window = json.loads((trace_dir / "window.json").read_text()) if (trace_dir / "window.json").exists() else {}
    return {"window": window, "ops": op_split(trace_dir), "python": python_split(trace_dir)}


def report(name: str, summary: dict) -> str:
    lines = [
        f"{name}: traced epoch {summary['window'].get('wall_s', 0):.2f} s wall, "
        f"{summary['window'].get('cpu_s', 0):.2f} CPU-s (with the profiler's own cost)"
    ]
    ops = summary["ops"]
    if ops:
        total = sum(ops["categories"].values())
        lines.append(
            f"  op time {total:.2f} s: "
            + ", ".join(f"{k} {v:.2f} ({v / total:.0%})" for k, v in ops["categories"].items() if v >= 0.005)
        )
        lines.append("  costliest op types: " + ", ".join(f"{k} {v:.2f}" for k, v in ops["op_types"].items()))
    python = summary["python"]
    if python:
        lines.append(f"  training thread's Python, own time {python['total_own_s']:.2f} s; most:")
        lines += [
            f"    {r['own_s']:.3f} s own, {r['cumulative_s']:.3f} s cum, {r['calls']} calls  {r['function']}"
            for r in python["top_own"]
        ]
    return "\n".join(lines)


class EpochTracer:
    """Keras callback: traces epoch `epoch` (1-based) from its start to its end into `directory`."""

    def __init__(self, keras, directory: Path, epoch: int):
        tracer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, index, logs=None):
                if index + 1 == epoch:
                    tracer.start()

            def on_epoch_end(self, index, logs=None):
                if index + 1 == epoch:
                    tracer.stop()

        self.directory, self.callback, self.tensorflow = directory, Callback(), keras.backend.backend() == "tensorflow"

    def start(self) -> None:
        if self.tensorflow:
            import tensorflow as tf

            tf.profiler.experimental.start(str(self.directory / "tf"))
        self.profile, self.window = cProfile.Profile(), (time.perf_counter(), time.process_time())
        self.profile.enable()

    def stop(self) -> None:
        self.profile.disable()
        wall, cpu = time.perf_counter() - self.window[0], time.process_time() - self.window[1]
        if self.tensorflow:
            import tensorflow as tf

            tf.profiler.experimental.stop()
        self.profile.dump_stats(str(self.directory / "python.pstats"))
        (self.directory / "window.json").write_text(json.dumps({"wall_s": wall, "cpu_s": cpu}))


def trace(workdir: Path, run: dict, side: str, epoch: int, directory: Path, threads: int) -> dict:
    """Run one side again with `epoch` traced. Keras' fit gets the tracer as one more callback (a profiler's
    only way in: neither side takes callbacks from outside)."""
    settings = json.loads((workdir / run_layout.run_folder(run) / run_layout.PROVENANCE).read_text())["settings"]
    data = cache_paths(workdir / CACHE_FOLDER.format(size=settings["input_size"]))
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["KERAS_BACKEND"] = settings["backend"]
    import keras

    tracer, fit = EpochTracer(keras, directory, epoch), keras.Model.fit
    keras.Model.fit = lambda model, *args, callbacks=(), **kwargs: fit(
        model, *args, callbacks=[*callbacks, tracer.callback], **kwargs
    )
    if side == "workflow":
        from cnn_study.training import train_run

        scratch = directory / "run"
        train_run(
            settings,
            data,
            None,
            scratch / "history.csv",
            None,
            scratch / "run.json",
            scratch / "resume",
            threads,
            keep="none",
        )
    else:
        import handwritten

        handwritten.train(settings, data, "arrays", str(directory / "epochs.csv"), threads)
    return summarize(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--arm", default="deterministic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch", type=int, default=2, help="the traced epoch, 1-based (default: the first steady)")
    parser.add_argument("--side", choices=["workflow", "handwritten"], help="one side, in this process")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, help="trace folder (default: a temporary one)")
    args = parser.parse_args()
    run = {"arm": args.arm, "model": "resnet50", "optimizer": "sgd", "lr": "0.001", "seed": args.seed}
    if args.side:  # each side in a process of its own: op determinism and threads are process-wide
        out = args.out or Path(tempfile.mkdtemp(prefix="trace_"))
        print(report(f"{args.side} ({args.arm})", trace(args.workdir, run, args.side, args.epoch, out, args.threads)))
        return
    import subprocess

    for side in ("workflow", "handwritten"):
        out = (args.out or Path(tempfile.mkdtemp(prefix="trace_"))) / side
        command = [sys.executable, __file__, str(args.workdir), "--arm", args.arm, "--seed", str(args.seed)]
        command += ["--epoch", str(args.epoch), "--side", side, "--threads", str(args.threads), "--out", str(out)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
