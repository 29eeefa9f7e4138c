"""Probe: ll_gemm's one-launch split-K, whole-share L2 prefetch and early launch, against the
two-launch split-K it replaces, on the router shapes (H100, CUDA-graph medians, pdl on unless said,
weights rotating over 4x the L2 as in `lmkernels bench small_gemm`).

Rows per (shape, M): the heuristic with ONE_LAUNCH False (the old path: partials + reduce
kernel), the heuristic as it stands, then + PREFETCH, + PREFETCH + EARLY_LAUNCH, pdl=False, and
a sweep of tiles and split counts with all three on. Prints markdown as it goes (a partial table
survives a timeout); stops sweeping after --minutes.

    python benchmarks/probe_ll_gemm.py [--minutes 7]
"""
from __future__ import annotations

import argparse
import time

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

import lmkernels
from lmkernels.bench.harness import graph_us, n_input_sets
from lmkernels.ops.small_gemm import ll_gemm_config
from lmkernels.runtime.device import describe_device, num_sms

FP8 = torch.float8_e4m3fn
CASES = [(7168, 256, False), (7168, 384, False), (5120, 128, False), (4096, 8, False), (2880, 64, False),
         (7168, 256, True)]
MS = (1, 4, 16)


@triton.jit
def _chain_floor_kernel(x_ptr, out_ptr, part_ptr, count_ptr, PER_TILE: tl.constexpr, LAST_ONE: tl.constexpr):
    """The least a dependent kernel in a PDL chain does: wait, let the next launch, read one value
    of the previous kernel's output, write one. LAST_ONE: also the split-K handshake (partial
    store, barrier, acq_rel atomic, the tile's last program reads PER_TILE partials)."""
    gdc_wait()
    gdc_launch_dependents()
    pid = tl.program_id(0)
    v = tl.load(x_ptr + pid)
    if LAST_ONE:
        tile = pid // PER_TILE
        tl.store(part_ptr + pid, v)
        tl.debug_barrier()
        if tl.atomic_add(count_ptr + tile, 1, sem="acq_rel", scope="gpu") == PER_TILE - 1:
            s = tl.sum(tl.load(part_ptr + tile * PER_TILE + tl.arange(0, PER_TILE), cache_modifier=".cg"), axis=0)
            tl.store(out_ptr + tile, s)
            tl.store(count_ptr + tile, 0)
    else:
        tl.store(out_ptr + pid, v + 1.0)


def chain_floor(programs: int = 224, per_tile: int = 16) -> list[str]:
    """µs a call of _chain_floor_kernel in a 32-call graph, launched with PDL, both variants."""
    rows = []
    for last_one in (False, True):
        bufs = [(torch.randn(programs, device="cuda"), torch.empty(programs, device="cuda"),
                 torch.empty(programs, device="cuda"), torch.zeros(programs // per_tile, dtype=torch.int32,
                                                                   device="cuda")) for _ in range(8)]
        us = graph_us([lambda b=b: _chain_floor_kernel[(programs,)](*b, PER_TILE=per_tile, LAST_ONE=last_one,
                                                                       launch_pdl=True) for b in bufs])
        rows.append(f"| {programs} programs, {'+ split-K handshake' if last_one else 'wait, read, write'} | {us:.2f} |")
    return rows


def _sets(M, N, K, fp8):
    out = []
    for i in range(n_input_sets(N * K * (1 if fp8 else 2))):
        g = torch.Generator(device="cuda").manual_seed(300 + i)
        x = torch.randn(M, K, device="cuda", generator=g)
        w = torch.randn(N, K, device="cuda", generator=g)
        if fp8:
            out.append(((x * 8).to(FP8), (w * 8).to(FP8), torch.full((), 0.1, device="cuda"),
                        torch.full((), 0.01, device="cuda")))
        else:
            out.append((x.bfloat16(), w.bfloat16(), None, None))
    return out


def _time(sets, cfg, pdl=True):
    return graph_us([lambda x=x, w=w, a=a, b=b: lmkernels.ll_gemm(x, w, x_scale=a, w_scale=b, pdl=pdl, config=cfg)
                     for x, w, a, b in sets])


def _sweep(M, N, K, fp8, sms):
    """Tiles and splits with ONE_LAUNCH + PREFETCH + EARLY_LAUNCH; full-K FMA rows (no split-K:
    one program per 1-4 outputs) at M <= 4; PRELOAD wherever a program has one K tile."""
    dot = M > 1
    base = {"USE_DOT": dot, "BLOCK_M": 16 if dot else 1, "ONE_LAUNCH": True, "PREFETCH": True, "EARLY_LAUNCH": True}
    if M <= 4:  # full-K FMA rows: the whole [BLOCK_N, K] weight block in registers before the wait
        bk = 1 << (K - 1).bit_length()
        for bn, warps in ((1, 4), (1, 8), (2, 8), (2, 16), (4, 16)):
            yield dict(base, USE_DOT=False, BLOCK_M=M if M != 3 else 4, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=1,
                       num_stages=1, num_warps=warps, PRELOAD=True, PREFETCH=False)
        for bn, warps in ((2, 8), (4, 8)):
            yield dict(base, USE_DOT=False, BLOCK_M=M if M != 3 else 4, BLOCK_N=bn, BLOCK_K=bk // 2, SPLIT_K=2,
                       num_stages=1, num_warps=warps, PRELOAD=True, PREFETCH=False)
    for bn in (16, 32):
        for bk in ((256, 512) if fp8 else (128, 256, 512)):
            n_tiles, k_tiles = -(-N // bn), -(-K // bk)
            for f in (1, 2):
                sk = max(1, min(64, k_tiles, round(f * sms / n_tiles)))
                yield dict(base, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=sk, num_stages=1 if sk * bk >= K else 3)
            if k_tiles <= 64 and n_tiles * k_tiles <= 4 * sms:
                yield dict(base, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=k_tiles, num_stages=1, PRELOAD=True, PREFETCH=False)


def _short(c):
    return (f"{'dot' if c['USE_DOT'] else 'fma'} {c['BLOCK_M']}x{c['BLOCK_N']}x{c['BLOCK_K']} split {c['SPLIT_K']}"
            f" w{c.get('num_warps', 4)} st{c.get('num_stages', 1)}"
            f"{' 1L' if c.get('ONE_LAUNCH') else ' 2L'}{' pf' if c.get('PREFETCH') else ''}"
            f"{' early' if c.get('EARLY_LAUNCH') else ''}{' preload' if c.get('PRELOAD') else ''}")


def sweep_best(time_config, configs, row: str, every: list, t_end: float) -> tuple:
    """(best µs, its config's name) over configs, each timed by time_config(config) until t_end; a
    config the GPU cannot run is reported as an HTML comment, every timing appended to `every` as a
    markdown row starting with `row` ("| shape | dtype")."""
    best = (float("inf"), None)
    for c in configs:
        if time.time() > t_end:
            break
        try:
            us = time_config(c)
        except Exception as e:  # noqa: BLE001 - a config the GPU cannot run is reported
            print(f"<!-- {_short(c)}: {type(e).__name__}: {str(e)[:100]} -->")
            continue
        best = min(best, (us, _short(c)), key=lambda r: r[0])
        every.append(f"{row} | {_short(c)} | {us:.2f} |")
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=7.0)
    args = ap.parse_args()
    t_end = time.time() + 60 * args.minutes
    sms = num_sms(torch.cuda.current_device())
    print(f"### ll_gemm one-launch probe on {describe_device()}\n")
    print("| PDL chain floor (32 calls a graph) | µs a call |\n|---|---:|")
    for n in (128, 256):
        print("\n".join(chain_floor(n)), flush=True)
    print()
    print("| shape | dtype | 2 launches | 1 launch | + prefetch | + prefetch + early | 1L pdl=False | best swept | "
          "its config |\n|---|---|---:|---:|---:|---:|---:|---:|---|", flush=True)
    every = ["| shape | dtype | config | µs |", "|---|---|---|---:|"]
    for K, N, fp8 in CASES:
        for M in MS:
            sets = _sets(M, N, K, fp8)
            h = ll_gemm_config(M, N, K, 1 if fp8 else 2, sms)
            fixed = [_time(sets, dict(h, ONE_LAUNCH=False)), _time(sets, dict(h, ONE_LAUNCH=True)),
                     _time(sets, dict(h, ONE_LAUNCH=True, PREFETCH=True)),
                     _time(sets, dict(h, ONE_LAUNCH=True, PREFETCH=True, EARLY_LAUNCH=True)),
                     _time(sets, dict(h, ONE_LAUNCH=True), pdl=False)]
            best = sweep_best(lambda c, sets=sets: _time(sets, c), _sweep(M, N, K, fp8, sms),
                              f"| M={M} N={N} K={K} | {'fp8' if fp8 else 'bf16'}", every, t_end)
            print(f"| M={M} N={N} K={K} | {'fp8' if fp8 else 'bf16'} | " + " | ".join(f"{t:.2f}" for t in fixed) +
                  f" | {best[0]:.2f} | {best[1] or 'not swept (time)'} |", flush=True)
            del sets
            torch.cuda.empty_cache()
    print("\n### every swept config\n")
    print("\n".join(every))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
