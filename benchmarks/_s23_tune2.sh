export PYTHONPATH=$PWD
rm -rf _tune23 && mkdir _tune23 && cp -r lmkernels/configs/scaled_mm _tune23/
python3 -m lmkernels.cli tune scaled-mm --out _tune23 --force --dtype fp8 --nk 10240,8192 8192,8192 57344,8192 8192,28672 --m 24,32 --max-minutes 4 > $OUT/tune_s23_fp8_70b_m24.log 2>&1
grep "µs (heur" $OUT/tune_s23_fp8_70b_m24.log
cd _tune23 && tar cf $OUT/tables.tar scaled_mm && cd ..
cp _tune23/scaled_mm/*.json lmkernels/configs/scaled_mm/
python3 benchmarks/check_heuristic.py 10240,8192 8192,8192 57344,8192 8192,28672 --m 24,32 --dtype fp8 > $OUT/check_heuristic_s23_fp8_70b_m24.md 2>&1
tail -3 $OUT/check_heuristic_s23_fp8_70b_m24.md
CHECK_TIMEOUT=400 OUT=$OUT bash benchmarks/gpu_check.sh
