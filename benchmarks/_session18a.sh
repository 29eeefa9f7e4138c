set -x
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv
timeout 240 python3 -m pytest -q -x tests/test_scaled_mm.py -k "wgmma" 2>&1 | tail -5
timeout 120 python3 benchmarks/probe_wgmma.py check 2>&1 | grep -v "ok$" | tail -8
timeout 400 python3 benchmarks/probe_wgmma.py split 2>&1 | tee $OUT/probe_split.md | grep -v "^$"
