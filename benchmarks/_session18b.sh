export PYTHONPATH=$PWD
rm -rf _tune18 && mkdir -p _tune18 && cp -r lmkernels/configs/scaled_mm _tune18/
T="python3 -m lmkernels.cli tune scaled-mm --out _tune18 --force"
for dt in int8 fp8; do
  $T --dtype $dt --nk 6144,4096 --m 96,128,256,512,1024,1536 --max-minutes 2 2>&1 | grep -v "^\s*$" | tail -n 12
  $T --dtype $dt --nk 4096,4096 --m 512,1024 --max-minutes 1 2>&1 | tail -n 4
  $T --dtype $dt --nk 28672,4096 --m 96,128,256,512 --max-minutes 1.5 2>&1 | tail -n 6
  $T --dtype $dt --nk 10240,8192 --m 256,512 --max-minutes 1 2>&1 | tail -n 4
done > $OUT/tune_s18.log 2>&1
tail -n 80 $OUT/tune_s18.log
cp _tune18/scaled_mm/*.json lmkernels/configs/scaled_mm/
for dt in int8 fp8; do
  timeout 150 python3 benchmarks/check_heuristic.py 6144,4096 --m 96,128,256,512,1024,1536 --dtype $dt 2>&1 | tee $OUT/check_heuristic_s18_$dt.md | tail -n 9
done
tar cf $OUT/tables.tar -C _tune18 scaled_mm
git status --short | head
