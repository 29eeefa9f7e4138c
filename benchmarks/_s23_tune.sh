export PYTHONPATH=$PWD
python3 benchmarks/host_overhead.py 2>&1 | tail -9
rm -rf _tune23 && mkdir _tune23 && cp -r lmkernels/configs/scaled_mm _tune23/
python3 -m lmkernels.cli tune scaled-mm --out _tune23 --force --dtype fp8 --nk 4096,14336 --m 1,2,4,8,16,24,32 --max-minutes 4 > $OUT/tune_s23_fp8_14336.log 2>&1
python3 -m lmkernels.cli tune scaled-mm --out _tune23 --force --dtype fp8 --nk 8192,8192 8192,28672 --m 1,2,4,8,16 --max-minutes 4 > $OUT/tune_s23_fp8_70b.log 2>&1
tail -25 $OUT/tune_s23_fp8_14336.log; tail -25 $OUT/tune_s23_fp8_70b.log
cd _tune23 && tar cf $OUT/tables.tar scaled_mm && cd ..
cp _tune23/scaled_mm/*.json lmkernels/configs/scaled_mm/
python3 benchmarks/check_heuristic.py 4096,14336 8192,8192 8192,28672 --m 1,2,4,8,16,24,32 --dtype fp8 > $OUT/check_heuristic_s23_fp8.md 2>&1
tail -22 $OUT/check_heuristic_s23_fp8.md
