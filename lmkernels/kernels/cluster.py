"""Split-K's finish inside a thread-block cluster (sm90+): the SPLIT_K programs of one output tile
are one cluster and sum their partials through each other's shared memory, never through L2.

Why (H100, benchmarks/probe_cluster_split.py, results/h100/probe_cluster_split.md, PDL chains of
32 calls, 128 programs with a 16 x 16 fp32 partial each): the counter handshake of kernels/split_k.py
costs +1.2-1.6 µs over a kernel that only waits, reads and writes (~1.0 µs), half of issue 6's 2 µs
bar; this finish costs +0.4-0.6. What the probe took apart: a cluster barrier with release
semantics costs ~0.5 µs, the same barrier relaxed ~0.03: the generic-proxy release fence is the
price (it is in the counter's acq_rel atomic too). So nothing here fences: the partials move as bulk
copies (async proxy), which complete on the receiver's mbarrier with their byte count, and the only
barriers are relaxed ones.

Triton 3.6 has no cluster API: the kernel is compiled as usual (program_id is the CTA's index) and
launched with a cluster size by runtime/launch.py (Launcher's cluster launch, through Triton's own C
launcher, whose num_ctas slot sets the cluster dimension). The PTX below addresses a region at the
END of the CTA's dynamic shared memory (global_smem, Triton's dynamic shared array, plus
%dynamic_smem_size minus the region's size): the launch asks for Triton's own shared bytes plus
region_bytes(), so the region never overlaps what Triton allocated. Region, in bytes from its start:
  [0, 8)                     the mbarrier this CTA's incoming slices complete on
  [16, RECV)                 this CTA's partial tile, T = BLOCK_M BLOCK_N fp32, row-major, with room
                             for T rounded up to 4 (RECV = 16 + 4 T4: every copy's address and size
                             a multiple of 16 bytes, as cp.async.bulk needs, even where T is not a
                             multiple of 4, e.g. 1 x 2 FMA tiles at M = 1, which hung before)
  [RECV, RECV + 4 S SLEN)    the slices it receives, one a peer: [S, SLEN] fp32

The protocol, cluster rank = split (pid % SPLIT_K; the ops launch clusters of SPLIT_K consecutive
programs):
  1. arm (before gdc_wait, overlapping the previous kernel): thread 0 inits the mbarrier and arrives
     on it expecting (S - 1) my_len 4 bytes, one slice from every peer; fence.mbarrier_init (cluster
     scope); a relaxed cluster barrier, after which every peer's mbarrier is armed.
  2. stage: every thread writes its partial elements (replicated layouts write the same value twice:
     harmless) and fences them to the async proxy; a CTA barrier.
  3. send: thread 0 bulk-copies slice r of the staged tile (SLEN elements, 16-byte multiples) to every
     peer r != split, at r's RECV + 4 split SLEN, completing on r's mbarrier, the peers in rank order
     (r = i + (i >= split), i = 0 .. S - 2: a static loop over a runtime rank). Its own slice stays
     in its staged tile: copying it to itself through a shared::cluster address is legal PTX, but
     compute-sanitizer's memcheck stops on it ("not located in remote CTA", session 36). What the
     H100 showed (session 37, probe_cluster_send_order.md): rank order matters, every sender feeding
     rank 0 first, then rank 1, ... (likely because low ranks then finish their sums while the
     copies to high ranks still fly); the rotated order split + 1, split + 2, ... ran 1.01-1.09x
     the time (+0.23 µs at 7168 x 384 M = 8), with or without the self-copy; skipping self in rank
     order by a runtime test on each copy ran 1.02-1.09x (ptxas wrapped each copy in an ELECT loop
     and re-read %ctaid for it). This form, rank order with no test, runs 0.96-0.99x the
     self-copying finish.
  4. wait: until this CTA's mbarrier phase 0 completes (the S - 1 peer slices landed), then sum the
     S partials of its slice (row `split` from the staged tile, the others from RECV) over the split
     axis in one tl.sum (a fixed tree: bit-identical run to run) and run the epilogue on the slice's
     outputs. A wait past WAIT_LIMIT_NS traps (a CUDA error, not a hung GPU).
  5. a relaxed cluster barrier before exit: a CTA's staged tile must outlive its peers' copies of it
     (every copy has landed once every CTA has passed its wait).
"""
import triton
import triton.language as tl

# the region's start in a .u32 register `a` (needs $1 = region bytes as an operand); tid 0 in p
_BASE = tl.constexpr("mov.u32 a, global_smem; mov.u32 d, %dynamic_smem_size; add.u32 a, a, d; sub.u32 a, a, $1; ")
_TID0 = tl.constexpr("mov.u32 t, %tid.x; setp.eq.u32 p, t, 0; ")
# how long a CTA waits for its peers' slices before it traps: a legitimate wait is microseconds (the
# peers pass the same PDL wait and run the same K loop); 10 s leaves room for compute-sanitizer's
# 10-100x slowdown and for time-slicing between processes, and still ends a hang with an error
WAIT_LIMIT_NS = tl.constexpr(10_000_000_000)


@triton.constexpr_function
def slice_len(tile, splits):
    """Elements of the tile a rank finishes: cdiv(tile, splits) rounded up to 4 (bulk copies move
    16-byte multiples). A constexpr function: the kernels and the host (the launch's shared bytes)
    share this one rule."""
    return (-(-tile // splits) + 3) // 4 * 4


@triton.constexpr_function
def recv_offset(tile):
    """RECV, the received slices' byte offset in the region: past the mbarrier and the staged tile,
    whose room is rounded up to 4 elements (a 16-byte multiple: bulk copies need 16-byte aligned
    addresses and sizes)."""
    return 16 + 4 * ((tile + 3) // 4 * 4)


@triton.constexpr_function
def region_bytes(tile, splits):
    """Shared bytes the finish needs past Triton's own (module docstring), a multiple of 16."""
    return recv_offset(tile) + 4 * splits * slice_len(tile, splits)


@triton.jit
def _arm(region, nbytes):
    return tl.inline_asm_elementwise(
        "{ .reg .pred p; .reg .u32 t, a, d; " + _BASE + _TID0
        + "@p mbarrier.init.shared::cta.b64 [a], 1; @p mbarrier.arrive.expect_tx.shared::cta.b64 _, [a], $2; "
        "fence.mbarrier_init.release.cluster; barrier.cluster.arrive.relaxed.aligned; barrier.cluster.wait.aligned; "
        "mov.u32 $0, 0; }",
        "=r,r,r", [region, nbytes], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _stage(region, byte_offs, v):
    return tl.inline_asm_elementwise(
        "{ .reg .u32 a, d; " + _BASE + "add.u32 a, a, $2; st.shared.f32 [a], $3; fence.proxy.async.shared::cta; "
        "mov.u32 $0, 0; }",
        "=r,r,r,f", [region, byte_offs, v], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _send(region, src, dst, rank, nbytes):
    # thread 0 copies; a 0-byte slice (a rank past a tiny tile) is no copy
    return tl.inline_asm_elementwise(
        "{ .reg .pred p, q; .reg .u32 t, a, d, s, b; " + _BASE + _TID0
        + "setp.ne.u32 q, $5, 0; and.pred p, p, q; "
        "add.u32 s, a, $2; add.u32 d, a, $3; mapa.shared::cluster.u32 d, d, $4; mapa.shared::cluster.u32 b, a, $4; "
        "@p cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [d], [s], $5, [b]; mov.u32 $0, 0; }",
        "=r,r,r,r,r,r", [region, src, dst, rank, nbytes], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _landed(region):
    return tl.inline_asm_elementwise(
        "{ .reg .pred p; .reg .u32 a, d; " + _BASE
        + "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [a], 0; selp.u32 $0, 1, 0, p; }",
        "=r,r", [region], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _now(dep):
    return tl.inline_asm_elementwise("mov.u64 $0, %globaltimer;", "=l,r", [dep], dtype=tl.int64, is_pure=False, pack=1)


@triton.jit
def _trap_if(late):
    return tl.inline_asm_elementwise("{ .reg .pred p; setp.ne.u32 p, $1, 0; @p trap; mov.u32 $0, 0; }", "=r,r", [late],
                                     dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def cluster_wait(region, dep, LIMIT_NS: tl.constexpr):
    """Spins on this CTA's mbarrier (phase 0) until every slice has landed; traps once LIMIT_NS have
    passed on %globaltimer without that, so that a copy that never lands is a CUDA error (an
    unspecified launch failure at the next synchronisation) instead of a GPU that hangs forever, as
    session 35's misaligned copy did. A Triton loop over one try_wait a trip, the clock read after
    each failed one: the same loop written in PTX (labels, one asm block) ran 5120 x 128 M = 16's
    table entry 3.2 -> 3.7 µs on the H100, this one as fast as the unbounded loop before it
    (probe_wait_ab.md)."""
    t0 = _now(dep)
    while _landed(region + dep) == 0:
        _trap_if((_now(dep) - t0 > LIMIT_NS).to(tl.int32))


@triton.jit
def _load(region, byte_offs):
    return tl.inline_asm_elementwise(
        "{ .reg .u32 a, d; " + _BASE + "add.u32 a, a, $2; ld.shared.f32 $0, [a]; }",
        "=f,r,r", [region, byte_offs], dtype=tl.float32, is_pure=False, pack=1)


@triton.jit
def _relaxed_sync(dep):
    return tl.inline_asm_elementwise(
        "barrier.cluster.arrive.relaxed.aligned; barrier.cluster.wait.aligned; mov.u32 $0, 0;",
        "=r,r", [dep], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def slice_bytes(rank, TILE: tl.constexpr, SPLITS: tl.constexpr):
    """Bytes every peer copies to `rank` (a runtime scalar or tensor of ranks), and what `rank`'s
    mbarrier expects from each of its S - 1 peers: its slice, clipped to the tile and rounded up to
    16 bytes (the padding is the staged tile's spare room, read but masked out by cluster_slice's
    `valid`); 0 for ranks past the tile (_send then copies nothing)."""
    SLEN: tl.constexpr = slice_len(TILE, SPLITS)
    return (tl.minimum(tl.maximum(TILE - rank * SLEN, 0), SLEN) + 3) // 4 * 16


@triton.jit
def cluster_slice(split, TILE: tl.constexpr, SPLITS: tl.constexpr):
    """(j, valid): the flattened tile elements rank `split` finishes, a [next_pow2(SLEN)] range."""
    SLEN: tl.constexpr = slice_len(TILE, SPLITS)
    jj = tl.arange(0, triton.next_power_of_2(SLEN))
    j = split * SLEN + jj
    return j, (jj < SLEN) & (j < TILE)


@triton.jit
def cluster_arm(split, TILE: tl.constexpr, SPLITS: tl.constexpr):
    """Step 1 (module docstring); returns a 0 that later steps depend on."""
    REGION: tl.constexpr = region_bytes(TILE, SPLITS)
    return _arm(REGION + split * 0, (SPLITS - 1) * slice_bytes(split, TILE, SPLITS))  # one slice a peer


@triton.jit
def cluster_sum(acc, flat, split, dep, TILE: tl.constexpr, SPLITS: tl.constexpr):
    """Steps 2-4: acc is this rank's partial tile, flat its elements' row-major indices (acc's shape);
    returns the sum over the cluster's partials of this rank's slice (cluster_slice's elements)."""
    SLEN: tl.constexpr = slice_len(TILE, SPLITS)
    RECV: tl.constexpr = recv_offset(TILE)
    REGION: tl.constexpr = region_bytes(TILE, SPLITS)
    staged = _stage(REGION + dep, 16 + flat * 4, acc)
    tl.debug_barrier()
    dep = tl.sum(tl.sum(staged, axis=1), axis=0)  # every thread's stores precede the copies
    for i in tl.static_range(SPLITS - 1):  # the peers in rank order, skipping this CTA
        r = i + (i >= split).to(tl.int32)
        dep += _send(REGION + dep, 16 + 4 * r * SLEN, RECV + 4 * SLEN * split, r, slice_bytes(r, TILE, SPLITS))
    cluster_wait(REGION, dep, WAIT_LIMIT_NS)
    j, valid = cluster_slice(split, TILE, SPLITS)
    s = tl.arange(0, triton.next_power_of_2(SPLITS))
    m = (s < SPLITS)[:, None] & valid[None, :]
    jj = j - split * SLEN
    # row `split` (this CTA's own partial) is read from the staged tile, the others from RECV
    offs = tl.where(s[:, None] == split, 16 + 4 * j[None, :], RECV + 4 * (s[:, None] * SLEN + jj[None, :]))
    parts = _load(REGION + dep, tl.where(m, offs, RECV))
    return tl.sum(tl.where(m, parts, 0.0), axis=0)


@triton.jit
def cluster_done(dep):
    """Step 5: no CTA leaves while a peer may still copy its staged tile."""
    _relaxed_sync(dep)
