"""Session 22: the persistent warp-specialised kernel's epilogue operands (kernels/scaled_mm_ws.py)
loaded while the tile's last wgmma runs, and GROUP_SIZE_M, on the fp8 Llama-3-8B rows at M >= 1024
against torch._scaled_mm(use_fast_accum=True) (GPU; a developer tool).

Prediction (written before the run; benchmarks/NOTES.md): a one-consumer 128 x 256 tile spends
~1.65 µs a tile outside its K loop (session 20), of which the scale loads' L2 round trip after the
final wgmma wait is ~0.3-0.5 µs: issued before that wait, the one-consumer tiles gain 1-2 % at the
K = 4096 rows (4096 x 4096 x 4096 ~99 -> ~97.5 µs); the ping-pong tiles, whose epilogue already
runs under the other consumer's MMAs, within ±0.5 %; GROUP_SIZE_M 4 or 16 instead of 8 within
±1 % (the operands of a wave of 132 tiles fit the 50 MB L2 at all three).

Times as `lmkernels bench` takes them (graph_us's 50 replays of >= 32 calls over rotated input sets,
a 1 s rest before each), each config twice in two rounds of opposite order so that a drift in
clocks shows as a difference between its two numbers. Each output is checked against the reference
within the tuner's fp8 bound first.

results/h100/probe_ws_epilogue.md was measured with a module switch that this tree no longer has
(the kernel took EARLY_SCALES as an argument then): the "scales after the wait" and "under the last
wgmma" rows of each tile. The outcome fixed it in the kernel (one consumer: early; ping-pong: after
the wait), so the script now times the tiles as shipped, with the GROUP_SIZE_M variants.
python benchmarks/probe_ws_epilogue.py [rows...]   (rows: indices into ROWS; default all)
"""
import sys
import time

import torch
import triton

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.reference.scaled_mm import scaled_mm as reference
from lmkernels.tuning.scaled_mm import check_output, operands

ROWS = ((1024, 4096, 4096), (1024, 6144, 4096), (1024, 28672, 4096), (1024, 4096, 14336),
        (4096, 4096, 4096), (4096, 6144, 4096), (4096, 28672, 4096), (4096, 4096, 14336))
ONE = {"BLOCK_SIZE_M": 128, "BLOCK_SIZE_N": 256, "BLOCK_SIZE_K": 128, "num_warps": 8, "num_stages": 3,
       "TMA_STORE": True, "PINGPONG": False}
PP = {"BLOCK_SIZE_M": 128, "BLOCK_SIZE_N": 128, "BLOCK_SIZE_K": 128, "num_warps": 4, "num_stages": 5,
      "TMA_STORE": False, "PINGPONG": True}
# (name, config overrides); the rows also time None (the op's tables) and "torch" (the peer)
VARIANTS = (("128x256x128 s3 tma", ONE), ("ping-pong 128x128x128 s5", PP),
            ("128x256x128 s3 tma, GROUP_SIZE_M 4", dict(ONE, GROUP_SIZE_M=4)),
            ("128x256x128 s3 tma, GROUP_SIZE_M 16", dict(ONE, GROUP_SIZE_M=16)))


def call(s, cfg):
    config = None if cfg is None else dict({"GROUP_SIZE_M": 8, "WGMMA": True, "PERSISTENT": True}, **cfg)
    return lmkernels.scaled_mm(*s, torch.bfloat16, config=config)


def row(M, N, K):
    nbytes = M * K + N * K + 2 * M * N + 4 * (M + N)
    sets = [operands(M, N, K, True, "cuda", 2200 + 7 * i + M) for i in range(n_input_sets(nbytes))]
    flops = 2 * M * N * K
    a0, b0, sa0, sb0 = sets[0]
    ref = reference(a0, b0, sa0, sb0, torch.bfloat16)
    print(f"\n### fp8 M={M} N={N} K={K}\n\n| variant | round 1 µs | round 2 µs | TFLOP/s (mean) | check |\n"
          "|---|---:|---:|---:|---|", flush=True)
    entries = [("torch._scaled_mm, fast accumulation", "torch"), ("lmkernels.scaled_mm (tables)", None)]
    entries += list(VARIANTS)
    checks = {}
    for name, cfg in entries:
        if cfg == "torch":
            checks[name] = "peer"
            continue
        out = call((a0, b0, sa0, sb0), cfg)
        torch.cuda.synchronize()
        checks[name] = "ok" if check_output(out, ref, a0, b0, sa0, sb0, True, False) is None else "DIFFERS"
    times = {name: [] for name, _ in entries}
    for order in (entries, entries[::-1]):
        for name, cfg in order:
            time.sleep(1.0)
            if cfg == "torch":
                calls = [lambda s=s: torch._scaled_mm(s[0], s[1], scale_a=s[2], scale_b=s[3],
                                                      out_dtype=torch.bfloat16, use_fast_accum=True) for s in sets]
            else:
                calls = [lambda s=s, c=cfg: call(s, c) for s in sets]
            times[name].append(graph_us(calls))
    for name, _ in entries:
        t1, t2 = times[name]
        print(f"| {name} | {t1:.2f} | {t2:.2f} | {2 * flops / (t1 + t2) / 1e6:.0f} | {checks[name]} |", flush=True)
    del sets
    torch.cuda.empty_cache()


if __name__ == "__main__":
    print(torch.cuda.get_device_name(), "triton", triton.__version__)
    for i in ([int(x) for x in sys.argv[1:]] or range(len(ROWS))):
        row(*ROWS[i])
