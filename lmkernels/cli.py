"""`lmkernels info | verify | bench`.

On a machine without a GPU the kernels can only run under Triton's interpreter, which must be
chosen before the kernels are decorated; `verify` and `info` re-execute themselves once with
TRITON_INTERPRET=1 when it is not set.
"""
from __future__ import annotations

import argparse
import os
import sys


# each names a module lmkernels/bench/<family>.py with a cases() list for harness.run_cases
BENCH_FAMILIES = ("norm", "activation", "rotary", "sampling", "kv_cache", "context_parallel")


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
    print(f"\nhost µs of torch.mul(x, 2, out=y) in this run: {mul_host:.1f}")
    if args.csv:
        table.write_csv(args.csv)
    return 0


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
    args = parser.parse_args(argv)
    if args.cmd in ("info", "verify") and _needs_interpreter():
        _reexec_interpreted(argv)
    return {"info": cmd_info, "verify": cmd_verify, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
