"""Context-parallel decode combine across GPUs: correctness against full attention, and its time.

  torchrun --nproc-per-node 2 benchmarks/cp_multi_gpu.py [--out table.md]
  python benchmarks/cp_multi_gpu.py [--nproc 2] [--out table.md]      (spawns its own ranks)

Every rank builds the same queries and KV sequence (one seed), takes its shard of the keys (token i
on rank i % W, vLLM's interleave), computes its partial attention and LSE in float64 and rounds them
as an attention kernel would (output to the dtype, LSE to fp32), then combines with
lmkernels.cp_lse_ag_out_rs and cp_lse_ag_out_ar over NCCL. The result is compared with the float64
full attention over the whole sequence for the heads the rank keeps. Allowed error per element:
  1 ulp(want) + ((W + 1) u + 2^-20 (W + 4 + spread)) sum_r exp(l_r - L) |o_r|
u = 2^-mantissa of the dtype: the rank's output rounded (u), the op's rounding (u) and W - 1
roundings of partial sums inside the collective; the 2^-20 term is the fp32 weights' exp/log error
(tests/test_context_parallel.py derives it; spread = the largest |l_r - L| + |L| of the element).

Times (rank 0's, CUDA events): the whole combine eager (median of 50 calls: all-gather of the LSEs,
the correction kernel, the reduce-scatter or all-reduce), the same captured in a CUDA graph with
--graph (NaN where capture fails; off by default: a capture NCCL refuses could leave the ranks out of
step), and the correction kernel alone in a CUDA graph (lmkernels.bench.harness.graph_us).
NVLink multicast stays off (NCCL_NVLS_ENABLE=0 and friends, set before the process group exists).
Exits non-zero when any case fails on any rank.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import tempfile

NCCL_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
os.environ.update(NCCL_ENV)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lmkernels  # noqa: E402
from lmkernels.bench.harness import graph_us  # noqa: E402
from lmkernels.reference.context_parallel import attention_with_lse  # noqa: E402

H_PER_RANK, D = 32, 128
GQA = 4  # query heads per kv head
SHAPES = [(1, 65536), (8, 32768), (64, 4096), (64, 16384)]  # (B, keys in the whole sequence)
DTYPES = (torch.bfloat16, torch.float32)
MANTISSA = {torch.float32: 23, torch.float16: 10, torch.bfloat16: 7}
CHUNK_BYTES = 2**32  # float64 attention is computed over batch chunks of at most this many expanded K bytes


def _attention(q, k, v):
    """attention_with_lse in float64 over batch chunks (the reference expands K and V to every query head)."""
    B, S, Hkv, Dh = k.shape
    step = max(1, CHUNK_BYTES // max(1, S * q.shape[1] * Dh * 8))
    outs, lses = [], []
    for b0 in range(0, B, step):
        o, lse = attention_with_lse(q[b0:b0 + step].double(), k[b0:b0 + step].double(), v[b0:b0 + step].double())
        outs.append(o)
        lses.append(lse)
    return torch.cat(outs), torch.cat(lses)


def _ulp(w, dtype):
    e = torch.frexp(w.abs().clamp_min(torch.finfo(dtype).tiny)).exponent
    return torch.ldexp(torch.ones_like(w), e - 1 - MANTISSA[dtype])


def _events_us(fn, n=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(n):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
    return statistics.median(times)


def _graph_us(fn, n=50):
    """Median µs of fn captured in a CUDA graph (NCCL collectives included), or NaN where capture fails."""
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            fn()
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        return _events_us(g.replay, n)
    except Exception as e:  # report, do not fail the correctness run
        if dist.get_rank() == 0:
            print(f"  (graph capture of the combine failed: {type(e).__name__}: {str(e)[:120]})", flush=True)
        torch.cuda.synchronize()
        return math.nan


def run_case(B, S, dtype, world, rank, device, with_graph=False):
    HW, Hkv = H_PER_RANK * world, H_PER_RANK * world // GQA
    gen = torch.Generator(device=device).manual_seed(B * 1000003 + S)
    q = torch.randn(B, HW, D, generator=gen, device=device)
    k = torch.randn(B, S, Hkv, D, generator=gen, device=device)
    v = torch.randn(B, S, Hkv, D, generator=gen, device=device)
    full, full_lse = _attention(q, k, v)
    parts = [_attention(q, k[:, r::world], v[:, r::world]) for r in range(world)]
    del k, v
    o_in, lse_in = parts[rank][0].to(dtype), parts[rank][1].float()
    mine = slice(rank * H_PER_RANK, (rank + 1) * H_PER_RANK)
    # the largest |l_r - L| over the ranks with keys, plus |L|: what the fp32 weights' error grows with
    gaps = torch.stack([torch.where(torch.isfinite(lr), (lr - full_lse).abs(), 0.0) for _, lr in parts])
    spread = gaps.amax(0) + full_lse.abs()
    bound = sum(torch.exp(lr - full_lse)[..., None] * o.abs() for o, lr in parts)
    u = 2.0**-MANTISSA[dtype]
    rows = []
    for name, fn, heads in (("cp_lse_ag_out_rs", lmkernels.cp_lse_ag_out_rs, mine),
                            ("cp_lse_ag_out_ar", lmkernels.cp_lse_ag_out_ar, slice(None))):
        out, lse = fn(o_in, lse_in, dist.group.WORLD, return_lse=True)
        want = full[:, heads]
        allowed = _ulp(want, dtype) + ((world + 1) * u + 2.0**-20 * (world + 4 + spread[:, heads, None])) * bound[:, heads]
        ratio = float(((out.double() - want).abs() / allowed).max())
        lse_allowed = _ulp(full_lse[:, heads], torch.float32) + 2.0**-20 * (world + 4 + spread[:, heads])
        ratio = max(ratio, float(((lse.double() - full_lse[:, heads]).abs() / lse_allowed).max()))
        if math.isnan(ratio):
            ratio = math.inf
        worst = torch.tensor([ratio], device=device)
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
        eager = _events_us(lambda: fn(o_in, lse_in, dist.group.WORLD))
        graph = _graph_us(lambda: fn(o_in, lse_in, dist.group.WORLD)) if with_graph else math.nan
        lses = torch.randn(world, B, HW, device=device) + 10
        scratch = o_in.clone()
        kernel = graph_us([lambda: lmkernels.correct_attn_out(scratch, lses, rank)], reps=20)
        rows.append((name, str(dtype).split(".")[-1], B, S, -(-S // world), H_PER_RANK, D, float(worst), eager, graph,
                     kernel))
    del full, parts
    torch.cuda.empty_cache()
    return rows


def table(rows, world, device_name) -> str:
    lines = [f"### context-parallel combine, {world} x {device_name}, NCCL (NVLS off)", "",
             "| op | dtype | B | keys | keys/rank | heads/rank | D | max err / allowed | result | combine µs eager "
             "| combine µs graph | correction kernel µs (graph) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for op, dt, B, S, per, h, d, worst, eager, graph, kernel in rows:
        lines.append(f"| {op} | {dt} | {B} | {S} | {per} | {h} | {d} | {worst:.3g} | "
                     f"{'PASS' if worst <= 1 else 'FAIL'} | {eager:.1f} | {graph:.1f} | {kernel:.2f} |")
    return "\n".join(lines)


def main_rank(rank, world, init_method, out_path, shapes, with_graph=False) -> int:
    os.environ.update(NCCL_ENV)
    torch.cuda.set_device(rank % torch.cuda.device_count())
    device = torch.device("cuda", torch.cuda.current_device())
    dist.init_process_group("nccl", init_method=init_method, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=600), device_id=device)
    try:
        rows = []
        for dtype in DTYPES:
            for B, S in shapes:
                rows += run_case(B, S, dtype, world, rank, device, with_graph)
                if rank == 0:
                    print(f"done B={B} S={S} {dtype}", flush=True)
        failed = any(r[7] > 1 for r in rows)
        if rank == 0:
            text = table(rows, world, torch.cuda.get_device_name(device))
            print(text, flush=True)
            if out_path:
                with open(out_path, "w") as f:
                    f.write(text + "\n")
        dist.barrier()
        return 1 if failed else 0
    finally:
        dist.destroy_process_group()


def _spawned(rank, world, init_method, out_path, shapes, with_graph):
    if main_rank(rank, world, init_method, out_path, shapes, with_graph):
        raise SystemExit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2, help="ranks to spawn when not under torchrun")
    parser.add_argument("--out", help="also write the markdown table here (rank 0)")
    parser.add_argument("--quick", action="store_true", help="the two smallest shapes only")
    parser.add_argument("--graph", action="store_true",
                        help="also time the whole combine captured in a CUDA graph (NCCL collectives in the capture)")
    args = parser.parse_args()
    shapes = SHAPES[:1] + SHAPES[2:3] if args.quick else SHAPES
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun
        return main_rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), "env://", args.out, shapes, args.graph)
    if torch.cuda.device_count() < args.nproc:
        print(f"needs {args.nproc} GPUs, found {torch.cuda.device_count()}", file=sys.stderr)
        return 2
    store = os.path.join(tempfile.mkdtemp(), "store")
    import torch.multiprocessing as mp
    try:
        mp.spawn(_spawned, args=(args.nproc, f"file://{store}", args.out, shapes, args.graph), nprocs=args.nproc)
    except mp.ProcessExitedException:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
