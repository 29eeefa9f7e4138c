#!/usr/bin/env bash
# One call on a GPU machine: the whole test suite, `lmkernels verify`, and compute-sanitizer over the
# edge shapes, run side by side (all three are correctness checks, so sharing the GPU is harmless).
# Logs go to $OUT (default /tmp/lmkernels-check). Benchmarks are separate (gpu_bench.sh): they need a
# quiet GPU.
#   bash benchmarks/gpu_check.sh [pytest args...]
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/lmkernels-check}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-}:$PWD
gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name(0).split()[1].lower())" 2>/dev/null || echo gpu)
# xdist: the suite is bound by Triton's compiles on the host (~5 min serial on 16 cores' machine).
limit=${CHECK_TIMEOUT:-3000}  # seconds for each of the three
workers=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8" || echo "")
# pytest-timeout, where installed (pip install .whl/pytest_timeout-*.whl): a test that hangs (a GPU
# deadlock: session 35's cluster finish with a 2-element tile) fails by name after 240 s instead of
# the whole suite stopping at the outer timeout with nothing named
hang=$(python3 -c "import pytest_timeout" 2>/dev/null && echo "--timeout 240 --timeout-method=thread" || echo "")
(timeout "$limit" python3 -m pytest -q $workers $hang -p no:cacheprovider -p no:benchmark "$@" >"$OUT/suite_$gpu.txt" 2>&1; echo "rc=$?" >>"$OUT/suite_$gpu.txt") &
(timeout "$limit" python3 -m lmkernels.cli verify >"$OUT/verify_$gpu.txt" 2>&1; echo "rc=$?" >>"$OUT/verify_$gpu.txt") &
if command -v compute-sanitizer >/dev/null; then
  (timeout "$limit" compute-sanitizer --tool memcheck --error-exitcode 1 python3 benchmarks/sanitize_edges.py \
     >"$OUT/sanitize_$gpu.txt" 2>&1; echo "rc=$?" >>"$OUT/sanitize_$gpu.txt") &
fi
wait
tail -n 3 "$OUT"/*.txt
