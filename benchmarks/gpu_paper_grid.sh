#!/usr/bin/env bash
# The paper's grid on real photos and the speed levers beside it, on one GPU machine with no
# internet and no TensorFlow, in one run of at most 10 minutes (benchmarks/gpu_paper_grid.py).
#
#   bash benchmarks/gpu_paper_grid.sh [options of benchmarks/gpu_paper_grid.py]
#
# Needs: python3 with JAX (CUDA) and PyTorch (CUDA), and .whl/ (gitignored, carried with the working
# tree): the wheels of keras 3.15.1, namex, optree, jsonschema (+ referencing,
# jsonschema-specifications, rpds-py, attrs), ImageHash, PyWavelets, matplotlib (+ contourpy, cycler,
# fonttools, kiwisolver, pyparsing, python-dateutil, six) for Python 3.12, and train.zip, a copy of
# ../shared/data/dogs-vs-cats-mini/train.zip. numpy, pandas, pillow, pyyaml, scipy, h5py, rich,
# ml-dtypes, absl-py and packaging are expected on the machine. docs/benchmarks.md says how .whl/ is
# filled and how the run is launched.
#
# Everything goes to $OUT (default ./gpu_out): gpu_paper_grid.log (this script's whole output),
# results.json and results.txt (rewritten after each stage), results/ (the grid's histories, metric
# CSVs, tables and figures), nvidia_smi.csv (GPU use every second), env.txt, logs/ (every process's
# log). TOTAL_S (default 540) is the time the whole script may take: the driver gets what is left
# of it after the set-up and stops itself in time, reporting what it measured.
# PYTHON=... runs it elsewhere, e.g. PYTHON=.venv/bin/python SKIP_WHEELS=1 on a CPU to rehearse.
set -euo pipefail
export PYTHONUNBUFFERED=1
START=$(date +%s)
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_paper_grid.log") 2>&1

PY=${PYTHON:-python3}
echo "== $(date -Is) on $(hostname): bash benchmarks/gpu_paper_grid.sh $*"
{
  date -Is; uname -a; nproc; "$PY" --version
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || echo "no nvidia-smi"
  "$PY" -m pip list 2>/dev/null | grep -iE '^(torch|jax|jaxlib|jax.cuda.*|numpy|pandas|pillow|pyyaml|h5py|ml.dtypes|scipy|matplotlib|triton) ' || true
} > "$OUT/env.txt" 2>&1 || true
cat "$OUT/env.txt"

SITE=${SITE:-/tmp/site}
if [ "${SKIP_WHEELS:-0}" != 1 ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  export PYTHONPATH=$SITE:$PWD/workflow_scripts${PYTHONPATH:+:$PYTHONPATH}
else
  echo "note: wheels not installed (SKIP_WHEELS=1 or no .whl/): using the packages already installed"
  export PYTHONPATH=$PWD/workflow_scripts${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" - <<'EOF'
# versions without importing a backend (importing keras would load its default backend)
import importlib.metadata, importlib.util
for name in ("keras", "jax", "jaxlib", "torch", "matplotlib", "ImageHash", "jsonschema", "tensorflow"):
    try:
        print(name, importlib.metadata.version(name), end="; ")
    except importlib.metadata.PackageNotFoundError:
        print(name, "missing", end="; ")
print("keras from", importlib.util.find_spec("keras").origin)
EOF

SMI_PID=""
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,power.draw \
    --format=csv -lms 1000 > "$OUT/nvidia_smi.csv" 2>/dev/null &
  SMI_PID=$!
fi
cleanup() {
  if [ -n "$SMI_PID" ]; then kill "$SMI_PID" 2>/dev/null || true; fi
  if [ -d "${WORK:-/tmp/cnn_gpu}/logs" ]; then cp -r "${WORK:-/tmp/cnn_gpu}/logs" "$OUT/" 2>/dev/null || true; fi
}
trap cleanup EXIT

BUDGET=$(( ${TOTAL_S:-540} - ($(date +%s) - START) ))
echo "== set-up took $(( $(date +%s) - START )) s; the driver gets ${BUDGET} s"
"$PY" benchmarks/gpu_paper_grid.py --out "$OUT" --work "${WORK:-/tmp/cnn_gpu}" --budget-s "$BUDGET" "$@"
echo "== done in $(( $(date +%s) - START )) s"
