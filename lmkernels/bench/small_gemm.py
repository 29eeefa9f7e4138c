"""`lmkernels bench small_gemm`: ll_gemm on MoE router shapes against cuBLAS, and the PDL chain.

Router rows: every (K, N) of ROUTERS at M in MS, bf16 x and weight, fp32 logits (what a router
hands to top-k). Providers:
  lmkernels                       ll_gemm, pdl default (on for sm90+). The graph replays the calls
                                  back to back, so with PDL each call's launch overlaps the previous
                                  call's tail, as between a model's kernels
  lmkernels pdl=False             the same kernels launched plainly: the isolated latency
  cuBLAS F.linear (bf16 out)      what nn.Linear / vLLM's ReplicatedLinear router does (bf16 logits,
                                  the .float() after it not counted)
  cuBLAS torch.mm out_dtype=fp32  the like-for-like call: bf16 in, fp32 accumulation and logits
fp8 rows (K >= 4096): ll_gemm with e4m3 x and weight and per-tensor scales, and torch._scaled_mm
(cuBLASLt; it needs K and N multiples of 16, so N = 8 is reported as failed).

Columns: the harness's, with weight_bytes = N K elem, so "weight of copy BW" is the weight-read
floor (N K elem bytes at the copy bandwidth measured in the run) over the time; summary() prints the
floor in µs and time / floor. Each input set has its own weight (fresh random data), and the sets
overflow L2 4x (harness.n_input_sets) except where 64 sets of a small weight do not (2880 x 64 bf16:
64 x 0.37 MB = 24 MB; 4096 x 8: 4 MB): those rows may read part of the weights from L2, and their
floors (0.1 µs and less) are far below the launch latency anyway. The router rows also time the
first input set alone, replayed ("one input set": DESIGN.md's do_bench_cudagraph method, the one
behind ANCHORS' cuBLAS 6.1-6.2 µs): the weight then comes from L2, as it would for a router whose
layer's weights were just touched; summary() checks the targets on both columns.

PDL chain: CHAIN_LAYERS layers of (fused_add_rms_norm -> ll_gemm to CHAIN_N outputs), hidden size K
in CHAIN_K, M in CHAIN_M, one call = the whole chain, each layer its own weight. pdl=True on both
ops against pdl=False on both, and two ll_gemm variants with pdl on: without EARLY_LAUNCH and
PREFETCH, and with split-K in two launches (ONE_LAUNCH False). Before timing, the pdl=True maker
replays the chain in two CUDA graphs, PDL on and off, on the same data, and raises unless every
output (each layer's logits, x, residual) is bit-identical: the row then shows "failed:
AssertionError ...". summary() reports µs per layer and the saving per kernel boundary,
(t_off - t_on) / kernels in the chain (norm 1 + ll_gemm 1, or 2 where the default config's split-K
takes a second launch: ONE_LAUNCH False, or HIP; a layer).
Router rows at M = 1 also time PRELOAD (the weight read before gdc_wait; kernels/small_gemm.py says
why it is opt-in).

The full report (tables plus summary): python -m lmkernels.bench.small_gemm [--csv FILE]
Tuned configs per shape, with cuBLAS beside them: `lmkernels tune ll-gemm` (tuning/ll_gemm.py); ll_gemm
takes them wherever a table covers the shape, so these rows time the tables where they exist.
"""
from __future__ import annotations

import torch

import lmkernels

from .harness import rows_by_case
from .peers import CUBLAS_16BIT, CUBLAS_FP8, cublas_small_gemm

ROUTERS = [(7168, 256), (7168, 384), (6144, 256), (4096, 256), (5120, 128), (4096, 8), (2880, 64)]  # (K, N)
MS = (1, 2, 4, 8, 16)
FP8_MIN_K = 4096
CHAIN_K = (7168, 4096)
CHAIN_M = (1, 2, 4, 8, 16)
CHAIN_N = 256
CHAIN_LAYERS = 8
EPS = 1e-6
FP8 = torch.float8_e4m3fn
PRELOAD_ROW = "lmkernels PRELOAD (weight read before the wait: constant weights only)"


def _router_case(K: int, N: int, M: int, fp8: bool):
    def inputs(i):
        g = torch.Generator(device="cuda").manual_seed(7000 + 131 * i + M)
        x = torch.randn(M, K, device="cuda", generator=g)
        w = torch.randn(N, K, device="cuda", generator=g)
        if not fp8:
            return x.bfloat16(), w.bfloat16(), None, None
        xs = torch.full((), 0.05, device="cuda")
        ws = torch.full((), 0.02, device="cuda")
        return (x / 0.05).to(FP8), (w / 0.02).to(FP8), xs, ws

    def ours(**kw):
        def make(i):
            x, w, xs, ws = inputs(i)
            return lambda: lmkernels.ll_gemm(x, w, x_scale=xs, w_scale=ws, **kw)
        return make

    p = {"lmkernels": ours(), "lmkernels pdl=False": ours(pdl=False)}
    if M == 1:  # the heuristic's one K tile a program allows it (ll_gemm_config)
        p[PRELOAD_ROW] = ours(config={"PRELOAD": True})
    for name in CUBLAS_FP8 if fp8 else CUBLAS_16BIT:
        p[name] = lambda i, name=name: cublas_small_gemm(*inputs(i))[name]
    e = 1 if fp8 else 2
    # bytes a call: the weight and x once each, fp32 logits written once
    nbytes = N * K * e + M * K * e + M * N * 4
    # warm: ANCHORS' cuBLAS router figures (6.1-6.2 µs at 7168 x 256) are do_bench_cudagraph's, one
    # input set replayed, its weight (0.3-5.5 MB) in the 50 MB L2; the column times ours and cuBLAS so
    extra = {"weight_bytes": N * K * e, "flops": 2 * M * N * K, "warm": True}
    return ("ll_gemm", f"M={M} N={N} K={K}", ("fp8 e4m3" if fp8 else "bf16") + " -> fp32", nbytes, p, extra)


def _chain_inputs(M: int, K: int, i: int):
    g = torch.Generator(device="cuda").manual_seed(9100 + 17 * i + M)
    x = torch.randn(M, K, device="cuda", generator=g).bfloat16()
    r = torch.randn(M, K, device="cuda", generator=g).bfloat16()
    nw = [torch.randn(K, device="cuda", generator=g).bfloat16() for _ in range(CHAIN_LAYERS)]
    ws = [torch.randn(CHAIN_N, K, device="cuda", generator=g).bfloat16() for _ in range(CHAIN_LAYERS)]
    return x, r, nw, ws


def _chain(x, r, nw, ws, pdl, cfg=None):
    ys = []
    for n, w in zip(nw, ws):
        lmkernels.fused_add_rms_norm(x, r, n, EPS, pdl=pdl)
        ys.append(lmkernels.ll_gemm(x, w, pdl=pdl, config=cfg))
    return ys


def check_chain_bits(M: int, K: int) -> None:
    """Replay the chain in a CUDA graph with PDL off and on, from the same inputs: every output must
    be bit-identical (PDL moves when kernels start, never what they compute)."""
    outs = []
    for pdl in (False, True):
        x0, r0, nw, ws = _chain_inputs(M, K, 0)
        x, r = x0.clone(), r0.clone()
        _chain(x, r, nw, ws, pdl)  # compile outside the capture
        torch.cuda.synchronize()
        x.copy_(x0)
        r.copy_(r0)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            ys = _chain(x, r, nw, ws, pdl)
        graph.replay()
        torch.cuda.synchronize()
        outs.append([t.clone() for t in ys] + [x.clone(), r.clone()])
    for a, b in zip(*outs):
        ints = torch.int32 if a.dtype == torch.float32 else torch.int16
        if not torch.equal(a.view(ints), b.view(ints)):
            raise AssertionError(f"PDL changed bits: {int((a.view(ints) != b.view(ints)).sum())} of {a.numel()}")


def _chain_case(M: int, K: int):
    def make_with(pdl, cfg=None, check=False):
        def make(i):
            if check and i == 0:
                check_chain_bits(M, K)
            x, r, nw, ws = _chain_inputs(M, K, i)
            return lambda: _chain(x, r, nw, ws, pdl, cfg)
        return make

    p = {"lmkernels pdl=True (both ops)": make_with(True, check=True),
         "lmkernels pdl=False (both ops)": make_with(False),
         "pdl=True, ll_gemm no EARLY_LAUNCH / PREFETCH": make_with(True, {"EARLY_LAUNCH": False, "PREFETCH": False}),
         "pdl=True, ll_gemm split-K in two launches": make_with(True, {"ONE_LAUNCH": False})}
    # a layer: the norm reads x, residual, its weight and writes x and residual; ll_gemm reads its
    # weight and x and writes fp32 logits
    layer = (4 * M * K + K) * 2 + CHAIN_N * K * 2 + M * K * 2 + M * CHAIN_N * 4
    extra = {"weight_bytes": CHAIN_LAYERS * CHAIN_N * K * 2, "copy_row": False}
    return ("pdl chain", f"{CHAIN_LAYERS} layers M={M} K={K} N={CHAIN_N}", "bf16", CHAIN_LAYERS * layer, p, extra)


def cases(routers=ROUTERS, ms=MS, chain_k=CHAIN_K, chain_m=CHAIN_M):
    out = [_router_case(K, N, M, False) for K, N in routers for M in ms]
    out += [_router_case(K, N, M, True) for K, N in routers if K >= FP8_MIN_K for M in ms]
    out += [_chain_case(M, K) for K in chain_k for M in chain_m]
    return out


# ---------------------------------------------------------------- the derived report

def _kernels_per_layer(M: int, K: int, sms: int, hip: bool = False) -> int:
    """fused_add_rms_norm (1) + ll_gemm under the default config: 1, or 2 where split-K takes a
    second launch (the config's ONE_LAUNCH False, or HIP: kernels/small_gemm.py)."""
    from lmkernels.ops.small_gemm import ll_gemm_config, split_k
    c = ll_gemm_config(M, CHAIN_N, K, 2, sms)
    two = (hip or not c["ONE_LAUNCH"]) and split_k(K, c["BLOCK_K"], c["SPLIT_K"])[0] > 1
    return 1 + (2 if two else 1)


def _against_targets(p: dict, column: str) -> tuple[float, float, bool]:
    """(weight-read floor µs, best cuBLAS µs, both of the issue's targets met) for one router row's
    providers p, on column "us" (rotated) or "warm_us" (one input set): ours within max(2 µs, 1.5x
    the floor) and at least 2x faster than the faster cuBLAS call."""
    ours = getattr(p["lmkernels"], column)
    floor = p["lmkernels"].us * (p["lmkernels"].weight_frac or float("nan"))  # weight bytes / copy BW
    times = (getattr(r, column) for k, r in p.items() if k.startswith("cuBLAS"))
    cub = min((t for t in times if t is not None and t == t), default=float("nan"))
    return floor, cub, ours <= max(2.0, 1.5 * floor) and cub / ours >= 2


def summary(table, sms: int | None = None) -> str:
    """Markdown: router rows (ours, floor, time / floor, cuBLAS, speedup, the issue's targets), fp8 /
    bf16 ratios, and the PDL chain (µs a layer, saving per kernel boundary). sms: the GPU's (default
    the current one's), for the chain's kernel count."""
    if sms is None:
        from lmkernels.runtime.device import num_sms
        sms = num_sms(torch.cuda.current_device())
    hip = torch.version.hip is not None
    rows = rows_by_case(table)
    lines = ["### ll_gemm router shapes: against the weight-read floor and cuBLAS", "",
             "| shape | ll_gemm µs | pdl=False µs | PRELOAD µs | floor µs | time / floor | best cuBLAS µs | "
             "cuBLAS / ours | target (<= max(2, 1.5 floor), >= 2x cuBLAS) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    bf16 = {}
    for (op, shape, dt), p in rows.items():
        if op != "ll_gemm" or not dt.startswith("bf16"):
            continue
        ours = p["lmkernels"]
        floor, cub, ok = _against_targets(p, "us")
        bf16[shape] = ours.us
        pre = f"{p[PRELOAD_ROW].us:.2f}" if PRELOAD_ROW in p else "-"
        lines.append(f"| {shape} | {ours.us:.2f} | {p['lmkernels pdl=False'].us:.2f} | {pre} | {floor:.2f} | "
                     f"{ours.us / floor:.2f} | {cub:.2f} | {cub / ours.us:.2f} | {'met' if ok else 'MISSED'} |")
    lines += ["", "### The same, one input set replayed (do_bench_cudagraph's and ANCHORS' method: the weight "
              "stays in L2)", "",
              "| shape | ll_gemm µs | best cuBLAS µs | cuBLAS / ours | target (<= max(2, 1.5 floor), >= 2x cuBLAS) |",
              "|---|---:|---:|---:|---|"]
    bf16_warm = {}
    for (op, shape, dt), p in rows.items():
        if op != "ll_gemm" or not dt.startswith("bf16") or p["lmkernels"].warm_us is None:
            continue
        ours = p["lmkernels"]
        _, cub, ok = _against_targets(p, "warm_us")
        bf16_warm[shape] = ours.warm_us
        lines.append(f"| {shape} | {ours.warm_us:.2f} | {cub:.2f} | {cub / ours.warm_us:.2f} | "
                     f"{'met' if ok else 'MISSED'} |")
    lines += ["", "### fp8 e4m3 against bf16 (target <= 0.7)", "",
              "| shape | fp8 µs | bf16 µs | fp8 / bf16 | one set: fp8 µs | bf16 µs | fp8 / bf16 |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for (op, shape, dt), p in rows.items():
        if op == "ll_gemm" and dt.startswith("fp8") and shape in bf16:
            us = p["lmkernels"].us
            line = f"| {shape} | {us:.2f} | {bf16[shape]:.2f} | {us / bf16[shape]:.2f} |"
            warm = p["lmkernels"].warm_us
            if warm is not None and shape in bf16_warm:
                line += f" {warm:.2f} | {bf16_warm[shape]:.2f} | {warm / bf16_warm[shape]:.2f} |"
            else:
                line += " - | - | - |"
            lines.append(line)
    lines += ["", f"### PDL chain: {CHAIN_LAYERS} x (fused_add_rms_norm -> ll_gemm), one CUDA graph", "",
              "| shape | µs a layer, pdl on | pdl off | pdl on, no early launch / prefetch | pdl on, two-launch "
              "split-K | kernels a layer | saving a boundary µs | bits |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for (op, shape, dt), p in rows.items():
        if op != "pdl chain":
            continue
        on, off = p["lmkernels pdl=True (both ops)"], p["lmkernels pdl=False (both ops)"]
        M, K = (int(s.split("=")[1]) for s in shape.split()[2:4])
        kern = _kernels_per_layer(M, K, sms, hip)
        no_early = p["pdl=True, ll_gemm no EARLY_LAUNCH / PREFETCH"].us
        two = p["pdl=True, ll_gemm split-K in two launches"].us
        bits = "identical" if "failed" not in on.note else on.note
        lines.append(f"| {shape} | {on.us / CHAIN_LAYERS:.2f} | {off.us / CHAIN_LAYERS:.2f} | "
                     f"{no_early / CHAIN_LAYERS:.2f} | {two / CHAIN_LAYERS:.2f} | {kern} | "
                     f"{(off.us - on.us) / (CHAIN_LAYERS * kern):.3f} | {bits} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse
    import sys

    from .harness import Table, copy_bandwidth_gbs, run_cases
    ap = argparse.ArgumentParser(description="ll_gemm and PDL-chain bench with the derived summary")
    ap.add_argument("--csv", help="also write the table as CSV to this file")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("this bench needs a GPU: it times CUDA-graph replays", file=sys.stderr)
        return 2
    from lmkernels.runtime.device import describe_device
    table = Table(f"small_gemm on {describe_device()}", copy_bandwidth_gbs())
    run_cases(table, cases())
    print(table.markdown())
    print()
    print(summary(table))
    if args.csv:
        table.write_csv(args.csv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
