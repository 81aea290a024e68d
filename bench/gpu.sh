#!/usr/bin/env bash
# The serving and generative-replies benchmarks on CUDA, for the device machine (short enough for
# one session on it). Results go to $OUT (or bench/results). Needs the project's venv (make venv)
# and a champion or --model PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
PY="${PY:-.venv/bin/python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" || true
"$PY" bench/serving.py --device cuda --seconds 6 --max-batch-size 128 --max-wait-ms 2 \
  --out "$OUT" "$@" 2>&1 | tee "$OUT/serving-cuda.txt"
# generative replies (SmolLM2 in bf16): load times, a 40-token reply alone and in batches
"$PY" bench/generative.py --device cuda --seconds 8 --concurrency 1 8 32 --max-batch-size 32 \
  --out "$OUT" "$@" 2>&1 | tee "$OUT/generative-cuda.txt"
