"""`lmkernels info | verify | bench | tune`.

On a machine without a GPU the kernels can only run under Triton's interpreter, which must be
chosen before the kernels are decorated; `verify` and `info` re-execute themselves once with
TRITON_INTERPRET=1 when it is not set.
"""
from __future__ import annotations

import argparse
import os
import sys


# each names a module lmkernels/bench/<family>.py with a cases() list for harness.run_cases
BENCH_FAMILIES = ("norm", "activation", "rotary", "sampling", "kv_cache", "context_parallel", "scaled_mm", "small_gemm")


def _needs_interpreter() -> bool:
    import torch
    return not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") in ("", "0")


def _reexec_interpreted(argv) -> None:
    env = dict(os.environ, TRITON_INTERPRET="1")
    os.execvpe(sys.executable, [sys.executable, "-m", "lmkernels.cli", *argv], env)


def cmd_info(args) -> int:
    import torch
    import triton

    from .runtime import access, launch
    from .runtime.device import describe_device
    print(f"lmkernels  {__import__('lmkernels').__version__}")
    print(f"torch      {torch.__version__}")
    print(f"triton     {triton.__version__}")
    print(f"device     {describe_device()}")
    print(f"access     {', '.join(access.available_modes())} (default {access.NAMES[access.default_mode()]})")
    print(f"fast launch {'on' if launch.FAST_LAUNCH else 'off (interpreter, unknown Triton launch interface, or LMKERNELS_FAST_LAUNCH=0)'}")
    return 0


def cmd_verify(args) -> int:
    from . import verify
    results = verify.run(ops=args.ops)
    print(verify.table(results))
    bad = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


def cmd_bench(args) -> int:
    import torch
    if not torch.cuda.is_available():
        print("lmkernels bench needs a GPU: it times CUDA-graph replays. On this machine run "
              "`lmkernels verify` instead.", file=sys.stderr)
        return 2
    import importlib

    from .bench import harness
    from .runtime.device import describe_device
    family = importlib.import_module(f"lmkernels.bench.{args.family}")
    copy = harness.copy_bandwidth_gbs()
    mul_host = harness.torch_mul_host_us()
    table = harness.Table(f"{args.family} on {describe_device()}", copy)
    harness.run_cases(table, family.cases())
    print(table.markdown())
    if hasattr(family, "summary"):  # families with targets to read off (small_gemm)
        print(family.summary(table))
    print(f"\nhost µs of torch.mul(x, 2, out=y) in this run: {mul_host:.1f}")
    if args.csv:
        table.write_csv(args.csv)
    return 0


def cmd_tune(args) -> int:
    import torch
    if not torch.cuda.is_available():
        print("lmkernels tune needs a GPU: it times each candidate config with CUDA-graph replays on the "
              "GPU the tables are for. Run it there; the tables it writes are JSON files anyone can ship.",
              file=sys.stderr)
        return 2
    if args.op == "ll-gemm":
        from .tuning import ll_gemm
        return ll_gemm.run_cli(args)
    from .tuning import scaled_mm
    return scaled_mm.run_cli(args)


def _tune_parser(sub) -> None:
    from .tuning.common import parse_count, parse_int_list, parse_minutes, parse_pair
    t = sub.add_parser("tune", help="time candidate kernel configs on this GPU and write JSON tables (GPU only)")
    ops = t.add_subparsers(dest="op", required=True, metavar="OP")
    ending = ("rewritten after every M; Ms already in a file are skipped. Exit status 0: every table complete; "
              "3: --max-minutes stopped it with Ms left (rerun the same command to continue).")
    s = ops.add_parser("scaled-mm", help="W8A8 scaled_mm: one table per (N, K, dtype) on this GPU",
                       description="Tune scaled_mm for [M, K] x [K, N] problems: one file "
                       "OUT/scaled_mm/N=..,K=..,device_name=..,dtype=...json per (N, K, dtype), " + ending)
    s.add_argument("--dtype", nargs="+", choices=("int8", "fp8"), required=True,
                   help="operand dtype(s); several are tuned one after the other")
    s.add_argument("--m", type=parse_int_list, metavar="M,M,...",
                   help="the M buckets (default 1,2,4,8,16,24,32,48,64,96,128,256,512,1024,1536,2048,3072,4096)")
    g = ops.add_parser("ll-gemm", help="ll_gemm (M <= 16) against cuBLAS: one table per (N, K, dtype) on this GPU",
                       description="Tune ll_gemm for x [M <= 16, K] @ weight [N, K]^T: one file "
                       "OUT/ll_gemm/N=..,K=..,device_name=..,dtype=...json per (N, K, dtype), with cuBLAS's time "
                       "beside each M (lmkernels.linear takes cuBLAS where it was faster), " + ending)
    g.add_argument("--dtype", nargs="+", choices=("bf16", "fp16", "fp8"), required=True,
                   help="operand dtype(s); several are tuned one after the other")
    g.add_argument("--m", type=_ll_gemm_ms, metavar="M,M,...", help="the M buckets, each <= 16 (default 1,2,4,8,16)")
    g.add_argument("--prefetch-form-only", action="store_true",
                   help="no search: time each tuned entry's L2 prefetch in both forms (BULK_PREFETCH) and keep "
                        "the faster (the last step of a search, for tables written before it)")
    for p in (s, g):
        p.add_argument("--nk", type=parse_pair, nargs="+", required=True, metavar="N,K",
                       help="weight shapes, N (output features) and K (input features), e.g. 4096,14336")
        p.add_argument("--out", default="configs", help="root folder; files go to OUT/<op>/ (default ./configs; "
                       "lmkernels/configs ships them with the package)")
        p.add_argument("--max-minutes", type=parse_minutes, metavar="F",
                       help="stop between Ms once this much time is spent (or the next M would overrun it)")
        p.add_argument("--force", action="store_true", help="re-tune Ms already in the files")
        p.add_argument("--compile-workers", type=parse_count, default=8, metavar="W",
                       help="processes compiling candidates ahead of timing (0: compile in this process)")


def _ll_gemm_ms(text: str) -> list[int]:
    from .tuning.common import parse_int_list
    ms = parse_int_list(text)
    if ms[-1] > 16:
        raise argparse.ArgumentTypeError(f"ll_gemm serves M <= 16, got {ms[-1]} in {text!r}")
    return ms


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="lmkernels", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="versions, device, access modes")
    v = sub.add_parser("verify", help="every op x access mode x dtype against the reference")
    v.add_argument("--ops", nargs="*", help="op names to check (default: all)")
    b = sub.add_parser("bench", help="CUDA-graph benchmarks against peers (GPU only)")
    b.add_argument("family", choices=BENCH_FAMILIES)
    b.add_argument("--csv", help="also write the table as CSV to this file")
    _tune_parser(sub)
    args = parser.parse_args(argv)
    if args.cmd in ("info", "verify") and _needs_interpreter():
        _reexec_interpreted(argv)
    return {"info": cmd_info, "verify": cmd_verify, "bench": cmd_bench, "tune": cmd_tune}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
