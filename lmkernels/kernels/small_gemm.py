"""Low-latency small-batch GEMM: out [M, N] = x [M, K] @ weight [N, K]^T for M <= 16 (decode, routers).

At M <= 16 the weight is the whole cost: N K elements read once, against M K for x and M N for the
output (router 7168 x 256 at M = 16: 3.7 MB of weight, 0.23 MB of x, 16 KB of logits). The GPU
finishes in a few µs only if every SM streams its share of the weight at once, so:

  _ll_gemm_kernel   one program per (K split, BLOCK_N output columns). It reads its [BLOCK_N,
                    BLOCK_K] weight tiles with 16-byte loads (row-major weight, K contiguous; the
                    Launcher specialises 16-byte divisible row strides, which is what lets Triton
                    vectorise) and the matching [M, BLOCK_K] slice of x, all M rows at once.
                    USE_DOT: tl.dot with the M rows padded to a 16-row tile (mma m16: the tensor
                    cores do the FMAs, the padding costs no memory traffic: masked rows are not
                    read); DOT_CHAINS > 1 splits each K tile into that many sub-slices with an
                    accumulator each (_dot_chains: independent mma chains); SWAP_AB computes the
                    tile transposed, x's rows on the mma's n8 side (BLOCK_M 8: no padding at M <= 8).
                    Otherwise fp32 FMAs: at M = 1 a K reduction a weight tile; at M > 1
                    (ROWS3) [BLOCK_M, BLOCK_N, BLOCK_K] products summed elementwise over the K
                    loop and reduced once after it (ops/small_gemm.py runs these over all of K,
                    no split, up to M = 4-8, and to 16 below N = 256: no split-K handshake).
                    M_TILED (FMA without split-K, dot without it or in one launch): BLOCK_M < M
                    rows a program, cdiv(M, BLOCK_M) programs per output tile (the small routers:
                    more programs, less of x each; the 8-row transposed dot tiles at M = 9-16).
                    SPLIT_K == 1: the epilogue (scales, bias, one rounding) runs here.
                    SPLIT_K > 1, ONE_LAUNCH ("last one finishes"): each program stores its raw fp32
                    partial tile to the workspace, [n-tile, split, BLOCK_M, BLOCK_N] so that a
                    tile's partials are contiguous, then counts itself in with an atomic add on its
                    n-tile's int32 counter (acq_rel, gpu scope, after a CTA barrier: the release
                    publishes every thread's partial store, the pattern of CUDA's grid barriers;
                    kernels/split_k.py, shared with scaled_mm).
                    The program that sees SPLIT_K - 1 arrivals before its own is the last: it reads
                    the tile's SPLIT_K partials from L2 in ONE [BLOCK_S, BLOCK_M, BLOCK_N] load,
                    sums them over the split axis with one tl.sum, runs the epilogue and puts the
                    counter back to 0. Which program is last varies; the numbers it adds and their
                    order (tl.sum's tree is fixed by the constexprs) do not: bit-identical run to
                    run, which float atomics would not give. Nobody waits for anybody, so nothing
                    depends on how many programs are resident. (A first version, f51e38d, summed
                    in a loop of 4096-element chunks: one L2 round trip a chunk, 7 at M = 16 with
                    56 splits, 9-15 µs a call; the heuristic now keeps BLOCK_S BLOCK_M BLOCK_N
                    small enough for one load.)
                    SPLIT_K > 1, CLUSTER (sm90+, session 34): the SPLIT_K programs of a tile are one
                    thread-block cluster (programs split-minor: pid = tile SPLIT_K + split) and sum
                    their partials through each other's shared memory, each finishing a slice of the
                    tile (kernels/cluster.py): no L2 round trip, no release fence; +0.4-0.6 µs over
                    the chain floor against the counter's +1.2-1.6 (probe_cluster_split.md).
                    SPLIT_K > 1, not ONE_LAUNCH (HIP, where Triton's barrier fences LDS only, so the
                    one-thread release would not cover the other waves' stores): the partials go to
                    a workspace [SPLIT_K, M, N] and a second launch finishes:
  _ll_gemm_reduce_kernel  sums the workspace's SPLIT_K partials of BLOCK flattened (m, n) outputs
                    with one tl.sum over the split axis (a fixed tree order, the same every run),
                    then the same epilogue.

The counters are zero at every launch because every launch leaves them zero (the last program of
each tile resets its own), and a launch touches counters and workspace only after gdc_wait (with
PDL) or after the previous kernel in its stream finished (without): launches sharing the buffers
(runtime/scratch.py keeps them per device and stream) never overlap on them.

Accumulation is fp32 throughout; fp8 e4m3 tiles are widened to fp16 before tl.dot (exact: e4m3's 3
mantissa bits and its range, 2^-9 to 448, fit in fp16's 10 bits and 2^-24 to 65504), so the
products are exact and the sums fp32 on every GPU, instead of sm90 wgmma's reduced-precision fp8
accumulator. fp16 rather than bf16 because sm90 converts e4m3 pairs to f16x2 in one instruction and
bf16 needs one more per element: a 16 x 32 x 256 tile step had 96 cvt.rn.f16x2.e4m3x2 plus 192
cvt.bf16.f16 per thread (PTX), a third of its ALU work, and ran in up to 2.2x the time
(results/h100/probe_fp8_widen.md). Handed fp8 tiles at 16 rows, Triton 3.6 emits the same f16
widening and mma.sync for sm90; the explicit cast keeps it so on every target.
Epilogue order, the same in both kernels and in reference/small_gemm.py: t = acc;
t = t * (x_scale * w_scale); t = t + bias; out = cast(t).

USE_PDL (programmatic dependent launch, sm90+, launched with launch_pdl): nothing is read before
gdc_wait() (x, the scales and the bias may all be the previous kernel's outputs, and the weight
read is in the loop Triton pipelines, which must start after the wait), PRELOAD aside.
gdc_launch_dependents(): EARLY_LAUNCH (the heuristic's choice) right after the wait, so the next
kernel launches, and its own PREFETCH runs, while this one works: sound under PDL's contract, a
dependent touching memory only after its own wait (every lmkernels kernel does). EARLY_LAUNCH
False: after the K loop, once this program's reads of x are done.
PRELOAD (a config key, off by default; only where every program has one K tile, k_chunk ==
BLOCK_K): the program's weight tile is loaded into registers BEFORE gdc_wait, so after the wait
only x, the MMA and the epilogue remain. The issue's contract asks for the wait before the first
read of x only; but a weight written by the kernel just before (a weight copy or quantisation in
the same stream) could then be read stale, since a PDL kernel may start before its predecessor's
stores are visible. Hence opt-in, for weights that are constants of the model.
PREFETCH (only with USE_PDL): before the wait, each program asks L2 for its whole weight share,
every 128-byte line of its [BLOCK_N, k_chunk] block (prefetch.global.L2: no register receives
data, so nothing read can be stale; L2 is the GPU's point of coherence, so a write by the previous
kernel lands in the same lines). The weight is the whole cost at M <= 16 and never depends on the
previous kernel, so its HBM read overlaps that kernel's tail, and the loads after the wait hit L2.
BULK_PREFETCH (with PREFETCH; a tuned config key, session 39): the same bytes asked for as one
cp.async.bulk.prefetch.L2 a weight row instead, which the copy engine walks. Neither form wins
everywhere (router calls at 0.90-1.16x the line form: results/h100/probe_bulk_prefetch.md): the
tuner times its winner both ways.
Every program that runs an epilogue reads the scales and its bias early (_epilogue_operands):
right after the wait, beside the weight, or for the FMA rows (ROWS3) between the K loop and the
reduction; never after the reduction. They are NOT prefetched before the wait: that cost fp8
routers 1.0-1.7 µs a call on the H100 (results/h100/probe_epilogue_prefetch.md).
"""
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from ..runtime.device import is_interpreter
from .access import prefetch_rows_bulk_l2, prefetch_span_l2
from .cluster import cluster_arm, cluster_done, cluster_slice, cluster_sum
from .split_k import last_to_arrive

# Triton 3.6's interpreter multiplies bf16 dot operands wrongly (a [16, 64] x [64, 32] tl.dot gave
# errors of ~1e11; fp16 and fp32 are right). There the dot path widens its tiles to fp32 and takes
# an IEEE fp32 dot: the products are exact either way, so only the summation order moves.
DOT_IN_FP32: tl.constexpr = tl.constexpr(is_interpreter())


@triton.jit
def _epilogue_operands(bias_ptr, xs_ptr, ws_ptr, offs_n, N, HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr):
    """(scale, bias) for _epilogue, read early so that their round trip overlaps the weight's or
    the reduction's instead of following them: the scales are 4-byte tensors that the weights'
    stream pushes out of L2, and a DRAM round trip after the reduction was a tenth of an fp8 router
    call (H100, rotated inputs, probe_epilogue_prefetch.md: 7168 x 256 M = 1 2.47 -> 2.18 µs,
    4096 x 256 2.12 -> 1.84, 5120 x 128 M = 4 2.70 -> 2.40). bias has offs_n's shape;
    placeholders where off."""
    scale = tl.load(xs_ptr) * tl.load(ws_ptr) if HAS_SCALE else 1.0
    bias = tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32) if HAS_BIAS else 0.0
    return scale, bias


@triton.jit
def _epilogue(acc, out_ptr, scale, bias, offs_m, offs_n, M, N, stride_om,
              HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr):
    """out[m, n] = cast((acc * scale) + bias) for the in-bounds (m, n), scale = x_scale * w_scale and
    bias from _epilogue_operands; offs_m, offs_n and bias broadcast against acc (a [BM, BN] tile, or
    flattened 1-D outputs)."""
    t = acc
    if HAS_SCALE:
        t = t * scale
    if HAS_BIAS:
        t = t + bias
    tl.store(out_ptr + offs_m.to(tl.int64) * stride_om + offs_n, t.to(out_ptr.dtype.element_ty),
             mask=(offs_m < M) & (offs_n < N))


@triton.jit
def _w_tile(w_rows, mask_n, ks, k_hi):
    """The [BLOCK_N, BLOCK_K] weight tile of K columns ks (rows past N and columns at or past k_hi 0)."""
    return tl.load(w_rows + ks[None, :], mask=mask_n[:, None] & (ks < k_hi)[None, :], other=0.0)


@triton.jit
def _mac(acc, w, x_ptr, x_rows, ks, mask_k, mask_m, USE_DOT: tl.constexpr, DOT_CHAINS: tl.constexpr,
         SWAP_AB: tl.constexpr):
    """acc += x[:, ks] @ w^T for one [BLOCK_N, BLOCK_K] weight tile w (K columns ks, masked-out
    columns zero): tl.dot on the 16-row padded tile, or (BLOCK_M == 1) fp32 FMAs and the K reduction
    of the tile. acc is [BLOCK_M, BLOCK_N], or with DOT_CHAINS > 1 [DOT_CHAINS, BLOCK_M, BLOCK_N]:
    one accumulator per K sub-slice of the tile (_dot_chains); SWAP_AB: the last two dims swapped."""
    if USE_DOT:
        x = tl.load(x_rows + ks[None, :], mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        if DOT_IN_FP32:
            acc = _dot_chains(x.to(tl.float32), w.to(tl.float32), acc, DOT_CHAINS, "ieee", SWAP_AB)
        else:
            if w.dtype.is_fp8():  # exact widening (module docstring); fp16, not bf16: one cvt a pair
                w = w.to(tl.float16)
                x = x.to(tl.float16)
            acc = _dot_chains(x, w, acc, DOT_CHAINS, None, SWAP_AB)
    else:
        xm = tl.load(x_ptr + ks, mask=mask_k, other=0.0).to(tl.float32)
        acc += tl.sum(w.to(tl.float32) * xm[None, :], axis=1)[None, :]
    return acc


@triton.jit
def _dot_chains(x, w, acc, DOT_CHAINS: tl.constexpr, PRECISION: tl.constexpr, SWAP_AB: tl.constexpr):
    """acc += x @ w^T, x [BM, BK], w [BN, BK]. DOT_CHAINS > 1: a batched dot over DOT_CHAINS K
    sub-slices, x as [C, BM, BK / C] and w as [C, BK / C, BN], into acc [C, BM, BN], summed over C
    once after the K loop. Why: on sm90 a 16 x 16 x 512 tile on 4 warps compiled to 32 mma.sync a
    warp, every warp's one accumulator a chain of 32 dependent steps (and the 4 warps duplicating
    each other's 8-column halves); batched, each warp owns a slice (16 mma.sync a warp at C = 4) and
    the chains are independent: 7168 x 256 at M = 8 / 16 4.83 / 4.89 -> 4.28 / 4.47 µs (H100,
    results/h100/probe_router_chain_chains.md). PRECISION: the interpreter's "ieee" for its fp32
    tiles, else None (Triton's default).
    SWAP_AB: acc^T += w @ x^T instead (acc [BN, BM], or [C, BN, BM]): x's rows are the mma's N side,
    whose step is 8, so BLOCK_M = 8 carries M <= 8 rows without the 16-row tile's padding (8 x 16 x
    512 with 4 chains: 8 mma.sync a K tile in the sm90 PTX, against 16): 7168 x 384 M = 8 5.70 ->
    4.77 µs, 7168 x 256 4.35 -> 3.83 (H100, results/h100/probe_swap_ll_gemm.md). (Its other use,
    64 weight rows on sm90's wgmma m64n16, lost everywhere there: 5-24 µs.)"""
    if SWAP_AB:  # the MMA's A side (rows of acc) and B side (its columns), both [rows, BK]
        a, b = w, x
    else:
        a, b = x, w
    if DOT_CHAINS == 1:
        acc = tl.dot(a, tl.trans(b), acc, input_precision=PRECISION)
    else:
        KS: tl.constexpr = a.shape[1] // DOT_CHAINS
        a3 = tl.permute(tl.reshape(a, (a.shape[0], DOT_CHAINS, KS)), (1, 0, 2))
        b3 = tl.permute(tl.reshape(b, (b.shape[0], DOT_CHAINS, KS)), (1, 2, 0))
        acc = tl.dot(a3, b3, acc, input_precision=PRECISION)
    return acc


@triton.jit
def _w_tile3(w_rows, mask_n, ks, k_hi):
    """_w_tile as a [1, BLOCK_N, BLOCK_K] tile, loaded through 3-D pointers so that it gets the
    16-byte vector layout of the [BLOCK_M, BLOCK_N, BLOCK_K] products directly (loaded 2-D and
    expanded, each step paid two shared-memory layout conversions: 3.6 µs at M = 2, 7168 x 256)."""
    return tl.load(w_rows[None, :, :] + ks[None, None, :], mask=mask_n[None, :, None] & (ks < k_hi)[None, None, :],
                   other=0.0)


@triton.jit
def _mac3(acc3, w3, x_rows, ks, mask_k, mask_m):
    """acc3 [BLOCK_M, BLOCK_N, BLOCK_K] += x[:, ks] (x) w elementwise for a _w_tile3 tile w3: fp32
    FMAs for all M rows and BLOCK_N weight rows at once, every x row in flight in one load, and no
    reduction until the caller's one tl.sum over K after the loop (the per-row loop it replaced
    issued one x row load and one cross-warp reduction after another: 6.3 µs at M = 4, 7168 x 256,
    against 2.5 at M = 1)."""
    x = tl.load(x_rows[:, :, None] + ks[None, None, :], mask=mask_m[:, None, None] & mask_k[None, None, :], other=0.0)
    return acc3 + x.to(tl.float32) * w3.to(tl.float32)


@triton.jit
def _finish_split_tile(part_ptr, count_ptr, tile_ptrs, mask, out_ptr, scale, bias, offs_m, offs_n,
                       M, N, SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr):
    """The last program of an n-tile: out tile = epilogue(sum over s of the tile's SPLIT_K partials),
    then the tile's counter back to 0. part_ptr points at the tile's first partial; tile_ptrs are
    the (m, n) offsets inside one partial.

    One [BLOCK_S, BLOCK_M, BLOCK_N] load puts every partial in flight at once (.cg: from L2, the
    point of coherence, never a stale L1 line; the atomic's acquire, then Triton's CTA barrier
    broadcasting its result, order the loads after the other programs' stores); split rows past
    SPLIT_K read 0.0. The counter store needs no atomic: every program of the tile has counted, none
    touches it again in this launch, and the next launch reads it only once this grid is done."""
    BLOCK_S: tl.constexpr = triton.next_power_of_2(SPLIT_K)
    s = tl.arange(0, BLOCK_S)
    ptrs = part_ptr + (s * (BLOCK_M * BLOCK_N))[:, None, None] + tile_ptrs[None, :, :]
    parts = tl.load(ptrs, mask=(s < SPLIT_K)[:, None, None] & mask[None, :, :], other=0.0, cache_modifier=".cg")
    _epilogue(tl.sum(parts, axis=0), out_ptr, scale, bias, offs_m[:, None], offs_n[None, :], M, N, N,
              HAS_BIAS, HAS_SCALE)
    tl.store(count_ptr, 0)


# M changes every decode step: one compiled kernel for every M (Triton would otherwise specialise
# M == 1 and M % 16 == 0, extra compiles for nothing: M only bounds masks).
@triton.jit(do_not_specialize=["M"])
def _ll_gemm_kernel(x_ptr, w_ptr, out_ptr, part_ptr, count_ptr, bias_ptr, xs_ptr, ws_ptr, M, N, K, stride_xm,
                    stride_wn, k_chunk,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
                    USE_DOT: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr,
                    USE_PDL: tl.constexpr, EARLY_LAUNCH: tl.constexpr, PREFETCH: tl.constexpr,
                    ONE_LAUNCH: tl.constexpr, PRELOAD: tl.constexpr, M_TILED: tl.constexpr,
                    DOT_CHAINS: tl.constexpr, SWAP_AB: tl.constexpr, CLUSTER: tl.constexpr,
                    BULK_PREFETCH: tl.constexpr):
    """x [M, K] (row stride stride_xm), weight [N, K] (row stride stride_wn), both K-contiguous,
    out [M, N] contiguous. Split s covers K columns [s k_chunk, (s + 1) k_chunk), k_chunk a multiple
    of BLOCK_K, so only the tile ending at K is partial (masked, zero-filled).
    SPLIT_K > 1: part_ptr is the fp32 workspace and count_ptr (ONE_LAUNCH) an int32 counter per
    n-tile, zero at launch (module docstring). SPLIT_K == 1: neither is touched.

    Programs are split-major: the n-tiles of one split run side by side and share x's K slice in L2.
    M_TILED (FMA tiles without split-K, dot tiles without it or in one launch:
    ops/small_gemm.m_tiles_ok): BLOCK_M < M, and the grid has cdiv(M, BLOCK_M) programs per output
    tile, each owning BLOCK_M rows of x and of out: the m-tiles of one n-tile are neighbours, so all
    but the first find its weight rows in L2. Where N is small the grid has few programs and every
    one of them read all M rows of x (4096 x 8 at M = 8: 8 programs of 64 KB of x each); m-tiles give
    more, smaller programs. One-launch split-K counts and stores per (m-tile, n-tile).
    """
    pid = tl.program_id(0)
    if CLUSTER:  # clusters of SPLIT_K consecutive programs, one output tile each (kernels/cluster.py)
        c_split = pid % SPLIT_K
        pid = pid // SPLIT_K
    m_tile = 0
    if M_TILED:  # shift to this program's rows; the rest of the kernel sees an M - m0 row problem
        m_tiles = tl.cdiv(M, BLOCK_M)
        m_tile = pid % m_tiles
        m0 = m_tile * BLOCK_M
        pid = pid // m_tiles
        x_ptr += m0.to(tl.int64) * stride_xm
        out_ptr += m0.to(tl.int64) * N
        M -= m0
    n_tiles = tl.cdiv(N, BLOCK_N)
    if CLUSTER:
        split = c_split
        n_tile = pid
    else:
        split = pid // n_tiles
        n_tile = pid - split * n_tiles
    offs_n = n_tile * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_k = tl.arange(0, BLOCK_K)
    mask_n = offs_n < N
    mask_m = offs_m < M
    k_lo = split * k_chunk
    k_hi = tl.minimum(k_lo + k_chunk, K)
    w_rows = w_ptr + offs_n.to(tl.int64)[:, None] * stride_wn
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm
    ROWS3: tl.constexpr = not USE_DOT and BLOCK_M > 1
    TILE: tl.constexpr = BLOCK_M * BLOCK_N
    if CLUSTER:  # this rank's slice of the tile, which it finishes: rows ep_m (M where none), columns ep_n
        cj, c_valid = cluster_slice(split, TILE, SPLIT_K)
        ep_m = tl.where(c_valid, cj // BLOCK_N, M)
        ep_n = n_tile * BLOCK_N + cj % BLOCK_N
        c_dep = cluster_arm(split, TILE, SPLIT_K)  # before the wait: overlaps the previous kernel
    else:
        ep_m = offs_m[:, None]
        ep_n = offs_n[None, :]
    if PRELOAD:
        if ROWS3:
            w_first = _w_tile3(w_rows, mask_n, k_lo + offs_k, k_hi)
        else:
            w_first = _w_tile(w_rows, mask_n, k_lo + offs_k, k_hi)
    if USE_PDL:
        if PREFETCH and not PRELOAD:
            if BULK_PREFETCH:  # one copy-engine request a weight row
                prefetch_rows_bulk_l2(w_ptr, n_tile * BLOCK_N, N, stride_wn, k_lo, k_hi, BLOCK_N)
            else:  # one prefetch a 128-byte line, from every thread
                prefetch_span_l2(w_rows, mask_n, k_lo, k_hi, BLOCK_K)
        gdc_wait()
        if EARLY_LAUNCH:
            gdc_launch_dependents()
    EPILOGUE_HERE: tl.constexpr = SPLIT_K == 1 or ONE_LAUNCH or CLUSTER  # else the reduce kernel scales, rounds
    if EPILOGUE_HERE and not ROWS3:  # in flight with the weight (_epilogue_operands)
        scale, bias = _epilogue_operands(bias_ptr, xs_ptr, ws_ptr, ep_n, N, HAS_BIAS, HAS_SCALE)
    if not ROWS3:
        ACC2: tl.constexpr = (BLOCK_N, BLOCK_M) if USE_DOT and SWAP_AB else (BLOCK_M, BLOCK_N)
        if USE_DOT and DOT_CHAINS > 1:
            acc = tl.zeros((DOT_CHAINS, ACC2[0], ACC2[1]), dtype=tl.float32)
        else:
            acc = tl.zeros(ACC2, dtype=tl.float32)
        if PRELOAD:  # the program's one K tile, read before the wait above
            acc = _mac(acc, w_first, x_ptr, x_rows, k_lo + offs_k, k_lo + offs_k < k_hi, mask_m, USE_DOT, DOT_CHAINS,
                       SWAP_AB)
        else:
            for k0 in tl.range(k_lo, k_hi, BLOCK_K):
                ks = k0 + offs_k
                acc = _mac(acc, _w_tile(w_rows, mask_n, ks, k_hi), x_ptr, x_rows, ks, ks < k_hi, mask_m, USE_DOT,
                           DOT_CHAINS, SWAP_AB)
        if USE_DOT and DOT_CHAINS > 1:  # the chains' sum, in a fixed order (tl.sum's tree)
            acc = tl.sum(acc, axis=0)
        if USE_DOT and SWAP_AB:
            acc = tl.trans(acc)
    else:  # FMAs on BLOCK_M > 1 rows: products summed elementwise over the K loop, one reduction after it
        acc3 = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_K), dtype=tl.float32)
        if PRELOAD:
            acc3 = _mac3(acc3, w_first, x_rows, k_lo + offs_k, k_lo + offs_k < k_hi, mask_m)
        else:
            for k0 in tl.range(k_lo, k_hi, BLOCK_K):
                ks = k0 + offs_k
                acc3 = _mac3(acc3, _w_tile3(w_rows, mask_n, ks, k_hi), x_rows, ks, ks < k_hi, mask_m)
        if EPILOGUE_HERE:
            # after the loop, in flight with the reduction: read before it, the two values live
            # through the pipelined loop and took fp8 M = 8 (8 x 1 x 2048, 8 warps, 2 stages) from 128
            # to 147 registers, one program an SM instead of two (7168 x 256: 5.1 -> 7.6 µs)
            scale, bias = _epilogue_operands(bias_ptr, xs_ptr, ws_ptr, ep_n, N, HAS_BIAS, HAS_SCALE)
        acc = tl.sum(acc3, axis=2)
    if USE_PDL:
        if not EARLY_LAUNCH:
            gdc_launch_dependents()
    if SPLIT_K == 1:
        _epilogue(acc, out_ptr, scale, bias, offs_m[:, None], offs_n[None, :], M, N, N, HAS_BIAS, HAS_SCALE)
    elif CLUSTER:
        flat = offs_m[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
        total = cluster_sum(acc, flat, split, c_dep, TILE, SPLIT_K)
        _epilogue(total, out_ptr, scale, bias, ep_m, ep_n, M, N, N, HAS_BIAS, HAS_SCALE)
        cluster_done(c_dep)
    elif ONE_LAUNCH:
        tile_ptrs = offs_m[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
        mask = mask_m[:, None] & mask_n[None, :]
        tile = m_tile * n_tiles + n_tile  # an output tile: its partials and its counter
        tile_part = part_ptr + tile.to(tl.int64) * (SPLIT_K * BLOCK_M * BLOCK_N)
        tl.store(tile_part + split * (BLOCK_M * BLOCK_N) + tile_ptrs, acc, mask=mask)
        if last_to_arrive(count_ptr + tile, SPLIT_K):  # the tile's last program: every partial is in L2
            _finish_split_tile(tile_part, count_ptr + tile, tile_ptrs, mask, out_ptr, scale, bias, offs_m, offs_n,
                               M, N, SPLIT_K, BLOCK_M, BLOCK_N, HAS_BIAS, HAS_SCALE)
    else:  # raw partial sums; the reduce kernel scales and rounds
        ws = part_ptr + split.to(tl.int64) * M * N
        tl.store(ws + offs_m[:, None] * N + offs_n[None, :], acc, mask=mask_m[:, None] & mask_n[None, :])


@triton.jit(do_not_specialize=["M"])
def _ll_gemm_reduce_kernel(ws_ptr, out_ptr, bias_ptr, xs_ptr, wsc_ptr, M, N,
                           SPLIT_K: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK: tl.constexpr,
                           HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, USE_PDL: tl.constexpr):
    """out.flat[i] = epilogue(sum over s of ws[s].flat[i]) for BLOCK consecutive i of the M N outputs
    (out and each workspace split are contiguous [M, N]). The [BLOCK_S, BLOCK] tile of partials is
    summed over axis 0 in one tl.sum: its tree order depends on the layout alone, fixed at compile
    time, so every run adds the same numbers in the same order (split rows past SPLIT_K read 0.0).

    USE_PDL: wait for the partials (the previous kernel's complete, flushed output), then let the
    next kernel launch: it waits in its own gdc_wait until this grid is done."""
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    total = M * N
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs // N
    n = offs - m * N
    scale, bias = _epilogue_operands(bias_ptr, xs_ptr, wsc_ptr, n, N, HAS_BIAS, HAS_SCALE)  # with the partials
    s = tl.arange(0, BLOCK_S)
    mask = offs < total
    parts = tl.load(ws_ptr + s.to(tl.int64)[:, None] * total + offs[None, :],
                    mask=(s[:, None] < SPLIT_K) & mask[None, :], other=0.0)
    _epilogue(tl.sum(parts, axis=0), out_ptr, scale, bias, m, n, M, N, N, HAS_BIAS, HAS_SCALE)
