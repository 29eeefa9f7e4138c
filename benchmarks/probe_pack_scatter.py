"""Probe: pack_seq indexed by x's rows (scatter) and unpack_seq loading before it knows the lengths.

Why. At decode (B = 64, Lmax = 4, 9216-element bf16 rows) pack takes 3.45 µs rotated and unpack
3.31 (context_parallel.md, session 13), against issue 4's 3 µs. Each program's chain is: PDL wait,
the lengths (one L2 round trip, then a cross-warp sum for the sequence start), then its data load,
then the store. The data load waits for the lengths because the committed kernels index programs
by the packed tile (b, t): pack needs start_b for its source row, unpack needs len_b for its mask.

Two variants, each one round trip shorter:
  pack scatter: programs over x's rows [r0, r0 + BLOCK_T) load their tile at once (the address is
    known), the lengths in parallel; an inclusive cumsum of the lengths in registers gives each
    row's sequence b (the number of ends <= r) and start (the largest end <= r); the row goes to
    out[b, r - start] when that is < Lmax. Separate programs, one per packed (b, token tile), store
    the pad rows (t >= the sequence's valid count); they read only the lengths. Reads exactly the
    rows the committed kernel reads, except a truncated sequence's rows past Lmax (read, not stored).
  unpack speculative: the committed kernel, but the packed tile is loaded up to Lmax (not up to
    len_b), so the load no longer waits for the lengths. It reads the pad rows too: at this case's
    mean length 2.3 of 4, 1.7x the bytes, so it can only win where the round trip costs more than
    the extra HBM traffic.

Prediction (written before the run): the lengths' round trip is ~0.3-0.5 µs of a decode call
(an L2 hit under load, plus the reduction's barrier): pack scatter 3.45 -> ~3.0-3.1 µs rotated,
3.04 -> ~2.6 one set; at B = 64 Lmax = 512 unchanged within 2 %. Unpack speculative: one set
-0.3 µs, rotated +0.2 to +0.4 (the pad rows' HBM bytes).

    python benchmarks/probe_pack_scatter.py [--rounds 3]

Ran (results/h100/probe_pack_scatter.md) on the tree before the row-indexed kernel landed in
kernels/packing.py as _pack_rows_kernel: its variant was then this file's own copy of that kernel
(without the clamp of each length to N), which the probe now launches from the library; on later
trees "committed" pack is that kernel too, at small_config's tiles at decode.
"""
from __future__ import annotations

import argparse
import statistics

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

import lmkernels
from lmkernels.bench import packing as packing_bench
from lmkernels.bench.harness import copy_bandwidth_gbs, graph_us, n_input_sets
from lmkernels.kernels.access import POINTER, as_words, load_tile_3d, store_tile
from lmkernels.kernels.packing import _pack_rows_kernel, _sequence
from lmkernels.ops import packing as packing_ops
from lmkernels.reference import packing as packing_ref
from lmkernels.runtime.device import describe_device


@triton.jit(do_not_specialize=["n_rows", "n_seqs", "max_len", "n_t_tiles"])
def _unpack_spec_kernel(packed_ptr, out_ptr, len_ptr, n_rows, n_seqs, max_len, row_words,
                        stride_pb, stride_pt, stride_ot, stride_l, n_t_tiles,
                        BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_B: tl.constexpr,
                        WORD_BYTES: tl.constexpr, USE_PDL: tl.constexpr = True):
    """The committed _unpack_kernel's common case (one pass: no sequence longer than Lmax, no tail
    past sum(lengths)), its load bounded by Lmax instead of the sequence's length."""
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
    pid = tl.program_id(0)
    b = pid // n_t_tiles
    d0 = tl.program_id(1) * BLOCK_D
    t0 = (pid - b * n_t_tiles) * BLOCK_T
    pw = as_words(packed_ptr, WORD_BYTES, POINTER)
    ow = as_words(out_ptr, WORD_BYTES, POINTER)
    v = load_tile_3d(pw, n_seqs, max_len, row_words, stride_pb, stride_pt, b, t0, d0, 1, BLOCK_T, BLOCK_D, POINTER)
    start, length = _sequence(len_ptr, len_ptr, b, stride_l, BLOCK_B, False)
    n_valid = tl.minimum(length, max_len)
    row_end = tl.minimum(start + n_valid, n_rows)
    v = tl.reshape(v, [BLOCK_T, BLOCK_D])
    store_tile(ow, v, row_end, row_words, stride_ot, (start + t0).to(tl.int32), d0, BLOCK_T, BLOCK_D, POINTER)


def _geometry(t, lead, max_len, config=None):
    row_bytes = t[(0,) * lead].numel() * t.element_size()
    w = packing_ops._word_bytes(row_bytes)
    dw = row_bytes // w
    block_t, block_d, warps = config or packing_ops.copy_config(dw, w, max_len)
    return w, dw, block_t, block_d, warps


def pack_scatter(x, lengths, max_len, pad_value=float("-inf"), config=None):
    B, N = lengths.shape[0], x.shape[0]
    w, dw, block_t, block_d, warps = _geometry(x, 1, max_len, config)
    out = torch.empty((B, max_len) + tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
    n_x, n_t = -(-N // block_t), -(-max_len // block_t)
    word = packing_ops.pad_word(pad_value, x.dtype, w)
    _pack_rows_kernel[(n_x + B * n_t, -(-dw // block_d))](
        x, out, lengths, N, B, max_len, dw, dw, max_len * dw, dw, lengths.stride(0), word, n_x, n_t,
        BLOCK_T=block_t, BLOCK_D=block_d, BLOCK_B=packing_ops._seq_block(B), WORD_BYTES=w,
        USE_PDL=x.is_cuda, num_warps=warps, launch_pdl=x.is_cuda)
    return out


def unpack_spec(packed, lengths, num_tokens, config=None):
    B, L = packed.shape[0], packed.shape[1]
    w, dw, block_t, block_d, warps = _geometry(packed, 2, L, config)
    out = torch.empty((num_tokens,) + tuple(packed.shape[2:]), device=packed.device, dtype=packed.dtype)
    n_t = -(-L // block_t)
    _unpack_spec_kernel[(B * n_t, -(-dw // block_d))](
        packed, out, lengths, num_tokens, B, L, dw, L * dw, dw, dw, lengths.stride(0), n_t,
        BLOCK_T=block_t, BLOCK_D=block_d, BLOCK_B=packing_ops.BLOCK_B, WORD_BYTES=w, USE_PDL=packed.is_cuda,
        num_warps=warps, launch_pdl=packed.is_cuda)
    return out


DEV = "cuda" if torch.cuda.is_available() else "cpu"


def check() -> None:
    """Bit-equality with the committed ops: zeros among the lengths, truncation, x shorter than sum."""
    g = torch.Generator(device=DEV).manual_seed(7)
    for B, L, trailing, n_cut, max_len in ((64, 4, (72, 128), 0, 4), (5, 7, (3, 40), 0, 7), (33, 9, (130,), 5, 6),
                                           (700, 3, (64,), 0, 3), (8, 300, (1024,), 17, 200)):
        lengths = torch.randint(0, L + 1, (B,), device=DEV, generator=g)
        n = int(lengths.sum()) - n_cut
        x = torch.randn(max(n, 1), *trailing, device=DEV, generator=g).to(torch.bfloat16)
        want = lmkernels.pack_seq(x, lengths, max_len=max_len)
        got = pack_scatter(x, lengths, max_len)
        if not torch.equal(got.view(torch.int16), want.view(torch.int16)):
            bad = (got.view(torch.int16) != want.view(torch.int16)).reshape(B, max_len, -1).any(-1).nonzero().tolist()
            ref_rows = packing_ref.pack_seq(x.float(), lengths, max_len=max_len)
            print("pack mismatch", B, L, trailing, n, max_len, "lengths", lengths.tolist(), "rows (b, t)", bad[:20],
                  "committed == reference:", torch.equal(want.float(), ref_rows),
                  "scatter == reference:", torch.equal(got.float(), ref_rows))
            raise SystemExit(1)
        if n_cut == 0 and max_len == L and lengths.max() <= L:
            want_u = lmkernels.unpack_seq(want, lengths, num_tokens=n)
            got_u = unpack_spec(want, lengths, n)
            assert torch.equal(got_u.view(torch.int16), want_u.view(torch.int16)), ("unpack", B, L, trailing)
    print("bit-equal to the committed ops on 5 cases\n")


def decode_case(B, L, lo, trailing):
    """The bench's case (lmkernels/bench/packing.py): seeded lengths in [lo, L], bf16 rows.
    Returns (lengths, N, row bytes, shape label, x_set(i) -> the i-th input set)."""
    g = torch.Generator(device="cuda").manual_seed(4000 + B + L)
    lengths = torch.randint(lo, L + 1, (B,), device="cuda", generator=g)
    N = int(lengths.sum())

    def x_set(i):
        gi = torch.Generator(device="cuda").manual_seed(5000 + i)
        return torch.randn(N, *trailing, device="cuda", generator=gi).to(torch.bfloat16)

    return lengths, N, 2 * torch.Size(trailing).numel(), f"B={B} Lmax={L} N={N} row={'x'.join(map(str, trailing))}", x_set


def interleaved(makers, xs, rounds, setup=lambda name: None):
    """{name: (median µs rotated over xs, median µs on xs[0] alone)} over `rounds` interleaved
    rounds; makers: {name: make(x) -> call}; setup(name) runs before each provider's timing."""
    times = {name: ([], []) for name in makers}
    for _ in range(rounds):
        for name, make in makers.items():
            setup(name)
            calls = [make(x) for x in xs]
            times[name][0].append(graph_us(calls))
            times[name][1].append(graph_us(calls[:1]))
    return {name: tuple(statistics.median(v) for v in t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    check()
    copy = copy_bandwidth_gbs()
    print(f"### pack scatter / unpack speculative, {describe_device()}\n")
    print(f"copy bandwidth, measured in this run: {copy:.0f} GB/s; µs are CUDA-graph medians a call (PDL on), the "
          f"median of {args.rounds} interleaved rounds; rotated: input sets over 4x the L2; one set: the first "
          f"replayed\n")
    print("| op | shape | committed | variant | variant / committed | committed, one set | variant, one set | "
          "variant GB/s (rotated) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for B, L, lo, trailing in packing_bench.CASES[:4]:
        lengths, N, row_bytes, shape, x_set = decode_case(B, L, lo, trailing)

        for op, nbytes in (("pack_seq", (B * L + N) * row_bytes), ("unpack_seq", 2 * N * row_bytes)):
            k = n_input_sets(nbytes)
            if op == "pack_seq":
                xs = [x_set(i) for i in range(k)]
                mk = {"committed": lambda x: lambda: lmkernels.pack_seq(x, lengths, max_len=L),
                      "variant": lambda x: lambda: pack_scatter(x, lengths, L)}
            else:
                xs = [lmkernels.pack_seq(x_set(i), lengths, 0.0, max_len=L) for i in range(k)]
                mk = {"committed": lambda p: lambda: lmkernels.unpack_seq(p, lengths, num_tokens=N),
                      "variant": lambda p: lambda: unpack_spec(p, lengths, N)}
            med = interleaved(mk, xs, args.rounds)
            (c, c1), (v, v1) = med["committed"], med["variant"]
            print(f"| {op} | {shape} | {c:.2f} | {v:.2f} | {v / c:.3f} | {c1:.2f} | {v1:.2f} | {nbytes / v / 1e3:.0f} |",
                  flush=True)
            xs = None
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
