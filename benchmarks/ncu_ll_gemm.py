"""Nsight Compute's stall sampling on ll_gemm, and a summary of its SASS page (session 38).

    ncu --cache-control none --warp-sampling-interval 0 --profile-from-start off \
        --kernel-name regex:_ll_gemm --launch-skip 4 --launch-count 6 --section WarpStateStats \
        --section SourceCounters --page source --print-source sass \
        python3 benchmarks/ncu_ll_gemm.py run K N M [SETS] > F.txt
    python3 benchmarks/ncu_ll_gemm.py summarise F.txt ...   (samples per SASS region)

run: eager bf16 calls (SETS input sets, 60 by default; 1 keeps the weights in L2), three warm rounds,
then 12 calls between cudaProfilerStart / Stop. summarise: the "Warp Stall Sampling (All Samples)"
column summed per instruction over the launches in the file, then per region, a region running from
one landmark instruction (DEPBAR, BAR.SYNC, HMMA, CCTL, LDG, SHFL, the cluster waits, ...) to the
next. results/h100/ncu_ll_gemm_s38.md holds session 38's summary."""
from __future__ import annotations

import collections
import re
import sys

MARKS = ("DEPBAR", "BAR.SYNC", "HMMA", "SYNCS.PHASECHK", "UCGABAR_WAIT", "CCTL", "STG", "ATOM", "RED", "LDG",
         "ACQBULK", "SHFL", "EXIT", "FFMA", "UBLKCP")


def run(K: int, N: int, M: int, n_sets: int) -> None:
    import torch

    import lmkernels
    from lmkernels.tuning.ll_gemm import operands
    sets = [operands(M, N, K, "bf16", "cuda", 700 + i) for i in range(n_sets)]
    for _ in range(3):
        for s in sets:
            lmkernels.ll_gemm(s[0], s[1])
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    for i in range(12):
        s = sets[i % n_sets]
        lmkernels.ll_gemm(s[0], s[1])
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()


def samples(fn: str) -> collections.Counter:
    """{(address mod 64 KB, SASS text): samples} over every launch in an ncu --page source file."""
    lines = open(fn).read().splitlines()
    agg = collections.Counter()
    start = None
    for line in lines:
        if line.startswith("Address ") and "Source" in line:
            start = line.index("Warp S")  # the first numeric column: Warp Stall Sampling (All Samples)
            continue
        m = re.match(r"\s*(0x[0-9a-f]+)\s", line)
        if m and start is not None:
            try:
                agg[(int(m.group(1), 16) & 0xFFFF, line[len(m.group(0)) - 1:start].strip())] += \
                    int(line[start:].split()[0].replace(",", ""))
            except (ValueError, IndexError):
                pass
    return agg


def summarise(fn: str) -> None:
    agg = samples(fn)
    total = sum(agg.values())
    rows = sorted((a, s, v) for (a, s), v in agg.items())
    # the kernel's entry sat at the top of a 64 KB page in session 38's runs: those addresses first
    rows = [r for r in rows if r[0] >= 0xF000] + [r for r in rows if r[0] < 0xF000]
    print(fn, "samples", total)
    acc, label, first, segs = 0, "entry", rows[0][0], []
    for a, s, v in rows:
        op = s.split()[1] if s.startswith("@") else s.split()[0]
        mark = next((k for k in MARKS if op.startswith(k)), None)
        if mark and mark != label:
            segs.append((first, label, acc))
            acc, label, first = 0, mark, a
        acc += v
    segs.append((first, label, acc))
    for a, lab, v in segs:
        if v / total >= 0.02:
            print(f"   {a:04x} {lab:16s} {100 * v / total:5.1f}%")
    print()


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(*(int(v) for v in sys.argv[2:5]), int(sys.argv[5]) if len(sys.argv) > 5 else 60)
    else:
        for f in sys.argv[2:]:
            summarise(f)
