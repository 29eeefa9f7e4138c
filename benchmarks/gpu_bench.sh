#!/usr/bin/env bash
# Benchmarks on a quiet GPU: `lmkernels bench FAMILY` for each family named, markdown and CSV into $OUT
# (default /tmp/lmkernels-bench); `host` runs benchmarks/host_overhead.py. Liger-Kernel is measured
# when importable (carry its wheel in .whl/ on a machine without network: it is installed to /tmp/site).
#   bash benchmarks/gpu_bench.sh norm activation rotary sampling host
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/lmkernels-bench}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:-}:$PWD
for fam in "$@"; do
  if [ "$fam" = host ]; then
    python3 benchmarks/host_overhead.py >"$OUT/host.txt" 2>&1
  else
    python3 -m lmkernels.cli bench "$fam" --csv "$OUT/$fam.csv" >"$OUT/$fam.md" 2>&1
  fi
  echo "$fam rc=$?"
done
