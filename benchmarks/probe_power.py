"""Session 20: are the fp8 GEMMs power-limited? Each provider runs for 3 s without a break (CUDA-graph
replays back to back, rotated input sets) while nvidia-smi samples the SM clock and the board power
every 50 ms; per-call µs, clock and power are reported over three windows of the run (GPU; a
developer tool).

Why: at 4096 x 28672 x 4096 fp8 the same config timed 682 µs in probe_ws_tma.md (160 calls a
config, ~0.1 s) and 746-770 µs in the tuner, check_heuristic and the bench (~1 s of calls a
measurement), while torch._scaled_mm timed 722-729 in all of them. Prediction: our kernels hold full
clocks for the first ~0.1-0.2 s and then drop as the board reaches its power limit; cuBLAS's draws
less power for the same work and keeps its clock.
python benchmarks/probe_power.py
"""
import subprocess
import time

import torch

import lmkernels
from lmkernels.bench.harness import n_input_sets
from lmkernels.tuning.scaled_mm import operands

RUN_S = 3.0
WINDOWS = ((0.0, 0.2), (0.2, 1.0), (1.0, RUN_S))
PP = {"BLOCK_SIZE_M": 128, "BLOCK_SIZE_N": 128, "BLOCK_SIZE_K": 128, "GROUP_SIZE_M": 8, "num_warps": 4,
      "num_stages": 5, "WGMMA": True, "PERSISTENT": True, "PINGPONG": True}
TMA = dict(PP, BLOCK_SIZE_N=256, num_warps=8, num_stages=3, PINGPONG=False, TMA_STORE=True)


def sustained(calls):
    """[(seconds since start, µs a call)] over RUN_S of back-to-back replays of one graph."""
    graph = torch.cuda.CUDAGraph()
    for c in calls:
        c()
    torch.cuda.synchronize()
    with torch.cuda.graph(graph):
        for c in calls:
            c()
    torch.cuda.synchronize()
    events = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < RUN_S:
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        graph.replay()
        e.record()
        events.append((s, e))
        if len(events) % 4 == 0:
            events[-4][1].synchronize()  # stay a few replays ahead, no further
    torch.cuda.synchronize()
    first = events[0][0]
    return [(first.elapsed_time(s) * 1e-3, s.elapsed_time(e) * 1e3 / len(calls)) for s, e in events]


def main():
    print(torch.cuda.get_device_name(), "\n")
    print("| shape | provider | window s | µs a call (median) | TFLOP/s | SM MHz | W |\n|---|---|---|---:|---:|---:|---:|")
    for M, N, K in ((4096, 28672, 4096), (1024, 6144, 4096)):
        nbytes = M * K + N * K + 2 * M * N
        sets = [operands(M, N, K, True, "cuda", 300 + i) for i in range(n_input_sets(nbytes))]
        provs = {
            "torch._scaled_mm fast": lambda s: torch._scaled_mm(s[0], s[1], scale_a=s[2], scale_b=s[3],
                                                                out_dtype=torch.bfloat16, use_fast_accum=True),
            "ours ping-pong 128x128 s5": lambda s: lmkernels.scaled_mm(*s, torch.bfloat16, config=PP),
            "ours 128x256 s3 TMA_STORE": lambda s: lmkernels.scaled_mm(*s, torch.bfloat16, config=TMA),
        }
        for name, f in provs.items():
            calls = [lambda s=s: f(s) for s in sets] * max(1, 8 // len(sets))
            time.sleep(2.0)
            smi = subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,power.draw", "--format=csv,noheader,nounits",
                                    "-lms", "50"], stdout=subprocess.PIPE, text=True)
            t_smi = time.monotonic()
            time.sleep(0.3)  # nvidia-smi's first sample
            t_run = time.monotonic()
            rows = sustained(calls)
            smi.terminate()
            samples = [tuple(map(float, line.split(","))) for line in smi.communicate()[0].splitlines() if "," in line]
            # samples every 50 ms from t_smi; the run started t_run - t_smi later
            for lo, hi in WINDOWS:
                us = sorted(u for t, u in rows if lo <= t < hi)
                idx = [i for i in range(len(samples)) if lo <= i * 0.05 - (t_run - t_smi) < hi]
                mhz = sum(samples[i][0] for i in idx) / max(len(idx), 1)
                watts = sum(samples[i][1] for i in idx) / max(len(idx), 1)
                med = us[len(us) // 2] if us else float("nan")
                print(f"| {M}x{N}x{K} | {name} | {lo}-{hi} | {med:.2f} | {2 * M * N * K / med / 1e6:.0f} | "
                      f"{mhz:.0f} | {watts:.0f} |", flush=True)
        del sets
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
