"""Session 17: int8 scaled_mm with explicit asynchronous wgmma (kernels/scaled_mm_wgmma.py, Gluon)
against the Triton kernel at its tuned tables (GPU; a developer tool).

Prediction (benchmarks/NOTES.md): Triton 3.6 ends every int8 K step in wgmma.wait_group 0; with
the previous step's MMAs the only ones waited for, int8 runs at fp8's rate at the same tile:
1.1-1.2x faster at M = 1024-4096 on the Llama-3-8B shapes (fp8 ran 1.1-1.18x int8 at one config).

check: every Gluon output equals the reference bit for bit (int8), fresh random operands, outputs
poisoned with NaN first; awkward shapes (M, N tails, K tails zero-filled by TMA) first.
Times: CUDA-graph medians over rotated input sets (bench/harness), outputs allocated in the graph.
python benchmarks/probe_wgmma.py [check] [int8] [fp8] [narrow] [split]
"""
import sys
import time

import torch
import triton

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.reference.scaled_mm import scaled_mm as reference
from lmkernels.tuning.scaled_mm import check_output, operands


def launch(a, b, sa, sb, bias, cfg):
    """A Gluon kernel through the op with an explicit WGMMA config: (bm, bn, bk, stages, warps), or
    with (..., PERSISTENT, PINGPONG[, TMA_STORE]) appended for kernels/scaled_mm_ws.py (probe_ws.py)."""
    bm, bn, bk, stages, warps, *ws = cfg
    config = {"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "BLOCK_SIZE_K": bk, "GROUP_SIZE_M": 8, "num_warps": warps,
              "num_stages": stages, "WGMMA": True}
    if ws:
        # TMA_STORE where the bf16 output's rows are whole 16-byte units (else the op refuses an explicit one)
        config.update(PERSISTENT=ws[0], PINGPONG=ws[1], TMA_STORE=len(ws) > 2 and ws[2] and b.shape[1] % 8 == 0)
    return lmkernels.scaled_mm(a, b, sa, sb, torch.bfloat16, bias, config=config)


CHECK_CONFIGS = ((128, 128, 128, 3, 8), (128, 256, 128, 3, 8), (128, 128, 128, 4, 4), (256, 128, 64, 4, 8),
                 (128, 192, 128, 4, 8), (64, 96, 128, 6, 4))
CHECK_SHAPES = ((1024, 4096, 4096), (33, 971, 496), (512, 20486, 1024), (1, 256, 128), (300, 257, 4112),
                (4096, 6144, 4096))


def check(configs=CHECK_CONFIGS, shapes=CHECK_SHAPES):
    print("\n### check (bit-exact against the reference, int8; fp8 within the tuner's bound)\n")
    g = torch.Generator(device="cuda").manual_seed(17)
    fails = 0
    for fp8 in (False, True):
        for (M, N, K) in shapes:
            for cfg in configs:
                for tok, ch, has_bias in ((True, True, False), (False, False, True), (True, False, True)):
                    a, b, sa, sb = operands(M, N, K, fp8, "cuda", int(torch.randint(0, 1 << 30, (1,), generator=g,
                                                                                         device="cuda")))
                    sa = sa if tok else sa[:1, :1].contiguous()
                    sb = sb if ch else sb[:, :1].contiguous()
                    bias = torch.randn(N, device="cuda") if has_bias else None
                    torch.full((M, N), float("nan"), dtype=torch.bfloat16, device="cuda")  # freed: poisons
                    out = launch(a, b, sa, sb, bias, cfg)
                    ref = reference(a, b, sa, sb, torch.bfloat16, bias)
                    if fp8:
                        why = check_output(out, ref, a, b, sa, sb, True, False)
                        ok = why is None
                    else:
                        ok = torch.equal(out, ref)
                        why = None if ok else f"{int((out != ref).sum())} differ"
                    fails += not ok
                    if not ok or (tok and ch):
                        print(f"{'fp8' if fp8 else 'int8'} M={M} N={N} K={K} cfg={cfg} tok={tok} ch={ch} "
                              f"bias={has_bias}: {'ok' if ok else 'FAIL ' + str(why)}", flush=True)
    print(f"check: {fails} failures")


def probe(M, N, K, fp8, configs, one_set=False):
    """one_set: one input set replayed (ANCHORS' CUTLASS figures are timed so: session 12)."""
    time.sleep(1.0)
    nbytes = M * K + N * K + 2 * M * N + 4 * (M + N)
    sets = [operands(M, N, K, fp8, "cuda", 700 + 13 * i + M) for i in range(1 if one_set else n_input_sets(nbytes))]
    flops = 2 * M * N * K
    print(f"\n### M={M} N={N} K={K} {'fp8' if fp8 else 'int8'}{', one input set' if one_set else ''}\n\n| kernel | µs | T(FL)OP/s | check |\n|---|---:|---:|---|",
          flush=True)
    a0, b0, sa0, sb0 = sets[0]
    ref = reference(a0, b0, sa0, sb0, torch.bfloat16)
    calls = [lambda s=s: lmkernels.scaled_mm(*s, torch.bfloat16) for s in sets]
    us = graph_us(calls, reps=20, min_calls=max(len(sets), 8))
    print(f"| lmkernels.scaled_mm (tables) | {us:.2f} | {flops / us / 1e6:.0f} | |", flush=True)
    if fp8:
        calls = [lambda s=s: torch._scaled_mm(s[0], s[1], scale_a=s[2], scale_b=s[3], out_dtype=torch.bfloat16,
                                              use_fast_accum=True) for s in sets]
        us = graph_us(calls, reps=20, min_calls=max(len(sets), 8))
        print(f"| torch._scaled_mm fast | {us:.2f} | {flops / us / 1e6:.0f} | peer |", flush=True)
    for cfg in configs:
        try:
            out = launch(a0, b0, sa0, sb0, None, cfg)
            torch.cuda.synchronize()
        except Exception as e:
            print(f"| wgmma {cfg} | fails: {type(e).__name__}: {str(e)[:100]!r} | | |", flush=True)
            continue
        ok = torch.equal(out, ref) if not fp8 else check_output(out, ref, a0, b0, sa0, sb0, True, False) is None
        calls = [lambda s=s, c=cfg: launch(*s, None, c) for s in sets]
        us = graph_us(calls, reps=20, min_calls=max(len(sets), 8))
        print(f"| wgmma {cfg} | {us:.2f} | {flops / us / 1e6:.0f} | {'ok' if ok else 'DIFFERS'} |", flush=True)
    del sets
    torch.cuda.empty_cache()


CONFIGS = ((128, 128, 128, 3, 8), (128, 128, 128, 4, 8), (128, 128, 128, 4, 4), (128, 256, 128, 3, 8),
           (128, 256, 64, 4, 8), (128, 256, 64, 5, 8), (256, 128, 64, 4, 8), (256, 128, 128, 3, 8), (128, 128, 64, 4, 4), (128, 128, 64, 4, 8))
ROWS = ((1024, 4096, 4096), (1024, 6144, 4096), (1024, 28672, 4096), (1024, 4096, 14336),
        (4096, 4096, 4096), (4096, 6144, 4096), (4096, 28672, 4096), (4096, 4096, 14336))

if __name__ == "__main__":
    what = sys.argv[1:] or ["check", "int8"]
    print(torch.cuda.get_device_name(), "triton", triton.__version__)
    if "check" in what:
        check()
    for tag in ("int8", "fp8"):
        if tag in what:
            for M, N, K in ROWS:
                probe(M, N, K, tag == "fp8", CONFIGS)
    if "split" in what:  # session 18: tiles of two accumulators (ops/scaled_mm.wgmma_n_split)
        wide = ((128, 192, 128, 4, 8), (128, 192, 128, 5, 8), (128, 192, 64, 5, 8), (128, 192, 64, 6, 8),
                (128, 128, 128, 3, 8), (128, 256, 64, 5, 8))
        for fp8 in (False, True):
            for M in (1024, 2048, 4096):
                probe(M, 6144, 4096, fp8, wide)
            probe(512, 6144, 4096, fp8, wide[:4] + ((64, 192, 128, 4, 4), (64, 192, 128, 6, 4)))
            probe(256, 6144, 4096, fp8, ((64, 192, 128, 4, 4), (64, 192, 128, 6, 4), (64, 96, 128, 6, 4)))
            for one_set in (True, False):
                probe(128, 6144, 4096, fp8, ((64, 96, 128, 4, 4), (64, 96, 128, 6, 4), (64, 96, 128, 8, 4),
                                             (64, 96, 64, 8, 4), (64, 192, 128, 4, 4), (64, 128, 128, 4, 4)), one_set)
            probe(1024, 4096, 14336, fp8, wide)
            probe(1024, 28672, 4096, fp8, wide)
    if "narrow" in what:  # 1024 x 6144: 384 tiles of 128 x 128; three 64 KB programs an SM make one wave
        probe(1024, 6144, 4096, False, CONFIGS[-2:])
