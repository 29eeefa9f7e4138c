export PYTHONPATH=$PWD
CHECK_TIMEOUT=270 OUT=$OUT bash benchmarks/gpu_check.sh 2>&1 | tail -n 12
grep -E "passed|failed|error" $OUT/suite_*.txt | tail -n 3
grep -iE "ERROR SUMMARY|rc=" $OUT/sanitize_*.txt | tail -n 3
OUT=$OUT timeout 310 bash benchmarks/gpu_bench.sh scaled_mm 2>&1 | tail -n 5
ls $OUT
