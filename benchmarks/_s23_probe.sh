set -x
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv
lscpu | grep "Model name"
python3 benchmarks/host_overhead.py 2>&1 | tail -12
python3 benchmarks/probe_scaled_mm.py prefetch > $OUT/probe_prefetch.md 2>&1
grep -v "^$" $OUT/probe_prefetch.md | grep -v "^|---" | cut -c1-110
