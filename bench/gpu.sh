#!/usr/bin/env bash
# The serving benchmark on CUDA, for the device machine (< 5 minutes). Results go to $OUT
# (or bench/results). Needs the project's venv (make venv) and a champion or --model PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
PY="${PY:-.venv/bin/python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" || true
"$PY" bench/serving.py --device cuda --seconds 6 --max-batch-size 128 --max-wait-ms 2 \
  --out "$OUT" "$@" 2>&1 | tee "$OUT/serving-cuda.txt"
