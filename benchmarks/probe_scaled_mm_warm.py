"""Does ANCHORS.md time the matmuls with the weight already in L2? (GPU; a developer tool.)

ANCHORS' numbers come from triton.testing.do_bench_cudagraph on one input set, replayed: a weight
under the H100's 50 MB L2 (the 8B shapes at K = 4096: 16.8-117 MB... 16.8 and 25.2 MB fit) is then
read from L2 on every replay after the first. `lmkernels bench` rotates input sets past 4x the L2,
so every call reads its weight from HBM, as a decode step does. This probe times the same calls
three ways, side by side, for ours and the torch peers whose ANCHORS figures we can compare:
  rotated      bench/harness.graph_us over n_input_sets sets (the bench's method)
  one set      graph_us on set 0 alone
  do_bench     triton.testing.do_bench_cudagraph on set 0 (ANCHORS' method)
If the peers' one-set times match ANCHORS (e.g. _int_mm + epilogue at 128 x 6144 x 4096: 30.7 µs)
while their rotated times do not, ANCHORS' CUTLASS figures are L2-warm too, and ours must be
compared with them one-set.
python benchmarks/probe_scaled_mm_warm.py
"""
import statistics

import torch
import triton.testing

from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.bench.scaled_mm import _case

SHAPES = ((6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336))
KEEP = ("lmkernels", "torch._scaled_mm row-wise (cuBLASLt), fast accumulation",
        "torch._scaled_mm row-wise (cuBLASLt), default precise accumulation", "torch._int_mm + scale epilogue")


def main():
    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}; L2 "
          f"{torch.cuda.get_device_properties(0).L2_cache_size / 2**20:.0f} MiB\n")
    print("| shape | dtype | provider | rotated µs | one set µs | do_bench µs (ANCHORS' method) | weight MB |")
    print("|---|---|---|---:|---:|---:|---:|", flush=True)
    for tag in ("int8", "fp8"):
        for N, K in SHAPES:
            for M in (1, 16, 128, 1024):
                _, shape, dt, nbytes, providers, _ = _case(M, N, K, tag)
                n = n_input_sets(nbytes)
                for name, make in providers.items():
                    if name not in KEEP:
                        continue
                    calls = [make(i) for i in range(n)]
                    min_calls = 8 if M >= 1024 else 32
                    rot = graph_us(calls, reps=30, min_calls=max(n, min_calls))
                    one = graph_us(calls[:1], reps=30, min_calls=min_calls)
                    db = statistics.median([triton.testing.do_bench_cudagraph(calls[0], rep=50, return_mode="median") * 1e3
                                            for _ in range(3)])
                    print(f"| {shape} | {dt} | {name} | {rot:.2f} | {one:.2f} | {db:.2f} | {N * K / 1e6:.1f} |",
                          flush=True)
                    del calls
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
