"""Probe: how many thread-block clusters an H100 holds at once (cuOccupancyMaxActiveClusters, the
driver's answer for a kernel, its block size, its shared memory and a cluster size), for ll_gemm's
cluster entries, against the clusters each call launches.

Why: session 34 found the bf16 M = 16 entries of 7168 x 256 / 384 1.3-1.7 µs slower in clusters
(8 x 16 x 1024 tiles, one program an SM), and session 35's held-out round 7680 x 256 at M = 12-16
1.02-1.12x slower (128 programs in clusters of 8); the guess, never checked, was that a cluster must
sit inside one GPC, so that fewer clusters fit at once than SMs / cluster size, and the grid ran in
two waves. The heuristic's cap from M = 9 (grids to 0.85x the SMs) was fitted to those points.
Prediction (before the run): at one CTA an SM, clusters of 8 fit 16 at once (two a GPC in 8 GPCs of
16-18 SMs: 128 CTAs, not 132), clusters of 2 fit 66; so grids of 16 clusters of 8 (128 CTAs) fit one
wave only where a CTA's shared memory lets two share an SM.
Outcome (probe_cluster_occupancy.md): half right. At one CTA an SM the H100 holds 66 clusters of 2,
30 of 4 (120 CTAs), 15 of 8 (120, not 128: wrong by one) and 7 of 16 (112): clusters of 4-16 leave
12-20 SMs idle, and 16 clusters of 8 (128 CTAs) take two waves. Every shipped table entry in
clusters fits one wave at its own shared memory (25-102 KB a CTA: 32-248 clusters at once against
the 8-32 it launches). The heuristic's cap from M = 9 (0.85 x 132 = 112 CTAs) is the 112-120 CTAs
that one CTA an SM holds in clusters of 4-16; whether the held-out 7680 x 256 loss it answers was a
second wave this does not settle (that kernel was not among the probe's points).

    python benchmarks/probe_cluster_occupancy.py
"""
from __future__ import annotations

import ctypes

import torch

import lmkernels
from lmkernels.ops import small_gemm as sg
from lmkernels.runtime import launch
from lmkernels.runtime.device import describe_device
from lmkernels.tuning.ll_gemm import operands

_CLUSTER_DIMENSION, _SCHEDULING_POLICY, _SPREAD = 4, 5, 1
_NON_PORTABLE_CLUSTER_SIZE_ALLOWED = 14
_MAX_DYNAMIC_SHARED = 8


class _Attr(ctypes.Structure):  # CUlaunchAttribute: id, pad to 8, a 64-byte value union
    _fields_ = [("id", ctypes.c_uint), ("pad", ctypes.c_uint), ("value", ctypes.c_uint * 16)]


class _Config(ctypes.Structure):  # CUlaunchConfig
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3), ("shared", ctypes.c_uint),
                ("stream", ctypes.c_void_p), ("attrs", ctypes.POINTER(_Attr)), ("n_attrs", ctypes.c_uint)]


_cuda = ctypes.CDLL("libcuda.so.1")


def max_active_clusters(function: int, warps: int, shared: int, cluster: int) -> int:
    """The driver's count of clusters of `cluster` CTAs the GPU holds at once for this kernel."""
    attrs = (_Attr * 2)()
    attrs[0].id = _CLUSTER_DIMENSION
    attrs[0].value[0], attrs[0].value[1], attrs[0].value[2] = cluster, 1, 1
    attrs[1].id = _SCHEDULING_POLICY
    attrs[1].value[0] = _SPREAD  # as Triton's launcher asks
    cfg = _Config()
    cfg.grid[0], cfg.grid[1], cfg.grid[2] = cluster, 1, 1
    cfg.block[0], cfg.block[1], cfg.block[2] = 32 * warps, 1, 1
    cfg.shared, cfg.attrs, cfg.n_attrs = shared, attrs, 2
    _cuda.cuFuncSetAttribute(ctypes.c_void_p(function), _NON_PORTABLE_CLUSTER_SIZE_ALLOWED, ctypes.c_int(1))
    n = ctypes.c_int(-1)
    err = _cuda.cuOccupancyMaxActiveClusters(ctypes.byref(n), ctypes.c_void_p(function), ctypes.byref(cfg))
    return n.value if err == 0 else -err


def main() -> int:
    points = [(K, N, M, tag) for tag in ("bf16", "fp8") for K, N in ((7168, 256), (7168, 384), (6144, 256), (4096, 256),
                                                                 (5120, 128)) for M in (4, 8, 16)]
    seen = []
    orig = launch.Launcher.__call__

    def spy(self, device, grid, args, consts, *a, **kw):
        seen.append((grid[0], kw.get("cluster", 1), kw.get("cluster_smem", 0)))
        return orig(self, device, grid, args, consts, *a, **kw)

    launch.Launcher.__call__ = spy
    print(f"### thread-block clusters held at once (cuOccupancyMaxActiveClusters, SPREAD) on {describe_device()}\n")
    print("| point | clusters launched x size | CTA shared bytes | warps | max active at its size | "
          "one wave? | max active at 1 CTA an SM: size 2 / 4 / 8 / 16 |\n|---|---:|---:|---:|---:|---|---|")
    for K, N, M, tag in points:
        seen.clear()
        sg._launch.cache.clear()
        x, w, xs, ws = operands(M, N, K, tag, "cuda", 5)
        lmkernels.ll_gemm(x, w, x_scale=xs, w_scale=ws)
        torch.cuda.synchronize()
        clustered = [s for s in seen if s[1] > 1]
        if not clustered:
            print(f"| {tag} {K}x{N} M={M} | no cluster | | | | | |")
            continue
        grid, size, _ = clustered[0]
        (_, function, packed, *_rest), = [e for e in sg._launch.cache.values() if e[2][1] == size]
        warps, _, shared = packed
        own = max_active_clusters(function, warps, shared, size)
        optin = torch.cuda.get_device_properties(0).shared_memory_per_block_optin
        _cuda.cuFuncSetAttribute(ctypes.c_void_p(function), _MAX_DYNAMIC_SHARED, ctypes.c_int(optin))
        one = " / ".join(str(max_active_clusters(function, warps, optin, s)) for s in (2, 4, 8, 16))
        print(f"| {tag} {K}x{N} M={M} | {grid} x {size} | {shared} | {warps} | {own} | "
              f"{'yes' if grid <= own else 'NO'} | {one} |", flush=True)
    launch.Launcher.__call__ = orig
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
