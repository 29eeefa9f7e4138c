"""A quick subset of `lmkernels bench scaled_mm` (GPU): the 8B o-proj and gate_up shapes at M = 16,
128, 4096, int8 and fp8, every provider; for checking a kernel change before the full bench.
python benchmarks/quick_mm.py [M ...]"""
import sys

from lmkernels.bench import harness
from lmkernels.bench import scaled_mm as bench

ms = [int(m) for m in sys.argv[1:]] or [16, 128, 4096]
table = harness.Table("scaled_mm quick subset", harness.copy_bandwidth_gbs())
harness.run_cases(table, [bench._case(M, N, K, tag) for tag in ("int8", "fp8") for N, K in ((4096, 4096), (28672, 4096))
                          for M in ms])
print(table.markdown())
