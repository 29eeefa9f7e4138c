"""pack_seq and unpack_seq against peers (cases for `lmkernels bench context_parallel`), bf16.

Bytes counted:
  pack_seq:   the packed tensor written, B x Lmax x row, plus the x rows read, N x row (N =
              sum(lengths); pad rows are written, never read).
  unpack_seq: the N valid packed rows read plus the N output rows written, 2 x N x row (the
              packed pad rows are never read, so they are not counted).
Not counted: lengths (B x 8 bytes) and the sequence-start sums the programs read from L2.
The lengths are drawn once a case (seeded) and shared by its input sets, so N and the bytes are
fixed; max_len / num_tokens are given (the graph-safe path, the one CUDA graphs can time).

Peers: torch eager (the reference: a gather of x's rows by start + t and a where for the pad,
which materialises the [B, Lmax] index grid), torch.compile of it, pad_sequence / cat over a
host-made split (what eager code does; lengths read on the host once, outside the timing), and
vLLM's pack_seq_triton / unpack_seq_triton when vLLM is importable (they read max(lengths) on the
host, so a CUDA-graph capture may refuse them: the table then says failed).
"""
from __future__ import annotations

import math

import torch

import lmkernels
from lmkernels.reference import packing as ref
from lmkernels.runtime.access import available_modes

from .peers import compiled

ROW = 1024  # elements of a big case's token row (bf16: 2 KB)
# (B, Lmax, lengths drawn from [lo, Lmax], row shape): decode (72 heads x 128 = 9216 elements, the
# issue's shape; 7.5 MB to pack, which a same-bytes copy takes 4.45 µs to move on the H100, over the
# issue's 3 µs), the same with a 9216-byte row (36 heads x 128), then ~120 MB, ~240 MB and ~940 MB
# of counted pack bytes
CASES = [(64, 4, 1, (72, 128)), (64, 4, 1, (36, 128)), (64, 512, 256, (ROW,)), (64, 1024, 512, (ROW,)),
         (64, 4096, 1, (ROW,))]


def _vllm():
    try:
        from vllm.v1.attention.ops.common import pack_seq_triton, unpack_seq_triton
        return pack_seq_triton, unpack_seq_triton
    except Exception:
        return None, None


def _case(B: int, L: int, lo: int, trailing, dtype, vllm_pack, vllm_unpack):
    row_bytes = dtype.itemsize * math.prod(trailing)
    g = torch.Generator(device="cuda").manual_seed(4000 + B + L)
    lengths = torch.randint(lo, L + 1, (B,), device="cuda", generator=g)
    host_lengths = lengths.tolist()
    N = sum(host_lengths)
    dt = str(dtype).split(".")[-1]
    shape = f"B={B} Lmax={L} N={N} row={'x'.join(map(str, trailing))}"

    def x_set(i):
        gi = torch.Generator(device="cuda").manual_seed(5000 + i)
        return torch.randn(N, *trailing, device="cuda", generator=gi).to(dtype)

    def pack_with(fn):
        def make(i):
            x = x_set(i)
            return lambda: fn(x)
        return make

    def unpack_with(fn):
        def make(i):
            p = lmkernels.pack_seq(x_set(i), lengths, 0.0, max_len=L)
            return lambda: fn(p)
        return make

    bits = ref.pad_bits(float("-inf"), dtype)
    words = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[dtype.itemsize]
    pack = {f"lmkernels-{m}": pack_with(lambda x, m=m: lmkernels.pack_seq(x, lengths, max_len=L, access=m))
            for m in available_modes()}
    # the default launch is PDL on sm90+; "pdl off" isolates what PDL buys (the peers have none)
    pack["lmkernels-pointer, pdl off"] = pack_with(lambda x: lmkernels.pack_seq(x, lengths, max_len=L, pdl=False))
    pack["torch-eager"] = pack_with(lambda x: ref.pack_seq(x, lengths, max_len=L))
    pack["torch-compile"] = pack_with(lambda x: compiled(ref.pack_rows)(x.view(N, -1).view(words), lengths, bits, L))
    pack["torch-pad_sequence"] = pack_with(lambda x: torch.nn.utils.rnn.pad_sequence(
        x.split(host_lengths), batch_first=True, padding_value=float("-inf")))
    unpack = {f"lmkernels-{m}": unpack_with(lambda p, m=m: lmkernels.unpack_seq(p, lengths, num_tokens=N, access=m))
              for m in available_modes()}
    unpack["lmkernels-pointer, pdl off"] = unpack_with(lambda p: lmkernels.unpack_seq(p, lengths, num_tokens=N,
                                                                                     pdl=False))
    unpack["torch-eager"] = unpack_with(lambda p: ref.unpack_seq(p, lengths, num_tokens=N))
    unpack["torch-compile"] = unpack_with(lambda p: compiled(ref.unpack_rows)(p.view(B, L, -1).view(words), lengths, N))
    unpack["torch-cat"] = unpack_with(lambda p: torch.cat([p[b, :n] for b, n in enumerate(host_lengths)]))
    if vllm_pack is not None:
        pack["vllm-triton"] = pack_with(lambda x: vllm_pack(x, lengths, float("-inf")))
        unpack["vllm-triton"] = unpack_with(lambda p: vllm_unpack(p, lengths))
    # also one input set replayed (ANCHORS.md's method): at decode sizes the whole call fits in L2
    return [("pack_seq", shape, dt, (B * L + N) * row_bytes, pack, {"warm": True}),
            ("unpack_seq", shape, dt, 2 * N * row_bytes, unpack, {"warm": True})]


def cases(dtype=torch.bfloat16, shapes=CASES):
    vllm_pack, vllm_unpack = _vllm()
    return [c for B, L, lo, trailing in shapes for c in _case(B, L, lo, trailing, dtype, vllm_pack, vllm_unpack)]
