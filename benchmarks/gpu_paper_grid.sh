#!/usr/bin/env bash
# The paper's grid on one GPU, and the speed levers beside it, in one call of at most 10 minutes on a
# machine with no internet and no TensorFlow: Snakemake runs benchmarks/Snakefile with benchmarks/gpu.yaml.
#
#   bash benchmarks/gpu_paper_grid.sh
#
# Needs python3 with JAX (CUDA) and PyTorch, and .whl/ (gitignored, carried with the working tree; filled by
# benchmarks/gpu_carry.sh): the missing wheels and train.zip, the real mini archive. Everything goes to $OUT
# (default ./gpu_out): this script's log, env.txt, nvidia_smi.csv (GPU use every second), runs.txt (each
# run's epochs, first and steady epoch, ms per step, projected time) and the work folder's results and logs.
# TOTAL_S (default 540): the whole script's time; each stage gets its share and is stopped at its end.
# Rehearse on a CPU: PYTHON=.venv/bin/python SKIP_WHEELS=1 EXTRA_CONFIG=tiny.yaml bash benchmarks/gpu_paper_grid.sh
set -euo pipefail
START=$(date +%s)
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out} WORK=${WORK:-/tmp/cnn_gpu} PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/gpu_paper_grid.log") 2>&1
{ date -Is; nproc; "$PY" --version; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; } \
  > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
ARCHIVE=${ARCHIVE:-$PWD/.whl/train.zip}
[ -f "$ARCHIVE" ] || ARCHIVE=$(realpath ../shared/data/dogs-vs-cats-mini/train.zip)
printf 'dataset:\n  source: %s\n' "$ARCHIVE" > "$WORK/local.yaml"
FILES=(config.yaml benchmarks/gpu.yaml "$WORK/local.yaml" ${EXTRA_CONFIG:+"$EXTRA_CONFIG"})
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 1000 > "$OUT/nvidia_smi.csv" &
  trap 'kill $! 2>/dev/null || true; cp -r "$WORK/logs" "$WORK/results" "$OUT/" 2>/dev/null || true' EXIT
fi

left() { echo $(( ${TOTAL_S:-540} - ($(date +%s) - START) )); }
# stage ARMS GPU_SLOTS SECONDS: train the arms' runs, GPU_SLOTS at once on the one GPU, stopped after SECONDS
stage() {
  local targets
  targets=$("$PY" benchmarks/run.py --configfile "${FILES[@]}" --targets $1)
  echo "== $(date +%T) arms $1: $2 at once, at most $3 s"
  timeout "$3" "$PY" -m snakemake -s benchmarks/Snakefile --directory "$WORK" --configfile "${FILES[@]}" \
    --cores "$(nproc)" --resources gpu="$2" --set-threads train=2 --keep-going --quiet rules -- $targets \
    || echo "== arms $1: stopped or failed (exit $?)"
}
stage paper 6 $(( $(left) - 170 ))
stage "spe1 spe50 bfloat16" 1 $(( $(left) - 90 ))
stage torch 6 $(( $(left) - 60 ))
# the results stage (metrics, tables, claims, figures), where every run above finished
echo "== $(date +%T) the results stage, at most $(( $(left) - 20 )) s"
timeout $(( $(left) - 20 )) "$PY" -m snakemake -s benchmarks/Snakefile --directory "$WORK" --configfile "${FILES[@]}" \
  --cores "$(nproc)" --allowed-rules extract_metrics plot_overview plot_model_figures plot_arms make_tables all \
  --quiet rules || echo "== the results stage: stopped or not every run finished (exit $?)"
"$PY" benchmarks/run.py --workdir "$WORK" --configfile "${FILES[@]}" --runs paper torch spe1 spe50 bfloat16 \
  | tee "$OUT/runs.txt"
echo "== done in $(( $(date +%s) - START )) s"
