"""Where one traced epoch's time goes, from what common.EpochTracer wrote (TensorFlow profiler and cProfile).

    python benchmarks/epoch_profile.py TRACE_DIR [TRACE_DIR ...]

Op time: the TensorFlow profiler's per-op events on the executor threads (an op's own time, without the ops it
runs inside it, summed over threads; intra-op helper threads are counted in the op that calls them), grouped
by what the op belongs to: the input feed (tf.data and the generator behind a PyDataset), the augmentation
layers, the ImageNet preprocessing, dtype casts, the backbone's forward and backward pass, the head, the loss
and metrics, the optimizer's update, validation. Python: cProfile of the training thread, by function.
"""

from __future__ import annotations

import argparse
import collections
import json
import pstats
from pathlib import Path

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
        f"{name}: traced epoch {summary['window'].get('epoch')}, {summary['window'].get('wall_s', 0):.2f} s wall, "
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trace_dirs", nargs="+")
    args = parser.parse_args()
    for trace_dir in args.trace_dirs:
        print(report(trace_dir, summarize(trace_dir)))


if __name__ == "__main__":
    main()
