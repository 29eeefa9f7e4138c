"""The only place that knows how memory is addressed.

Kernels call these helpers with ACCESS, a constexpr (runtime/access.py: 0 pointer, 1 block_ptr,
2 descriptor). Untaken constexpr branches are never compiled, so the block_ptr branch costs nothing
where make_block_ptr no longer exists. All three read and write the same elements and zero-fill
out-of-bounds reads, so a kernel's results do not depend on the mode.

A 2-D operand is (view, n_rows, n_cols, stride_r) with a contiguous last dim. Its "view" is the base
pointer for pointer and block_ptr, and for descriptor a host-made tensor descriptor (passed by value:
the H100 measured ~3 µs of latency for building one in-kernel, a descriptor a program).

An N-D operand (the rotary kernel's [T, heads, 2, rot/2] and [T, heads, rot] views) is (view, shape
n0.., strides s0.. with the last stride 1), its view as above. Tile offsets (o0, ...) are int32
(what descriptors take); the pointer branch widens the first one to int64 before multiplying by its
stride, so a token stride times a token index past 2^31 elements stays right.
"""
import triton
import triton.language as tl

POINTER: tl.constexpr = tl.constexpr(0)
BLOCK_PTR: tl.constexpr = tl.constexpr(1)
DESCRIPTOR: tl.constexpr = tl.constexpr(2)


@triton.jit
def load_tile(view, n_rows, n_cols, stride_r, row0, col0,
              BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, ACCESS: tl.constexpr):
    """[BLOCK_R, BLOCK_C] tile at (row0, col0) in the operand's dtype; out-of-bounds elements read 0."""
    if ACCESS == POINTER:
        rows = row0 + tl.arange(0, BLOCK_R)
        cols = col0 + tl.arange(0, BLOCK_C)
        mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
        ptrs = view + rows[:, None].to(tl.int64) * stride_r + cols[None, :]
        return tl.load(ptrs, mask=mask, other=0.0)
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n_rows, n_cols), (stride_r, 1), (row0, col0), (BLOCK_R, BLOCK_C), (1, 0))
        return tl.load(bp, boundary_check=(0, 1), padding_option="zero")
    else:
        return view.load([row0, col0])


@triton.jit
def store_tile(view, value, n_rows, n_cols, stride_r, row0, col0,
               BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, ACCESS: tl.constexpr):
    """Round `value` to the operand's dtype (one rounding) and store it at (row0, col0); nothing is
    written out of bounds."""
    if ACCESS == POINTER:
        rows = row0 + tl.arange(0, BLOCK_R)
        cols = col0 + tl.arange(0, BLOCK_C)
        mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
        ptrs = view + rows[:, None].to(tl.int64) * stride_r + cols[None, :]
        tl.store(ptrs, value.to(view.dtype.element_ty), mask=mask)
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n_rows, n_cols), (stride_r, 1), (row0, col0), (BLOCK_R, BLOCK_C), (1, 0))
        tl.store(bp, value.to(view.dtype.element_ty), boundary_check=(0, 1))
    else:
        view.store([row0, col0], value.to(view.dtype))


@triton.jit
def round_to(view, value, ACCESS: tl.constexpr):
    """`value` rounded to the operand's dtype and back to fp32 (what storing then reloading gives)."""
    if ACCESS == DESCRIPTOR:
        return value.to(view.dtype).to(tl.float32)
    else:
        return value.to(view.dtype.element_ty).to(tl.float32)


@triton.jit
def load_vector(view, n, BLOCK: tl.constexpr, ACCESS: tl.constexpr):
    """Elements [0, BLOCK) of a contiguous vector of length n, zero past n, as a [1, BLOCK] tile."""
    if ACCESS == POINTER:
        offs = tl.arange(0, BLOCK)
        return tl.load(view + offs, mask=offs < n, other=0.0)[None, :]
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n,), (1,), (0,), (BLOCK,), (0,))
        return tl.load(bp, boundary_check=(0,), padding_option="zero")[None, :]
    else:
        return view.load([0])[None, :]


# ---------------------------------------------------------------- N-D tiles and scalar reads

@triton.jit
def _offsets_3d(n0, n1, n2, s0, s1, o0, o1, o2, B0: tl.constexpr, B1: tl.constexpr, B2: tl.constexpr):
    """(element offsets, in-bounds mask) of a [B0, B1, B2] tile at (o0, o1, o2). A unit block stays a
    scalar index (no arange, no broadcast); written out rather than through a per-axis helper
    because the interpreter pays ~0.5 ms for every call of a @triton.jit function."""
    if B0 == 1:
        i0 = o0
    else:
        i0 = (o0 + tl.arange(0, B0))[:, None, None]
    if B1 == 1:
        i1 = o1
    else:
        i1 = (o1 + tl.arange(0, B1))[None, :, None]
    if B2 == 1:
        i2 = o2
    else:
        i2 = (o2 + tl.arange(0, B2))[None, None, :]
    return i0.to(tl.int64) * s0 + i1 * s1 + i2, (i0 < n0) & (i1 < n1) & (i2 < n2)


@triton.jit
def load_tile_3d(view, n0, n1, n2, s0, s1, o0, o1, o2,
                 B0: tl.constexpr, B1: tl.constexpr, B2: tl.constexpr, ACCESS: tl.constexpr):
    """[B0, B1, B2] tile at (o0, o1, o2) in the operand's dtype; out-of-bounds elements read 0."""
    if ACCESS == POINTER:
        offs, mask = _offsets_3d(n0, n1, n2, s0, s1, o0, o1, o2, B0, B1, B2)
        return tl.load(view + offs, mask=mask, other=0.0)
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n0, n1, n2), (s0, s1, 1), (o0, o1, o2), (B0, B1, B2), (2, 1, 0))
        return tl.load(bp, boundary_check=(0, 1, 2), padding_option="zero")
    else:
        return view.load([o0, o1, o2])


@triton.jit
def store_tile_3d(view, value, n0, n1, n2, s0, s1, o0, o1, o2,
                  B0: tl.constexpr, B1: tl.constexpr, B2: tl.constexpr, ACCESS: tl.constexpr):
    """Round `value` to the operand's dtype (one rounding) and store it; nothing out of bounds."""
    if ACCESS == POINTER:
        offs, mask = _offsets_3d(n0, n1, n2, s0, s1, o0, o1, o2, B0, B1, B2)
        tl.store(view + offs, value.to(view.dtype.element_ty), mask=mask)
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n0, n1, n2), (s0, s1, 1), (o0, o1, o2), (B0, B1, B2), (2, 1, 0))
        tl.store(bp, value.to(view.dtype.element_ty), boundary_check=(0, 1, 2))
    else:
        view.store([o0, o1, o2], value.to(view.dtype))


@triton.jit
def _offsets_4d(n0, n1, n2, n3, s0, s1, s2, o0, o1, o2, o3,
                B0: tl.constexpr, B1: tl.constexpr, B2: tl.constexpr, B3: tl.constexpr):
    """(element offsets, in-bounds mask) of a [B0, B1, B2, B3] tile at (o0, o1, o2, o3), as _offsets_3d."""
    if B0 == 1:
        i0 = o0
    else:
        i0 = (o0 + tl.arange(0, B0))[:, None, None, None]
    if B1 == 1:
        i1 = o1
    else:
        i1 = (o1 + tl.arange(0, B1))[None, :, None, None]
    if B2 == 1:
        i2 = o2
    else:
        i2 = (o2 + tl.arange(0, B2))[None, None, :, None]
    if B3 == 1:
        i3 = o3
    else:
        i3 = (o3 + tl.arange(0, B3))[None, None, None, :]
    return i0.to(tl.int64) * s0 + i1 * s1 + i2 * s2 + i3, (i0 < n0) & (i1 < n1) & (i2 < n2) & (i3 < n3)


@triton.jit
def load_tile_4d(view, n0, n1, n2, n3, s0, s1, s2, o0, o1, o2, o3,
                 B0: tl.constexpr, B1: tl.constexpr, B2: tl.constexpr, B3: tl.constexpr, ACCESS: tl.constexpr):
    """[B0, B1, B2, B3] tile at (o0, o1, o2, o3) in the operand's dtype; out-of-bounds elements read 0."""
    if ACCESS == POINTER:
        offs, mask = _offsets_4d(n0, n1, n2, n3, s0, s1, s2, o0, o1, o2, o3, B0, B1, B2, B3)
        return tl.load(view + offs, mask=mask, other=0.0)
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n0, n1, n2, n3), (s0, s1, s2, 1), (o0, o1, o2, o3), (B0, B1, B2, B3),
                               (3, 2, 1, 0))
        return tl.load(bp, boundary_check=(0, 1, 2, 3), padding_option="zero")
    else:
        return view.load([o0, o1, o2, o3])


@triton.jit
def store_tile_4d(view, value, n0, n1, n2, n3, s0, s1, s2, o0, o1, o2, o3,
                  B0: tl.constexpr, B1: tl.constexpr, B2: tl.constexpr, B3: tl.constexpr, ACCESS: tl.constexpr):
    """Round `value` to the operand's dtype (one rounding) and store it; nothing out of bounds."""
    if ACCESS == POINTER:
        offs, mask = _offsets_4d(n0, n1, n2, n3, s0, s1, s2, o0, o1, o2, o3, B0, B1, B2, B3)
        tl.store(view + offs, value.to(view.dtype.element_ty), mask=mask)
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n0, n1, n2, n3), (s0, s1, s2, 1), (o0, o1, o2, o3), (B0, B1, B2, B3),
                               (3, 2, 1, 0))
        tl.store(bp, value.to(view.dtype.element_ty), boundary_check=(0, 1, 2, 3))
    else:
        view.store([o0, o1, o2, o3], value.to(view.dtype))


@triton.jit
def load_halves_3d(view, n0, n2, s0, s1, o0, B2: tl.constexpr, ACCESS: tl.constexpr):
    """The [1, 1, B2] tiles at (o0, 0, 0) and (o0, 1, 0) of an [n0, 2, n2] operand (axis 1 of
    extent 2: a cos/sin cache row's two halves). Descriptor: one [1, 2, B2] box split in registers,
    since a program waits out each TMA copy it issues (one round trip instead of two)."""
    if ACCESS == DESCRIPTOR:
        a, b = tl.split(tl.permute(view.load([o0, 0, 0]), (0, 2, 1)))
        return tl.reshape(a, [1, 1, B2]), tl.reshape(b, [1, 1, B2])
    else:
        a = load_tile_3d(view, n0, 2, n2, s0, s1, o0, 0, 0, 1, 1, B2, ACCESS)
        b = load_tile_3d(view, n0, 2, n2, s0, s1, o0, 1, 0, 1, 1, B2, ACCESS)
        return a, b


@triton.jit
def load_halves_2d(view, n_rows, half, stride_r, row0, col0, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
                   ACCESS: tl.constexpr):
    """The [BLOCK_R, BLOCK_C] tiles at (row0, col0) of a row's two halves (columns [0, half) and
    [half, 2 half): a gated activation's gate and up). Pointer and block_ptr: two tiles of the 2-D
    operand. Descriptor: `view` is a 3-D descriptor over the rows as [n_rows, 2, half], and one
    [BLOCK_R, 2, BLOCK_C] box is split in registers: Triton gives two descriptor loads one shared
    buffer and waits out the first before issuing the second (sm90 PTX), two round trips where one
    box needs one."""
    if ACCESS == DESCRIPTOR:
        return tl.split(tl.permute(view.load([row0, 0, col0]), (0, 2, 1)))
    else:
        a = load_tile(view, n_rows, half, stride_r, row0, col0, BLOCK_R, BLOCK_C, ACCESS)
        b = load_tile(view + half, n_rows, half, stride_r, row0, col0, BLOCK_R, BLOCK_C, ACCESS)
        return a, b


@triton.jit
def load_halves_4d(view, n0, n1, n3, s0, s1, s2, o0, o1, B1: tl.constexpr, B3: tl.constexpr, ACCESS: tl.constexpr):
    """The [1, B1, 1, B3] tiles at (o0, o1, 0, 0) and (o0, o1, 1, 0) of an [n0, n1, 2, n3] operand
    (NeoX's x and y halves of B1 heads). Pointer and block_ptr: two tiles; descriptor: one
    [1, B1, 2, B3] box split in registers (see load_halves_3d)."""
    if ACCESS == DESCRIPTOR:
        a, b = tl.split(tl.permute(view.load([o0, o1, 0, 0]), (0, 1, 3, 2)))
        return tl.reshape(a, [1, B1, 1, B3]), tl.reshape(b, [1, B1, 1, B3])
    else:
        a = load_tile_4d(view, n0, n1, 2, n3, s0, s1, s2, o0, o1, 0, 0, 1, B1, 1, B3, ACCESS)
        b = load_tile_4d(view, n0, n1, 2, n3, s0, s1, s2, o0, o1, 1, 0, 1, B1, 1, B3, ACCESS)
        return a, b


@triton.jit
def store_halves_4d(view, a, b, n0, n1, n3, s0, s1, s2, o0, o1, B1: tl.constexpr, B3: tl.constexpr,
                    ACCESS: tl.constexpr):
    """Store what load_halves_4d read: a at (o0, o1, 0, 0), b at (o0, o1, 1, 0), each rounded once
    to the operand's dtype; nothing out of bounds."""
    if ACCESS == DESCRIPTOR:
        ab = tl.join(tl.reshape(a, [1, B1, B3]), tl.reshape(b, [1, B1, B3]))
        view.store([o0, o1, 0, 0], tl.permute(ab, (0, 1, 3, 2)).to(view.dtype))
    else:
        store_tile_4d(view, a, n0, n1, 2, n3, s0, s1, s2, o0, o1, 0, 0, 1, B1, 1, B3, ACCESS)
        store_tile_4d(view, b, n0, n1, 2, n3, s0, s1, s2, o0, o1, 1, 0, 1, B1, 1, B3, ACCESS)


@triton.jit
def load_index(ptr, i, stride):
    """ptr[i * stride]: one scalar (a token's position) read through a plain pointer in every mode.

    A scalar is no tile: a TMA copy of 8 bytes would cost more than it addresses, and the caller
    checks the value's range before it indexes anything with it."""
    return tl.load(ptr + i.to(tl.int64) * stride)


@triton.jit
def load_strided(ptr, o, n, stride, BLOCK: tl.constexpr):
    """[BLOCK] elements ptr[(o + i) * stride], i in [0, BLOCK), 0 where o + i >= n; plain pointer
    loads in every mode, int64 offsets.

    For per-head scalars (attention LSEs): in an [H, T] LSE the heads of a token lie T elements
    apart, so a [BLOCK, 1] box is 4 bytes wide, under TMA's 16-byte minimum, and these few bytes (1 %
    of a merge's traffic at head size 128) are no tile any mode could address better."""
    idx = o + tl.arange(0, BLOCK)
    return tl.load(ptr + idx.to(tl.int64) * stride, mask=idx < n, other=0.0)


@triton.jit
def store_strided(ptr, value, o, n, stride, BLOCK: tl.constexpr):
    """Store what load_strided reads, rounded once to the operand's dtype; nothing where o + i >= n."""
    idx = o + tl.arange(0, BLOCK)
    tl.store(ptr + idx.to(tl.int64) * stride, value.to(ptr.dtype.element_ty), mask=idx < n)


@triton.jit
def store_rows_4d(view, value, n0, n1, n2, n3, s0, s1, s2, r0, r1, o2,
                  B0: tl.constexpr, B2: tl.constexpr, B3: tl.constexpr, ACCESS: tl.constexpr,
                  SWAP12: tl.constexpr = False):
    """Scatter: row r of value [B0, B2, B3] goes to the [B2, B3] tile at (r0[r], r1[r], o2, 0) of an
    [n0, n1, n2, n3] operand (a paged KV cache: rows are tokens, (r0, r1) their (block, offset)),
    rounded once to the operand's dtype. A row whose r0 or r1 is out of bounds writes nothing, nor
    does any element past n2, n3. B0 == 1: r0, r1 are scalars.

    Pointer: one scattered store of all rows (int64 offsets). block_ptr and descriptor address one
    box a store, so they take B0 == 1 only: the [1, 1, B2, B3] box at (r0, r1, o2, 0), int32 r0, r1.
    SWAP12 (descriptor): the host made the descriptor over [n0, n2, n1, n3], the memory order of a
    cache whose dim 2 has the larger stride (HND), since TMA describes dims outermost stride first;
    the box is then [1, B2, 1, B3] at (r0, o2, r1, 0)."""
    if ACCESS == POINTER:
        if B0 == 1:
            i0 = r0
            i1 = r1
        else:
            i0 = r0[:, None, None]
            i1 = r1[:, None, None]
        i2 = (o2 + tl.arange(0, B2))[None, :, None]
        i3 = tl.arange(0, B3)[None, None, :]
        offs = i0.to(tl.int64) * s0 + i1.to(tl.int64) * s1 + i2 * s2 + i3
        mask = (i0 >= 0) & (i0 < n0) & (i1 >= 0) & (i1 < n1) & (i2 < n2) & (i3 < n3)
        tl.store(view + offs, value.to(view.dtype.element_ty), mask=mask)
    else:
        tl.static_assert(B0 == 1, "block_ptr and descriptor store one row a call")
        if ACCESS == DESCRIPTOR and SWAP12:
            view.store([r0, o2, r1, 0], tl.reshape(value, [1, B2, 1, B3]).to(view.dtype))
        else:
            store_tile_4d(view, tl.reshape(value, [1, 1, B2, B3]), n0, n1, n2, n3, s0, s1, s2, r0, r1, o2, 0,
                          1, 1, B2, B3, ACCESS)


@triton.jit
def bitcast_to(view, value, ACCESS: tl.constexpr):
    """`value`'s bits reinterpreted as the operand's dtype, of the same width (fp8 bits into a
    float8 or a uint8 KV cache); no instruction on a GPU."""
    if ACCESS == DESCRIPTOR:
        return value.to(view.dtype, bitcast=True)
    else:
        return value.to(view.dtype.element_ty, bitcast=True)


@triton.jit
def as_words(view, WORD_BYTES: tl.constexpr, ACCESS: tl.constexpr):
    """The operand read as WORD_BYTES-byte integers (8, 4, 2 or 1), for copies on bit patterns
    (pack_seq: any dtype moves bit-exactly, and a row of 2-byte elements moves in 8-byte words).
    A pointer is reinterpreted (the host has checked that the base, the strides and the row are
    multiples of WORD_BYTES); a descriptor is made over the word view on the host and comes back
    as it is. No instruction on a GPU."""
    if ACCESS == DESCRIPTOR:
        return view
    elif WORD_BYTES == 8:
        return view.to(tl.pointer_type(tl.int64), bitcast=True)
    elif WORD_BYTES == 4:
        return view.to(tl.pointer_type(tl.int32), bitcast=True)
    elif WORD_BYTES == 2:
        return view.to(tl.pointer_type(tl.int16), bitcast=True)
    else:
        return view.to(tl.pointer_type(tl.uint8), bitcast=True)


# ---------------------------------------------------------------- L2 prefetch before a PDL wait
#
# With programmatic dependent launch a kernel's programs become resident while the previous kernel
# drains and then sit in gdc_wait. Nothing may be READ before the wait (the previous kernel may be
# writing it), but asking L2 for a line is safe: prefetch.global.L2 fills no register, and L2 is the
# GPU's point of coherence, so a store the previous kernel makes later lands in the same line. So a
# program can start its HBM reads before the wait and find them in L2 after it: the first load's
# HBM latency (~0.6-0.8 µs on the H100) leaves the critical path. CUDA only: callers take this under
# a PREFETCH constexpr that the host sets only where PDL is used (sm90+), never under the interpreter.

@triton.jit
def prefetch_l2(ptrs, mask):
    """prefetch.global.L2 of each masked-in address (one per 128-byte line is enough)."""
    tl.inline_asm_elementwise("{ .reg .pred p; setp.ne.b32 p, $2, 0; @p prefetch.global.L2 [$1]; mov.u32 $0, 0; }",
                              "=r,l,r", [ptrs, mask.to(tl.int32)], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def prefetch_span_l2(rows, row_mask, c_lo, c_hi, BLOCK_C: tl.constexpr):
    """Prefetch into L2 every 128-byte line of columns [c_lo, c_hi) of the rows whose pointers are
    rows ([R, 1], the masked-off ones skipped): one address a line, a [R, SPAN / LINE] tile a step
    of SPAN = max(BLOCK_C, a line) columns (ll_gemm 7168 x 256 bf16, 32 x 256 a program: 128 lines,
    one a thread at 4 warps). A program's whole share of a weight, asked for before its gdc_wait."""
    LINE: tl.constexpr = 1024 // rows.dtype.element_ty.primitive_bitwidth  # elements in 128 bytes
    SPAN: tl.constexpr = BLOCK_C if BLOCK_C >= LINE else LINE
    lines = tl.arange(0, SPAN // LINE) * LINE
    for c0 in range(c_lo, c_hi, SPAN):
        cols = c0 + lines
        prefetch_l2(rows + cols[None, :], row_mask[:, None] & (cols[None, :] < c_hi))


@triton.jit
def prefetch_rows_l2(ptr, row0, n_rows, n_cols, stride_r, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """Prefetch into L2 the lines of rows [row0, row0 + BLOCK_R) (those < n_rows), elements
    [0, n_cols) of each (n_cols <= BLOCK_C): one address a 128-byte line, int64 row offsets. The
    last line of a row whose start is not 128-byte aligned may be left out (a hint, not a load)."""
    LINE: tl.constexpr = 1024 // ptr.dtype.element_ty.primitive_bitwidth  # elements in 128 bytes
    STEP: tl.constexpr = LINE if LINE < BLOCK_C else BLOCK_C
    rows = row0 + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C // STEP) * STEP
    prefetch_l2(ptr + rows.to(tl.int64)[:, None] * stride_r + cols[None, :],
                (rows < n_rows)[:, None] & (cols < n_cols)[None, :])


@triton.jit
def _bulk_prefetch_l2(lo, hi, who):
    """Thread `who` of the CTA hands the copy engine one request for the bytes [lo, hi), lo rounded
    up and hi down to 16 bytes (cp.async.bulk's unit; a row loses at most 30 bytes of a hint), none
    where that leaves nothing. sm90+ (PTX 8.0)."""
    return tl.inline_asm_elementwise(
        "{ .reg .pred p, q; .reg .u32 t, n; .reg .u64 a, e, d; mov.u32 t, %tid.x; setp.eq.u32 p, t, $3; "
        "add.u64 a, $1, 15; and.b64 a, a, 0xFFFFFFFFFFFFFFF0; and.b64 e, $2, 0xFFFFFFFFFFFFFFF0; "
        "sub.s64 d, e, a; setp.gt.s64 q, d, 0; and.pred p, p, q; cvt.u32.u64 n, d; "
        "@p cp.async.bulk.prefetch.L2.global [a], n; mov.u32 $0, 0; }",
        "=r,l,l,r", [lo, hi, who], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def prefetch_rows_bulk_l2(ptr, row0, n_rows, stride_r, c_lo, c_hi, BLOCK_R: tl.constexpr):
    """prefetch_span_l2's bytes asked for another way: columns [c_lo, c_hi) of rows row0 .. row0 +
    BLOCK_R - 1 (those < n_rows) as ONE cp.async.bulk.prefetch.L2 a row, issued by lanes 0-31 of the
    first warp; the copy engine walks the row. sm90+ only (the host sets it where PDL runs). Neither
    form wins everywhere: against the line prefetches, ll_gemm's router calls ran 0.90-1.16x
    (results/h100/probe_bulk_prefetch.md), so it is a tuned config key (BULK_PREFETCH)."""
    for r in range(BLOCK_R):
        row = ptr + (row0 + r).to(tl.int64) * stride_r
        _bulk_prefetch_l2(row + c_lo, tl.where(row0 + r < n_rows, row + c_hi, row + c_lo), r % 32)
