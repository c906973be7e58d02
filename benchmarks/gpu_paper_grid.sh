#!/usr/bin/env bash
# The paper's grid on one GPU machine with no internet and no TensorFlow (KERAS_BACKEND=torch).
#
#   bash benchmarks/gpu_paper_grid.sh [options of benchmarks/gpu_paper_grid.py]
#
# Needs: python3 with PyTorch (CUDA) and the wheels in .whl/ (keras 3.15.1, namex, optree, and for
# the workflow's modules jsonschema, referencing, jsonschema-specifications, rpds-py, ImageHash,
# PyWavelets); absl-py, rich, h5py, ml-dtypes, packaging, numpy, pandas, pillow, pyyaml, scipy are
# expected on the machine. See docs/benchmarks.md for how .whl/ is filled.
#
# Everything goes to $OUT (default ./gpu_out): gpu_paper_grid.log (this script's whole output),
# results.json and results.txt (rewritten after each stage), nvidia_smi.csv (GPU use every second),
# env.txt. TOTAL_S (default 450) is the time the whole script may take: the driver gets what is
# left of it after the set-up and stops itself in time, reporting what it measured.
set -euo pipefail
export PYTHONUNBUFFERED=1
START=$(date +%s)
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_paper_grid.log") 2>&1

echo "== $(date -Is) on $(hostname): bash benchmarks/gpu_paper_grid.sh $*"
{
  date -Is; uname -a; nproc; "${PYTHON:-python3}" --version
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || echo "no nvidia-smi"
  "${PYTHON:-python3}" -m pip list 2>/dev/null | grep -iE '^(torch|numpy|pandas|pillow|pyyaml|h5py|ml.dtypes|rich|absl|packaging|scipy|triton) ' || true
} > "$OUT/env.txt" 2>&1 || true
cat "$OUT/env.txt"

PY=${PYTHON:-python3}   # PYTHON=... to test elsewhere (e.g. a CPU venv with torch and keras)
SITE=${SITE:-/tmp/site}
if [ "${SKIP_WHEELS:-0}" != 1 ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  export PYTHONPATH=$SITE:$PWD/workflow_scripts${PYTHONPATH:+:$PYTHONPATH}
else
  echo "note: wheels not installed (SKIP_WHEELS=1 or no .whl/): using the keras already installed"
  export PYTHONPATH=$PWD/workflow_scripts${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=torch
"$PY" - <<'EOF'
import importlib.util, keras, torch
print("keras", keras.__version__, "backend", keras.backend.backend(), "| torch", torch.__version__,
      "| cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("tensorflow importable:", importlib.util.find_spec("tensorflow") is not None, "(not used)")
EOF

SMI_PID=""
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,power.draw \
    --format=csv -lms 1000 > "$OUT/nvidia_smi.csv" 2>/dev/null &
  SMI_PID=$!
fi
cleanup() { if [ -n "$SMI_PID" ]; then kill "$SMI_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

BUDGET=$(( ${TOTAL_S:-450} - ($(date +%s) - START) ))
echo "== set-up took $(( $(date +%s) - START )) s; the driver gets ${BUDGET} s"
"$PY" benchmarks/gpu_paper_grid.py --out "$OUT" --budget-s "$BUDGET" "$@"
echo "== done in $(( $(date +%s) - START )) s"
