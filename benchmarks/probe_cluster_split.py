"""Probe: a split-K finish inside a thread-block cluster (sm90), against the counter handshake that
ll_gemm and scaled_mm use, in a PDL chain (H100, CUDA-graph medians, 32 calls a graph).

probe_split_poll.md found that any partial one SM stores to L2 and another loads back costs about a
microsecond in the chain (the counter handshake +1.2-1.6 µs over a kernel that only waits, reads and
writes; polling +1.0-1.4), which is half of issue 6's 2 µs bar on its own. A cluster of the SPLITS
programs of one output tile can exchange partials without L2: each program leaves its partial in
its own shared memory, one cluster barrier (hardware, inside the GPC) publishes it, and each program
then sums one 1 / SPLITS slice of the tile from every peer's shared memory (distributed shared
memory, ld.shared::cluster) and stores that slice of the output; a second barrier keeps every
program alive until its peers have read it. Triton 3.6 has no cluster API of its own: the kernel is
compiled as usual (num_ctas 1: program_id is the CTA's index), launched through Triton's own C
launcher with a cluster size in place of num_ctas (its launcher sets the cluster-dimension
attribute, and allows 16 with the non-portable attribute), and the barrier, mapa and the shared
loads are PTX in tl.inline_asm_elementwise. The exchange buffer sits past the shared memory Triton
allocated (`global_smem`, the module's dynamic shared array, at the offset metadata.shared).

Modes (each program a 16 x 16 fp32 partial):
  0 wait, read a tile, write it                                      (the chain floor)
  1 + the counter handshake (kernels/split_k.last_to_arrive)          (what ships)
  3 + a cluster: partials through L2 (.cg), one cluster barrier, every program finishes a slice
  4 + a cluster: partials in distributed shared memory, two barriers, every program a slice
  9 + a cluster: partials pushed to their finisher's shared memory by bulk copies (one thread a
    peer) that complete on its mbarrier: no generic-proxy fence anywhere (modes 6 / 8 show the
    release fence, not the barrier, costs ~0.5 µs); the barrier armed and the cluster synchronised
    (relaxed) before gdc_wait; a relaxed barrier at the end keeps sources alive until copied
  5 mode 0 launched as clusters of SPLITS; 6 the same with one cluster barrier; 7 with a relaxed
    one (no release fence); 8 with one barrier before gdc_wait

Prediction (session 34, before the run): mode 1 +1.0-1.4 µs over mode 0, as in
probe_split_poll.md; mode 3 +0.6-0.9 (the barrier is GPC-local, no atomic round trip to L2, but the
partials still go through it); mode 4 +0.2-0.4 (no L2 round trip at all: two barriers and a
shared-memory exchange inside the GPC). If mode 4 holds, split-K's handshake stops being the wall.
Outcome (probe_cluster_split.md): mode 1 +1.2-1.6 (right); mode 3 +0.8-1.0 (right); mode 4 +1.1-1.6
(wrong: no better than the counter). Modes 6-8 said why: a cluster barrier with release semantics
costs ~0.5 µs, relaxed ~0.03, so the generic-proxy release fence is the price, and mode 4 pays it
twice. Mode 9, added then, moves the partials with bulk copies that complete on the receiver's
mbarrier (no fence): +0.4-0.6 µs (1.41-1.61 against the counter's 2.19-2.56). Built into ll_gemm
as CLUSTER (kernels/cluster.py).

    python benchmarks/probe_cluster_split.py
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from lmkernels.bench.harness import graph_us
from lmkernels.kernels.split_k import last_to_arrive
from lmkernels.runtime.device import describe_device

TILE = tl.constexpr(256)  # a 16 x 16 fp32 partial tile a program


@triton.jit
def _cluster_sync(dep):
    """Every thread of every CTA of the cluster arrives (release: this CTA's earlier stores, shared
    and global, become visible to the cluster) and waits for all (acquire)."""
    return tl.inline_asm_elementwise(
        "barrier.cluster.arrive.release.aligned; barrier.cluster.wait.acquire.aligned; mov.u32 $0, 0;",
        "=r,r", [dep], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _cluster_sync_relaxed(dep):
    """_cluster_sync without the release: no fence, the bare barrier (mode 7)."""
    return tl.inline_asm_elementwise(
        "barrier.cluster.arrive.relaxed.aligned; barrier.cluster.wait.aligned; mov.u32 $0, 0;",
        "=r,r", [dep], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _st_own_smem(byte_offs, v):
    """v into this CTA's shared memory at global_smem + byte_offs (elementwise)."""
    return tl.inline_asm_elementwise(
        "{ .reg .u32 a; mov.u32 a, global_smem; add.u32 a, a, $1; st.shared.f32 [a], $2; mov.u32 $0, 0; }",
        "=r,r,f", [byte_offs, v], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _ld_peer_smem(byte_offs, rank):
    """The fp32 at global_smem + byte_offs in the shared memory of the cluster's CTA `rank`."""
    return tl.inline_asm_elementwise(
        "{ .reg .u32 a, r; mov.u32 a, global_smem; add.u32 a, a, $1; mapa.shared::cluster.u32 r, a, $2; "
        "ld.shared::cluster.f32 $0, [r]; }",
        "=f,r,r", [byte_offs, rank], dtype=tl.float32, is_pure=False, pack=1)


@triton.jit
def _smem_op(asm: tl.constexpr, args):
    return tl.inline_asm_elementwise(asm, "=r" + ",r" * len(args), args, dtype=tl.int32, is_pure=False, pack=1)


# Mode 9's PTX. global_smem + byte offsets; tid 0 only where it says @p.
_TID0 = "{ .reg .pred p; .reg .u32 t, a, b, c, d; mov.u32 t, %tid.x; setp.eq.u32 p, t, 0; mov.u32 a, global_smem; "
_INIT = tl.constexpr(_TID0 + ("add.u32 a, a, $1; @p mbarrier.init.shared::cta.b64 [a], 1; "
                 "@p mbarrier.arrive.expect_tx.shared::cta.b64 _, [a], $2; fence.mbarrier_init.release.cluster; "
                 "mov.u32 $0, 0; }"))
# $1 source offset, $2 destination offset, $3 barrier offset, $4 destination rank, $5 bytes
_SEND = tl.constexpr(_TID0 + ("add.u32 b, a, $2; add.u32 c, a, $3; add.u32 a, a, $1; mapa.shared::cluster.u32 b, b, $4; "
                 "mapa.shared::cluster.u32 c, c, $4; "
                 "@p cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [b], [a], $5, [c]; "
                 "mov.u32 $0, 0; }"))
_TRY_WAIT = tl.constexpr("{ .reg .pred p; .reg .u32 a; mov.u32 a, global_smem; add.u32 a, a, $1; "
             "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [a], 0; selp.u32 $0, 1, 0, p; }")


@triton.jit
def _relaxed_sync(dep):
    return tl.inline_asm_elementwise(
        "barrier.cluster.arrive.relaxed.aligned; barrier.cluster.wait.aligned; mov.u32 $0, 0;",
        "=r,r", [dep], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _st_smem_async_visible(byte_offs, v):
    """v into own shared memory, then made visible to the async proxy (the bulk copies)."""
    return tl.inline_asm_elementwise(
        "{ .reg .u32 a; mov.u32 a, global_smem; add.u32 a, a, $1; st.shared.f32 [a], $2; "
        "fence.proxy.async.shared::cta; mov.u32 $0, 0; }",
        "=r,r,f", [byte_offs, v], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _ld_own_smem(byte_offs):
    return tl.inline_asm_elementwise(
        "{ .reg .u32 a; mov.u32 a, global_smem; add.u32 a, a, $1; ld.shared.f32 $0, [a]; }",
        "=f,r", [byte_offs], dtype=tl.float32, is_pure=False, pack=1)


@triton.jit
def _probe_kernel(x_ptr, out_ptr, part_ptr, count_ptr, smem_base, SPLITS: tl.constexpr, MODE: tl.constexpr):
    pid = tl.program_id(0)
    pre = 0
    if MODE == 8:  # the cluster barrier before the wait, overlapping the previous kernel
        pre = _cluster_sync(pid)
    # mode 9: the cluster's SPLITS programs push slices to each other with bulk copies
    SLEN: tl.constexpr = (triton.cdiv(TILE, SPLITS) + 3) // 4 * 4  # a slice, 16-byte multiples
    RECV: tl.constexpr = 16 + TILE * 4  # [barrier | own partial | SPLITS received slices]
    rank = pid % SPLITS
    my_len = tl.minimum(SLEN, TILE - rank * SLEN)
    if MODE == 9:  # before the wait: the barrier armed for its bytes, then every peer's armed
        pre = _relaxed_sync(_smem_op(_INIT, [smem_base, SPLITS * my_len * 4]))
    gdc_wait()
    gdc_launch_dependents()
    offs = tl.arange(0, TILE)
    v = tl.load(x_ptr + pid * TILE + offs)
    if MODE == 9:
        tile = pid // SPLITS
        w = _st_smem_async_visible(smem_base + 16 + offs * 4 + pre, v)
        dep = tl.sum(w)  # and a CTA barrier: every thread's store is in before the copies
        for r in tl.static_range(SPLITS):
            r_len = tl.minimum(SLEN, TILE - r * SLEN)
            dep += _smem_op(_SEND, [smem_base + 16 + r * SLEN * 4 + dep, smem_base + RECV + rank * SLEN * 4,
                                    smem_base, r, r_len * 4])
        while _smem_op(_TRY_WAIT, [smem_base + dep]) == 0:
            pass
        s = tl.arange(0, triton.next_power_of_2(SPLITS))
        jj = tl.arange(0, triton.next_power_of_2(SLEN))
        m = (s < SPLITS)[:, None] & (jj < my_len)[None, :]
        p = _ld_own_smem(smem_base + RECV + tl.where(m, s[:, None] * SLEN + jj[None, :], 0) * 4)
        p = tl.where(m, p, 0.0)
        tl.store(out_ptr + tile * TILE + rank * SLEN + jj, tl.sum(p, axis=0), mask=jj < my_len)
        _relaxed_sync(tl.sum(p.to(tl.int32, bitcast=True) * 0))  # every copy read its source
    elif MODE == 0 or MODE == 5 or MODE == 8:
        tl.store(out_ptr + pid * TILE + offs + pre, v + 1.0)
    elif MODE == 7:
        done = _cluster_sync_relaxed(tl.sum(v.to(tl.int32, bitcast=True) * 0))
        tl.store(out_ptr + pid * TILE + offs + done, v + 1.0)
    elif MODE == 6:
        done = _cluster_sync(tl.sum(v.to(tl.int32, bitcast=True) * 0))
        tl.store(out_ptr + pid * TILE + offs + done, v + 1.0)
    elif MODE == 1:  # split-major, as in ll_gemm
        tiles = tl.num_programs(0) // SPLITS
        split = pid // tiles
        tile = pid - split * tiles
        tl.store(part_ptr + (tile * SPLITS + split) * TILE + offs, v)
        if last_to_arrive(count_ptr + tile, SPLITS):
            s = tl.arange(0, triton.next_power_of_2(SPLITS))
            p = tl.load(part_ptr + (tile * SPLITS + s)[:, None] * TILE + offs[None, :], mask=(s < SPLITS)[:, None],
                        other=0.0, cache_modifier=".cg")
            tl.store(out_ptr + tile * TILE + offs, tl.sum(p, axis=0))
            tl.store(count_ptr + tile, 0)
    else:  # a cluster per tile: pid = tile * SPLITS + rank
        tile = pid // SPLITS
        rank = pid - tile * SPLITS
        SLICE: tl.constexpr = triton.next_power_of_2(triton.cdiv(TILE, SPLITS))
        j = rank * SLICE + tl.arange(0, SLICE)  # this program's slice of the tile
        s = tl.arange(0, triton.next_power_of_2(SPLITS))
        m = (s < SPLITS)[:, None] & (j < TILE)[None, :]
        if MODE == 3:
            tl.store(part_ptr + (tile * SPLITS + rank) * TILE + offs, v)
            done = _cluster_sync(tl.sum(v.to(tl.int32, bitcast=True) * 0))
            p = tl.load(part_ptr + (tile * SPLITS + s + done)[:, None] * TILE + j[None, :], mask=m, other=0.0,
                        cache_modifier=".cg")
            tl.store(out_ptr + tile * TILE + j, tl.sum(p, axis=0), mask=j < TILE)
        else:
            w = _st_own_smem(smem_base + offs * 4, v)
            done = _cluster_sync(tl.sum(w))
            jc = tl.where(j < TILE, j, 0)  # past the tile: a valid address, masked below
            p = _ld_peer_smem(smem_base + (jc * 4)[None, :] + done + s[:, None] * 0, tl.where(m, s[:, None], rank))
            p = tl.where(m, p, 0.0)
            tl.store(out_ptr + tile * TILE + j, tl.sum(p, axis=0), mask=j < TILE)
            _cluster_sync(tl.sum(p.to(tl.int32, bitcast=True) * 0))  # peers stay until every slice is read


def _cluster_call(kernel, programs: int, splits: int, args, consts):
    """A zero-argument launch of the compiled kernel as clusters of `splits` CTAs (see docstring)."""
    ck = kernel.warmup(*args, 0, grid=(programs,), launch_pdl=True, **consts)
    ck._init_handles()
    smem = (ck.metadata.shared + 15) // 16 * 16
    packed = (ck.metadata.num_warps, splits, smem + 16 + 256 * 4 + splits * 256 * 4)
    ptrs = [a.data_ptr() for a in args]
    stream = torch.cuda.current_stream

    def call():
        ck.run(programs // splits, 1, 1, stream().cuda_stream, ck.function, packed, None, None, None,
               *ptrs, smem, *consts.values())
    return call


def main() -> int:
    print(f"### split-K finish in a PDL chain: counter handshake vs a cluster, on {describe_device()}\n")
    print("µs a call, CUDA-graph medians, 32 calls a graph, each program a 16 x 16 fp32 partial\n")
    print("| programs | splits | 0: wait, read, write | 5: 0 as clusters | 6: 5 + a cluster barrier "
          "| 7: 5 + a relaxed barrier | 8: 5 + a barrier before the wait "
          "| 1: + counter handshake | 3: + cluster, L2 partials | 4: + cluster, DSMEM partials "
          "| 9: + cluster, DSMEM bulk copies |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tiles, splits in ((16, 8), (32, 4), (16, 7), (64, 2), (8, 16)):
        programs = tiles * splits
        row = []
        for mode in (0, 5, 6, 7, 8, 1, 3, 4, 9):
            bufs = [(torch.randn(programs * 256, device="cuda"), torch.full((programs * 256,), float("nan"), device="cuda"),
                     torch.empty(programs * 256, device="cuda"), torch.zeros(tiles, dtype=torch.int32, device="cuda"))
                    for _ in range(8)]
            consts = {"SPLITS": splits, "MODE": mode}
            try:
                if mode in (0, 1):  # 5 and 6: mode 0's work launched as clusters, 6 with one barrier
                    calls = [lambda b=b: _probe_kernel[(programs,)](*b, 0, **consts, launch_pdl=True) for b in bufs]
                else:
                    calls = [_cluster_call(_probe_kernel, programs, splits, b, consts) for b in bufs]
                calls[0]()
                torch.cuda.synchronize()
                x, out = bufs[0][0], bufs[0][1]
                if mode in (0, 5, 6, 7, 8):
                    ok = torch.equal(out, x + 1.0)
                else:
                    lay = (splits, tiles, 256) if mode == 1 else (tiles, splits, 256)
                    want = x.view(*lay).sum(0 if mode == 1 else 1)
                    ok = torch.allclose(out[:tiles * 256].view(tiles, 256), want, atol=1e-5)
                row.append(f"{graph_us(calls):.2f}" + ("" if ok else " WRONG"))
            except Exception as e:  # noqa: BLE001 - a probe reports what failed and goes on
                row.append(f"failed: {type(e).__name__}: {str(e)[:80]}")
                torch.cuda.synchronize()
        print(f"| {programs} | {splits} | " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
