"""Config sweep behind ops/kv_cache.py:kv_config (GPU; a developer tool).

Times _reshape_and_cache_kernel through its Launcher in pointer mode with configs the heuristic
may not pick (tokens a program BLOCK_T x warps), 8 heads of 128, block 16, bf16 key/value: NHD,
HND and fp8 e4m3 (per-tensor scale). Each config's caches are checked bit-identical to the op's
default once. Then the eager host time of a T = 1 call beside torch.mul's.
python benchmarks/sweep_kv_cache.py [nhd|hnd|fp8|host]...
"""
import sys

import torch

import lmkernels
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, host_us, n_input_sets
from lmkernels.ops import kv_cache as kv_ops

H, D, BS = 8, 128, 16
DT = torch.bfloat16


def _set(T, layout, fp8):
    nb = max(64, -(-(T * 5 // 4) // BS))
    key, value = (torch.randn(T, H, D, device="cuda", dtype=DT) for _ in range(2))
    cdt = torch.float8_e4m3fn if fp8 else DT
    shape = (nb, H, BS, D) if layout == "HND" else (nb, BS, H, D)
    kc, vc = (torch.zeros(shape, device="cuda", dtype=cdt) for _ in range(2))
    if layout == "HND":
        kc, vc = kc.transpose(1, 2), vc.transpose(1, 2)
    slots = torch.randperm(nb * BS, device="cuda")[:T]
    scale = torch.tensor([0.05], device="cuda")
    return key, value, kc, vc, slots, scale


def _launch(s, block_t, warps, fp8):
    key, value, kc, vc, slots, scale = s
    T = slots.shape[0]
    cs = kc.stride()
    consts = (H, D, 1 if fp8 else 0, fp8, False, block_t, H, D, 0, True, False)
    ks = scale if fp8 else key
    args = (key, value, kc, vc, slots, T, ks, ks, kc.shape[0], BS, H * D, D, H * D, D, cs[0], cs[1], cs[2], 1, 0, 0)
    kv_ops._launch(0, (-(-T // block_t), 1), args, consts, num_warps=warps, pdl=True)


def sweep(copy, layout, fp8, tokens=(1, 16, 256, 4096, 32768)):
    print(f"\n{layout} {'fp8 e4m3' if fp8 else 'bf16'}\n| T | BLOCK_T | warps | µs | GB/s | of copy |"
          "\n|---|---|---|---:|---:|---:|")
    for T in tokens:
        nbytes = 2 * T * H * D * (2 + (1 if fp8 else 2)) + 8 * T
        sets = [_set(T, layout, fp8) for _ in range(n_input_sets(nbytes))]
        scales = (sets[0][5], sets[0][5]) if fp8 else (None, None)
        lmkernels.reshape_and_cache_flash(*sets[0][:5], "fp8" if fp8 else "auto", *scales)  # the default config
        want = [c.clone() for c in sets[0][2:4]]
        for block_t in (1, 2, 4, 8, 16):
            if block_t > max(1, T):
                continue
            for warps in (1, 2, 4, 8, 16):
                vectors = block_t * H * D * 2 // 16
                if vectors < 32 * warps // 2 or vectors > 32 * warps * 16:
                    continue  # under half a vector or over 16 vectors a thread
                for c in sets[0][2:4]:
                    c.zero_()
                _launch(sets[0], block_t, warps, fp8)
                same = all(torch.equal(a.view(torch.uint8), b.view(torch.uint8)) for a, b in zip(sets[0][2:4], want))
                us = graph_us([lambda s=s: _launch(s, block_t, warps, fp8) for s in sets], reps=30)
                gbs = nbytes / us / 1e3
                print(f"| {T} | {block_t} | {warps} | {us:.2f} | {gbs:.0f} | {gbs / copy:.3f} |"
                      + ("" if same else " MISMATCH"), flush=True)
        del sets
        torch.cuda.empty_cache()


def host():
    s = _set(1, "NHD", False)
    x = torch.randn(4096, device="cuda", dtype=DT)
    y = torch.empty_like(x)
    rows = {"torch.mul(x, 2, out=y)": lambda: torch.mul(x, 2, out=y),
            "reshape_and_cache_flash T=1": lambda: lmkernels.reshape_and_cache_flash(*s[:5]),
            "  with k_scale, v_scale (unread)": lambda: lmkernels.reshape_and_cache_flash(*s[:5], "auto", s[5], s[5])}
    s8 = _set(1, "NHD", True)
    rows["  fp8, per-tensor scales"] = lambda: lmkernels.reshape_and_cache_flash(*s8[:5], "fp8", s8[5], s8[5])
    best = {name: float("inf") for name in rows}
    for _ in range(10):  # interleaved rounds: a busy spell on a shared host hits every row
        for name, fn in rows.items():
            best[name] = min(best[name], host_us(fn, 2000, rounds=1))
    for name, us in best.items():
        print(f"{name:40s} {us:6.2f} µs")


if __name__ == "__main__":
    what = sys.argv[1:] or ["nhd", "hnd", "fp8", "host"]
    copy = copy_bandwidth_gbs() if set(what) - {"host"} else 0.0
    print(f"copy {copy:.0f} GB/s")
    for w in what:
        if w == "host":
            host()
        else:
            sweep(copy, "HND" if w == "hnd" else "NHD", w == "fp8")
