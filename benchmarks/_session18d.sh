export PYTHONPATH=$PWD
rm -rf _tune18 && mkdir -p _tune18 && cp -r lmkernels/configs/scaled_mm _tune18/
T="python3 -m lmkernels.cli tune scaled-mm --out _tune18 --force"
{ $T --dtype int8 fp8 --nk 4096,4096 --m 1024 --max-minutes 2.5
  $T --dtype int8 --nk 4096,14336 --m 1024 --max-minutes 1.5; } 2>&1 | grep -E "M=1024|done|stopped|wrote" | tee $OUT/tune_s18_part2.log
tar cf $OUT/tables.tar -C _tune18 scaled_mm
