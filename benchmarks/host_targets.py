"""The host-time target tables of `bench norm` and `bench kv_cache` alone (issues 2 and 4): their calls
(each family's host_calls) in one set of shuffled interleaved rounds, three runs on one host.
python3 benchmarks/host_targets.py (GPU)."""
from lmkernels.bench import harness
from lmkernels.bench import kv_cache as kv_bench
from lmkernels.bench import norm as norm_bench

calls = {**norm_bench.host_calls(), **kv_bench.host_calls()}
for i in range(3):
    print(harness.host_table(harness.interleaved_host_us(calls), harness.HOST_BAR_US, f"eager calls, run {i + 1}"))
    print()
