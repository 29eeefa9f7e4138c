"""The only place that knows how memory is addressed.

Kernels call these helpers with ACCESS, a constexpr (runtime/access.py: 0 pointer, 1 block_ptr,
2 descriptor). Untaken constexpr branches are never compiled, so the block_ptr branch costs nothing
where make_block_ptr no longer exists. All three read and write the same elements and zero-fill
out-of-bounds reads, so a kernel's results do not depend on the mode.

A 2-D operand is described by (base, n_rows, n_cols, stride_r); its last dim is contiguous. A
"view" is what a mode needs to address it: the base pointer (pointer, block_ptr) or a tensor
descriptor (descriptor, built once per program: it costs a 128-byte global-scratch write).
"""
import triton
import triton.language as tl

POINTER: tl.constexpr = tl.constexpr(0)
BLOCK_PTR: tl.constexpr = tl.constexpr(1)
DESCRIPTOR: tl.constexpr = tl.constexpr(2)


@triton.jit
def tile_view(base, n_rows, n_cols, stride_r, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, ACCESS: tl.constexpr):
    if ACCESS == DESCRIPTOR:
        return tl.make_tensor_descriptor(base, [n_rows, n_cols], [stride_r, 1], [BLOCK_R, BLOCK_C])
    else:
        return base


@triton.jit
def load_tile(view, n_rows, n_cols, stride_r, row0, col0,
              BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, ACCESS: tl.constexpr):
    """[BLOCK_R, BLOCK_C] tile at (row0, col0); out-of-bounds elements read as 0."""
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
    """Store a [BLOCK_R, BLOCK_C] tile at (row0, col0); nothing is written out of bounds."""
    if ACCESS == POINTER:
        rows = row0 + tl.arange(0, BLOCK_R)
        cols = col0 + tl.arange(0, BLOCK_C)
        mask = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
        ptrs = view + rows[:, None].to(tl.int64) * stride_r + cols[None, :]
        tl.store(ptrs, value, mask=mask)
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(view, (n_rows, n_cols), (stride_r, 1), (row0, col0), (BLOCK_R, BLOCK_C), (1, 0))
        tl.store(bp, value, boundary_check=(0, 1))
    else:
        view.store([row0, col0], value)


@triton.jit
def load_vector(base, n, BLOCK: tl.constexpr, ACCESS: tl.constexpr):
    """Elements [0, BLOCK) of a contiguous vector of length n, zero past n, as a [1, BLOCK] tile."""
    if ACCESS == POINTER:
        offs = tl.arange(0, BLOCK)
        return tl.load(base + offs, mask=offs < n, other=0.0)[None, :]
    elif ACCESS == BLOCK_PTR:
        bp = tl.make_block_ptr(base, (n,), (1,), (0,), (BLOCK,), (0,))
        return tl.load(bp, boundary_check=(0,), padding_option="zero")[None, :]
    else:
        return tl.make_tensor_descriptor(base, [n], [1], [BLOCK]).load([0])[None, :]
