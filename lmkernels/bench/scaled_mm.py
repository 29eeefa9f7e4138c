"""`lmkernels bench scaled_mm`: W8A8 scaled_mm (int8 and fp8 e4m3, bf16 out, per-token scale_a [M, 1],
per-channel scale_b [1, N]) on Llama-3 linear-layer shapes, against cuBLAS.

Bytes counted a call: a and the weight once (1-byte operands), the output once, the scales:
M K + N K + 2 M N + 4 (M + N). At decode (M <= 16) that is the weight's N K almost alone, so those
rows also show the weight's own GB/s and its fraction of the copy bandwidth; every row shows
TFLOP/s = 2 M N K / time.

Providers:
  lmkernels                     config=None: the tuned table for this GPU when one exists, else the
                                op's heuristic (the op warns once per shape without a table)
  lmkernels pdl off             M <= 128: the default config launched without PDL (so without the
                                weight's L2 prefetch before the wait): what PDL buys a chain of calls
  lmkernels heuristic           config=heuristic_config(...): the tuned/heuristic ratio is what the
                                tables buy (vLLM-style tuning is worth it at >= 1/0.85). Its host
                                µs include checking the explicit config (the op's careful path)
  lmkernels precise accumulation  fp8, M >= 1024: FP8_FAST_ACCUM=False (each BLOCK_SIZE_K slice added
                                into fp32), one fixed 256 x 128 config
  torch._scaled_mm row-wise     fp8: cuBLASLt with the same scales, b column-major (its rule), with
                                use_fast_accum=True (the accumulation of lmkernels' default and of
                                vLLM's CUTLASS FP8FastAccum kernels) and False (torch's default)
  torch._int_mm + epilogue      int8, M > 16 only (_int_mm's rule): the int32 product, then
                                (acc * sa) * sb -> bf16 in eager torch, the kernel's order
  cuBLAS bf16 torch.mm          bf16 copies of the same shapes, unquantised: the reference point
                                an int8/fp8 matmul has to beat

Every input set has its own weight (fresh random values, never zeros), so the rotating sets read it
from HBM as a decode step does (harness.n_input_sets). At M <= 128 every row also gives the time on
the first input set alone, replayed: ANCHORS.md timed its peers that way, so a weight that fits
the 50 MB L2 (8B shapes at K = 4096) is read from L2 there (results/h100/probe_scaled_mm_warm.md:
torch._int_mm + epilogue at 128 x 6144 x 4096 ran 30.4-30.6 µs that way, ANCHORS' 30.7, and 33.7
rotated). Compare with ANCHORS' figures in that column, with the real step's cost in the main one. Runtime on an H100: about 5 minutes, most
of it the 8B M = 4096 and 70B M = 1024 cases (~1.8 PFLOP a provider each) and first compiles.
"""
from __future__ import annotations

import torch

import lmkernels
from lmkernels.tuning.scaled_mm import operands

LLAMA3_8B = ((6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336))  # (N, K): qkv, o, gate_up, down
LLAMA3_70B = ((10240, 8192), (8192, 8192), (57344, 8192), (8192, 28672))
M_8B = (1, 16, 128, 1024, 4096)
# fp8 with FP8_FAST_ACCUM=False: the tile that won the precise search of session 5 (its second fp32
# accumulator fits 256 x 128 at 8 warps; 128 x 256 spills)
PRECISE_FP8 = {"BLOCK_SIZE_M": 256, "BLOCK_SIZE_N": 128, "BLOCK_SIZE_K": 128, "GROUP_SIZE_M": 8, "num_warps": 8,
               "num_stages": 4, "ACCESS": "descriptor", "FP8_FAST_ACCUM": False}
M_70B = (16, 1024)


def _case(M: int, N: int, K: int, tag: str):
    fp8 = tag == "fp8"

    def inputs(i):
        return operands(M, N, K, fp8, "cuda", 9000 + 97 * i + M)

    def ours(heuristic: bool, pdl=None):
        def make(i):
            a, b, sa, sb = inputs(i)
            cfg = None
            if heuristic:
                from lmkernels.ops.scaled_mm import heuristic_config
                cfg = heuristic_config(M, N, K, fp8, torch.cuda.current_device())
            return lambda: lmkernels.scaled_mm(a, b, sa, sb, torch.bfloat16, config=cfg, pdl=pdl)
        return make

    def torch_scaled_mm(fast: bool):
        def make(i):
            a, b, sa, sb = inputs(i)
            return lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16,
                                            use_fast_accum=fast)
        return make

    def ours_precise(i):
        a, b, sa, sb = inputs(i)
        return lambda: lmkernels.scaled_mm(a, b, sa, sb, torch.bfloat16, config=PRECISE_FP8)

    def int_mm(i):
        a, b, sa, sb = inputs(i)
        return lambda: ((torch._int_mm(a, b).float() * sa) * sb).to(torch.bfloat16)

    def bf16(i):
        a, b, _, _ = inputs(i)
        a, w = a.to(torch.bfloat16), b.t().to(torch.bfloat16)  # w [N, K] row-major, as F.linear holds it
        return lambda: torch.mm(a, w.t())

    p = {"lmkernels": ours(False), "lmkernels heuristic": ours(True)}
    if M <= 128:  # the default launch is PDL on sm90+ (with the weight's L2 prefetch at decode); the peers have none
        p["lmkernels pdl off"] = ours(False, pdl=False)
    if fp8:
        p["torch._scaled_mm row-wise (cuBLASLt), fast accumulation"] = torch_scaled_mm(True)
        p["torch._scaled_mm row-wise (cuBLASLt), default precise accumulation"] = torch_scaled_mm(False)
        if M >= 1024:
            p["lmkernels precise accumulation (FP8_FAST_ACCUM=False)"] = ours_precise
    elif M > 16:
        p["torch._int_mm + scale epilogue"] = int_mm
    p["cuBLAS bf16 torch.mm (unquantised)"] = bf16
    nbytes = M * K + N * K + 2 * M * N + 4 * (M + N)  # see the module docstring
    decode = M <= 16
    # warm: ANCHORS' CUTLASS figures for M <= 128 were timed on one input set (its 16.8-25 MB weight
    # stays in the 50 MB L2); the column gives ours and the peers the same way beside the HBM times
    extra = {"flops": 2 * M * N * K, "weight_bytes": N * K if decode else None, "copy_row": decode,
             "host_calls": 200 if M <= 128 else 20, "warm": M <= 128}
    return ("scaled_mm", f"M={M} N={N} K={K}", f"{tag} -> bf16", nbytes, p, extra)


def cases(dtypes=("int8", "fp8"), with_70b: bool = True):
    out = [_case(M, N, K, tag) for tag in dtypes for N, K in LLAMA3_8B for M in M_8B]
    if with_70b:
        out += [_case(M, N, K, tag) for tag in dtypes for N, K in LLAMA3_70B for M in M_70B]
    return out
