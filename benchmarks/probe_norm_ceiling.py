"""Probe (GPU): how fast can ANY kernel move rms_norm's bytes at T = 4096, H = 4096 (64 MB a call),
the one issue-2 case under its 2850 GB/s bar? A sweep of copies of exactly those bytes (read T H,
write T H, bf16) beside the op and two norm variants, in one run, every variant in each of
`--rounds` interleaved rounds (CUDA-graph medians of >= 32 calls, input sets rotating over 4x the
L2, so every call reads HBM: the bench's method); the median of the rounds is printed.

Copies: torch.add(x, 0, out=y), y.copy_(x) (a memcpy node), Triton copies of BLOCK elements x
warps a program with and without PDL (bench/copies.py's kernel), and persistent PDL copies (SMS x k programs looping over
8192-element blocks). Norm variants, through the op's own kernel or a probe kernel:
  warps 4 / 16   the op's kernel at H = 4096 with 4 or 16 warps (the op takes 8: norm_config)
  pipelined      a probe kernel: SMS x 8 programs, each looping over rows pid, pid + G, ... and
                 loading its next row before it reduces the current one (a register double buffer)
Prediction (before the run): no copy beats the op by more than 1 %, and the best copy stays under
2850 GB/s on this machine as in sessions 5 and 11 (2806 / 2849): the ~1.3 µs a call lost to the
PDL boundary (the previous kernel's drain, then this one's first HBM round trip) bounds every kernel
of this size alike. Warps 4 / 16 and the pipelined loop within +-1 % of the op.
python benchmarks/probe_norm_ceiling.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

import lmkernels
from lmkernels.bench import copies
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us_rounds, n_input_sets
from lmkernels.ops import norm as norm_ops
from lmkernels.runtime.device import describe_device, num_sms

BF16 = torch.bfloat16
EPS = 1e-6


@triton.jit
def _copy_persistent(src, dst, n, BLOCK: tl.constexpr):
    gdc_wait()
    gdc_launch_dependents()
    for b in range(tl.program_id(0), tl.cdiv(n, BLOCK), tl.num_programs(0)):
        offs = b.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        m = offs < n
        tl.store(dst + offs, tl.load(src + offs, mask=m), mask=m)


@triton.jit
def _norm_pipelined(x_ptr, w_ptr, y_ptr, n_rows, H, eps, BLOCK_H: tl.constexpr):
    gdc_wait()
    gdc_launch_dependents()
    cols = tl.arange(0, BLOCK_H)
    cm = cols < H
    w = tl.load(w_ptr + cols, mask=cm).to(tl.float32)
    step = tl.num_programs(0)
    row = tl.program_id(0)
    x = tl.load(x_ptr + row.to(tl.int64) * H + cols, mask=cm & (row < n_rows))
    for r in range(tl.program_id(0), n_rows, step):
        nxt = r + step
        x_next = tl.load(x_ptr + nxt.to(tl.int64) * H + cols, mask=cm & (nxt < n_rows))
        xf = x.to(tl.float32)
        y = xf * tl.math.rsqrt(tl.sum(xf * xf, axis=0) / H + eps) * w
        tl.store(y_ptr + r.to(tl.int64) * H + cols, y.to(y_ptr.dtype.element_ty), mask=cm)
        x = x_next


def copy_variants(n: int, k: int, sms: int) -> dict:
    """name -> k calls (one per input set) copying n bf16 elements."""
    srcs = [torch.randn(n, device="cuda", dtype=BF16) for _ in range(k)]
    dsts = [torch.empty_like(s) for s in srcs]
    out = {"copy torch.add": [lambda s=s, d=d: torch.add(s, 0, out=d) for s, d in zip(srcs, dsts)],
           "copy y.copy_(x)": [lambda s=s, d=d: d.copy_(s) for s, d in zip(srcs, dsts)]}
    for block, warps, pdl in ((4096, 4, True), (4096, 8, True), (8192, 8, True), (8192, 16, True),
                              (16384, 16, True), (8192, 8, False)):
        name = f"copy triton {block}x{warps}" + (" PDL" if pdl else "")
        out[name] = [lambda s=s, d=d, b=block, w=warps, p=pdl: copies.copy(s, d, b, w, p) for s, d in zip(srcs, dsts)]
    for per_sm in (4, 8):
        grid = (sms * per_sm,)
        out[f"copy triton persistent {per_sm}/SM 8192x8 PDL"] = [
            lambda s=s, d=d, g=grid: _copy_persistent[g](s, d, n, BLOCK=8192, num_warps=8, launch_pdl=True)
            for s, d in zip(srcs, dsts)]
    return out


def norm_variants(T: int, H: int, k: int, sms: int) -> dict:
    xs = [torch.randn(T, H, device="cuda", dtype=BF16) for _ in range(k)]
    w = torch.randn(H, device="cuda", dtype=BF16)
    block, warps, consts, _, use_pdl = norm_ops._plan(H, BF16, 0, False, True, None)[:5]

    def op_warps(x, nw):
        def call():
            y = torch.empty_like(x)
            norm_ops._launch(0, (T,), (x, x, w, y, T, H, H, H, H, EPS), consts, num_warps=nw, pdl=use_pdl)
        return call

    def pipelined(x):
        def call():
            y = torch.empty_like(x)
            _norm_pipelined[(min(T, sms * 8),)](x, w, y, T, H, EPS, BLOCK_H=block, num_warps=8, launch_pdl=True)
        return call

    out = {"op (lmkernels.rms_norm)": [lambda x=x: lmkernels.rms_norm(x, w, EPS) for x in xs]}
    for nw in (4, 16):
        out[f"op kernel, {nw} warps"] = [op_warps(x, nw) for x in xs]
    out["pipelined rows, 8/SM"] = [pipelined(x) for x in xs]
    # the probe kernels must compute what the op computes (the pipelined one in its own layout: close)
    ref = lmkernels.rms_norm(xs[0], w, EPS)
    for name, calls in out.items():
        y = torch.empty_like(xs[0])
        if name.startswith("op kernel"):
            norm_ops._launch(0, (T,), (xs[0], xs[0], w, y, T, H, H, H, H, EPS), consts,
                             num_warps=int(name.split()[2]), pdl=use_pdl)
        elif name.startswith("pipelined"):
            _norm_pipelined[(min(T, sms * 8),)](xs[0], w, y, T, H, EPS, BLOCK_H=block, num_warps=8, launch_pdl=True)
        else:
            continue
        torch.cuda.synchronize()
        err = (y.float() - ref.float()).abs().max().item()
        assert err <= 2e-2 * ref.float().abs().max().item(), (name, err)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sms = num_sms(0)
    copy = copy_bandwidth_gbs()
    print(f"### rms_norm's bytes at T = 4096: every copy of them, and the op; {describe_device()}\n")
    print(f"copy bandwidth (1 GiB), measured in this run: {copy:.0f} GB/s; µs: CUDA-graph medians a call, the "
          f"median of {args.rounds} interleaved rounds; bytes = 2 T H 2 (+ 2 H for the norms' weight)\n")
    print("| T | H | variant | µs | GB/s | of copy | min round µs | max round µs |\n"
          "|---|---|---|---:|---:|---:|---:|---:|")
    for T, H in ((4096, 4096), (4096, 8192)):
        nbytes = 2 * T * H * 2
        k = n_input_sets(nbytes)
        variants = {**norm_variants(T, H, k, sms), **copy_variants(T * H, k, sms)}
        times = graph_us_rounds(variants, args.rounds)
        for name, ts in times.items():
            us = statistics.median(ts)
            b = nbytes + (0 if name.startswith("copy") else 2 * H)
            gbs = b / us / 1e3
            print(f"| {T} | {H} | {name} | {us:.2f} | {gbs:.0f} | {gbs / copy:.3f} | {min(ts):.2f} | {max(ts):.2f} |",
                  flush=True)
        del variants
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
