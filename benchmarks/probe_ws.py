"""Session 19: scaled_mm on a persistent, warp-specialised Gluon kernel (kernels/scaled_mm_ws.py)
against the op at its tuned tables (GPU; a developer tool).

Prediction (benchmarks/NOTES.md, written before the run): a non-persistent tile pays ~3.4 µs of
fill and write-out (int8 1250 TOP/s at K = 4096 against 1426 at K = 14336 with the same tiles);
with the producer loading the next tile during the write-out, the K = 4096 rows at M >= 1024 gain
5-10 % (4096 x 4096 x 4096 int8 1238 -> ~1330 TOP/s), and two 4-warp consumers (ping-pong, the
write-out under the other consumer's MMAs) another few %; fp8 reaches torch._scaled_mm.

check: int8 bit-exact against the reference, fp8 within the tuner's bound, outputs poisoned first.
Times: CUDA-graph medians over rotated input sets (bench/harness), outputs allocated in the graph.
python benchmarks/probe_ws.py [check] [int8] [fp8]
"""
import sys
import time

import torch
import triton
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.kernels.scaled_mm_ws import _scaled_mm_ws_kernel
from lmkernels.reference.scaled_mm import scaled_mm as reference
from lmkernels.tuning.scaled_mm import check_output, operands

SMS = torch.cuda.get_device_properties(0).multi_processor_count


def launch(a, b, sa, sb, bias, cfg):
    """cfg = (BLOCK_M, BLOCK_N, BLOCK_K, stages, consumers, warps a consumer)."""
    bm, bn, bk, stages, consumers, warps = cfg
    M, K = a.shape
    N = b.shape[1]
    dt = gl.int8 if a.dtype == torch.int8 else gl.float8e4nv
    av = TensorDescriptor(a, [M, K], [a.stride(0), 1], [bm, bk], gl.NVMMASharedLayout.get_default_for([bm, bk], dt))
    bv = TensorDescriptor(b, [N, K], [b.stride(1), 1], [bn, bk], gl.NVMMASharedLayout.get_default_for([bn, bk], dt))
    out = torch.empty(M, N, dtype=torch.bfloat16, device=a.device)
    tiles = triton.cdiv(M, bm) * triton.cdiv(N, bn)
    tok, ch = sa.numel() > 1, sb.numel() > 1
    _scaled_mm_ws_kernel[(min(tiles, SMS),)](
        av, bv, out, sa, sb, sa if bias is None else bias, M, N, K, N, 1 if tok else 0, 1 if ch else 0,
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, STAGES=stages, CONSUMERS=consumers, SA_PER_TOKEN=tok,
        SB_PER_CHANNEL=ch, HAS_BIAS=bias is not None, INT8=a.dtype == torch.int8, USE_PDL=False, EARLY_LAUNCH=False,
        num_warps=warps, maxnreg=168, enable_fp_fusion=False)
    return out


def check():
    print("\n### check (bit-exact against the reference, int8; fp8 within the tuner's bound)\n")
    g = torch.Generator(device="cuda").manual_seed(19)
    fails = 0
    for fp8 in (False, True):
        for (M, N, K) in ((1024, 4096, 4096), (33, 971, 496), (512, 20486, 1024), (1, 256, 128), (300, 257, 4112),
                          (4096, 6144, 4096), (2000, 3000, 64)):
            for cfg in CONFIGS:
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
                    else:
                        why = None if torch.equal(out, ref) else f"{int((out != ref).sum())} differ"
                    fails += why is not None
                    if why is not None:
                        print(f"{'fp8' if fp8 else 'int8'} M={M} N={N} K={K} cfg={cfg} tok={tok} ch={ch} "
                              f"bias={has_bias}: FAIL {why}", flush=True)
    print(f"check: {fails} failures", flush=True)


def probe(M, N, K, fp8, configs):
    time.sleep(1.0)
    nbytes = M * K + N * K + 2 * M * N + 4 * (M + N)
    sets = [operands(M, N, K, fp8, "cuda", 700 + 13 * i + M) for i in range(n_input_sets(nbytes))]
    flops = 2 * M * N * K
    print(f"\n### M={M} N={N} K={K} {'fp8' if fp8 else 'int8'}\n\n| kernel | µs | T(FL)OP/s | check |\n|---|---:|---:|---|",
          flush=True)
    a0, b0, sa0, sb0 = sets[0]
    ref = reference(a0, b0, sa0, sb0, torch.bfloat16)
    rows = [("lmkernels.scaled_mm (tables)", lambda s: lmkernels.scaled_mm(*s, torch.bfloat16))]
    if fp8:
        rows.append(("torch._scaled_mm fast", lambda s: torch._scaled_mm(
            s[0], s[1], scale_a=s[2], scale_b=s[3], out_dtype=torch.bfloat16, use_fast_accum=True)))
    rows += [(f"ws {cfg}", lambda s, c=cfg: launch(*s, None, c)) for cfg in configs]
    for name, fn in rows:
        try:
            out = fn(sets[0])
            torch.cuda.synchronize()
        except Exception as e:
            print(f"| {name} | fails: {type(e).__name__}: {str(e)[:100]!r} | | |", flush=True)
            continue
        ok = torch.equal(out, ref) if not fp8 else check_output(out, ref, a0, b0, sa0, sb0, True, False) is None
        time.sleep(0.3)
        us = graph_us([lambda s=s: fn(s) for s in sets], reps=20, min_calls=max(len(sets), 8))
        print(f"| {name} | {us:.2f} | {flops / us / 1e6:.0f} | {'ok' if ok else 'DIFFERS'} |", flush=True)
    del sets
    torch.cuda.empty_cache()


# (BLOCK_M, BLOCK_N, BLOCK_K, stages, consumers, warps): one 8-warp consumer over 128 x 256 tiles, or
# two 4-warp consumers over 128 x 128 / 64 x 256 tiles
CONFIGS = ((128, 256, 128, 3, 1, 8), (128, 256, 64, 5, 1, 8), (256, 128, 128, 3, 1, 8), (128, 256, 128, 4, 1, 8),
           (128, 128, 128, 4, 2, 4), (128, 128, 128, 5, 2, 4), (128, 128, 64, 8, 2, 4), (64, 256, 128, 4, 2, 4))
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
