"""Probe: where a router call's time goes, from timestamps each program writes (session 38).

Run on a traced copy of the package: `git archive HEAD lmkernels` unpacked under out/trace, then
kernels/small_gemm.py given a `_stamp(tr, slot, dep)` helper (%globaltimer ns into tr[slot],
%clock64 into tr[8 + slot]; dep a value the read waits for; %smid into tr[5]) called at 0 program start, 1 after
gdc_wait, 2 once the K loop's accumulator exists (dep: its max), 3 once the split-K finish has the
tile (cluster_sum's total, or the counter's last_to_arrive), 4 after the epilogue's stores are
issued; tr = the bias slot's pointer + 16 pid (int64), which ops/small_gemm._run fills from its
module global TRACE when there is no bias. The probe is not a benchmark: the stamps' reductions
cost a little (the traced and untraced graph times are printed side by side).

Each point is a CUDA graph of back-to-back PDL calls on rotated weights (as bench small_gemm), each
call stamping into its own buffer; after warm replays, one replay is read. Per call: its programs'
phase durations (medians and maxima over programs, then medians over the calls of the graph), the
period (call i's first start - call i-1's first start), and the release (call i's first program past
its wait - call i-1's last end).

Prediction (before the run), for 7168 x 256: at M = 1 (rows, no split) the K loop is most of the
period, ~1.2 of 2.3 µs, the wait/release ~0.8; at M = 8-16 the loop ~1.5-2 µs of 3.6-4.4 (its mma
chain and x's loads), the split-K finish ~0.4-0.6 in clusters and ~1 with the counter (M = 16).

Outcome (H100, results/h100/probe_ll_gemm_trace*.md). %globaltimer ticks every 256 ns there, so the
µs phases are coarse; the %clock64 columns (thousands of SM clocks, ~0.5 ns each) carry the result.
  - Half right. The split-K finish: 1.2 kcyc in clusters (M = 4 / 8), 1.8 with the counter (M = 16),
    as predicted. The loop is longer than predicted everywhere: 3.4 kcyc at M = 1 (~1.7 µs of a
    2.3 µs period), 3.6-4.0 at M = 4 / 8, 4.4 at M = 16, 6.4 at 7168 x 384 M = 16. The chain's floor
    kernel (4096 x 8 M = 1, 4 programs) has a 1.7 kcyc loop and a 1.28 µs period.
  - Weights L2-hot (one input set): the loop 0.6-0.8 kcyc shorter (M = 1 2.6, M = 8 3.1, M = 16 3.8);
    7168 x 256 M = 1 then runs 2.03-2.18 µs, still above the issue's 2 µs. PREFETCH off: +1.1-1.4 kcyc.
  - Weight preloaded into registers before the wait (PRELOAD, unsound as a default): loop 1.3-1.9
    kcyc, but the period rises (7168 x 256 2.46 -> 2.64-2.95 µs): the read is not done in the window.
    fp8 7168 x 256 M = 1 with it: 1.90-2.13 µs against 2.20-2.25.
  - None of these moved the loop (the "chains", "rows" and "l2" lists):
      - 8 mma chains on 4 warps instead of 4: within +-0.2 kcyc;
      - twice the programs at M = 1 (2 weight rows each, 128 SMs): 3.48 against 3.39 kcyc;
      - half the bytes through L2 at M = 16 (16 x 32 x 512, 14 splits: x re-read by 8 n-tiles, not
        16, and the weight read once, not twice): 4.75 against 4.38 kcyc.
    So neither the mma chain nor bandwidth, per SM or in aggregate, bounds the loop.
  - Fewer, fatter programs (48-84 programs of 96-160 KB): 5.5-5.8 kcyc, and 26 for 16 x 64 x 1024.
  - Placement. Cluster launches put two CTAs on an SM where they can:
      - 7168 x 384 M = 4 / 8: 168 programs on 122 SMs; the sharers' loop is 4.5-4.7 kcyc against
        3.7-3.8 for programs alone on an SM;
      - 7168 x 256 M = 16 with CLUSTER: 128 programs on 66 SMs, loop 7.3 kcyc. This is why the M = 16
        cluster entries lost in session 34.
    A cluster of 14 did not launch ("cluster misconfiguration").
  - Next: stall sampling on the chained run. An isolated Nsight Compute pass on 7168 x 256 M = 16 saw
    8 cycles between a warp's issues, a third of them on the L1TEX scoreboard, and one active warp a
    scheduler; in that mode caches are flushed and nothing overlaps.

    PYTHONPATH=$PWD/out/trace python3 benchmarks/probe_ll_gemm_trace.py [variants|chains|rows|l2]
                                                                       (markdown to stdout)
The traced package: `mkdir -p out/trace && git archive HEAD lmkernels | tar -x -C out/trace &&
patch -d out/trace -p1 < benchmarks/probe_ll_gemm_trace.patch` (session 38's patch on 52a9721; it also
lets the probe ask for clusters of any size up to 16).
"""
from __future__ import annotations

import statistics

import sys

import torch
from probe_wait_ab import router_calls

from lmkernels.bench.harness import graph_us
from lmkernels.ops import small_gemm as ops

POINTS = [(4096, 8, 1, "bf16"), (7168, 256, 1, "bf16"), (7168, 256, 4, "bf16"), (7168, 256, 8, "bf16"),
          (7168, 256, 16, "bf16"), (7168, 384, 4, "bf16"), (7168, 384, 8, "bf16"), (7168, 384, 16, "bf16"),
          (6144, 256, 16, "bf16"), (7168, 256, 1, "fp8"), (7168, 256, 16, "fp8")]
# session 38's second run: L2-hot weights (one set), the prefetch off, preloaded weights, clusters
VARIANTS = [((4096, 8, 1, "bf16"), False, None), ((4096, 8, 1, "bf16"), True, {"PREFETCH": False}),
            ((7168, 256, 1, "bf16"), False, None), ((7168, 256, 1, "bf16"), True, {"PREFETCH": False}),
            ((7168, 256, 1, "bf16"), True, {"PRELOAD": True}), ((4096, 8, 1, "bf16"), True, {"PRELOAD": True}),
            ((7168, 256, 8, "bf16"), False, None), ((7168, 256, 8, "bf16"), True, {"PREFETCH": False}),
            ((7168, 256, 16, "bf16"), False, None), ((7168, 256, 16, "bf16"), True, {"CLUSTER": True}),
            ((7168, 384, 16, "bf16"), False, None), ((7168, 384, 16, "bf16"), True, {"PREFETCH": False})]
# the third: DOT_CHAINS 8 on 4 warps (two independent mma chains a warp; the tuner's space has 8 only
# on 8 warps), and 7168 x 384 at M = 16 on 7168 x 256's M-tiled transposed tile
CHAINS = [((7168, 256, 8, "bf16"), True, None), ((7168, 256, 8, "bf16"), True, {"DOT_CHAINS": 8}),
          ((7168, 256, 4, "bf16"), True, {"DOT_CHAINS": 8}),
          ((7168, 256, 16, "bf16"), True, None), ((7168, 256, 16, "bf16"), True, {"DOT_CHAINS": 8}),
          ((7168, 384, 8, "bf16"), True, None), ((7168, 384, 8, "bf16"), True, {"DOT_CHAINS": 8}),
          ((7168, 384, 4, "bf16"), True, {"DOT_CHAINS": 8}),
          ((7168, 384, 16, "bf16"), True, None),
          ((7168, 384, 16, "bf16"), True, {"BLOCK_M": 8, "BLOCK_N": 16, "DOT_CHAINS": 8, "SWAP_AB": True}),
          ((7168, 384, 16, "bf16"), True, {"BLOCK_M": 8, "BLOCK_N": 16, "DOT_CHAINS": 4, "SWAP_AB": True}),
          ((6144, 256, 16, "bf16"), True, None), ((6144, 256, 16, "bf16"), True, {"DOT_CHAINS": 8})]
# the fourth: M = 1 on twice the programs (2 weight rows each: 128 SMs ask for the weight, not 64),
# with the L2 prefetch and with the weight preloaded into registers before the wait
ROWS = [((7168, 256, 1, "bf16"), True, None), ((7168, 256, 1, "bf16"), True, {"BLOCK_N": 2}),
        ((7168, 256, 1, "bf16"), True, {"BLOCK_N": 2, "num_warps": 8}),
        ((7168, 256, 1, "bf16"), False, {"BLOCK_N": 2}),
        ((7168, 256, 1, "bf16"), True, {"BLOCK_N": 2, "PRELOAD": True}),
        ((7168, 256, 1, "bf16"), True, {"BLOCK_N": 2, "num_warps": 8, "PRELOAD": True}),
        ((7168, 384, 1, "bf16"), True, None), ((7168, 384, 1, "bf16"), True, {"BLOCK_N": 2}),
        ((7168, 384, 1, "bf16"), True, {"BLOCK_N": 2, "PRELOAD": True}),
        ((7168, 384, 1, "bf16"), True, {"BLOCK_N": 2, "num_warps": 8}),
        ((7168, 256, 1, "fp8"), True, {"PRELOAD": True})]
# the fifth: fewer bytes through L2 at M = 8-16 (all 16 rows a program, wider tiles, more splits:
# x re-read by fewer n-tiles, the weight by one m-tile), the splits finished in clusters of up to 16
D16 = {"USE_DOT": True, "BLOCK_M": 16, "BLOCK_K": 512, "num_warps": 4, "num_stages": 1, "SWAP_AB": False,
       "ONE_LAUNCH": True}
L2 = [((7168, 256, 16, "bf16"), True, None),
      ((7168, 256, 16, "bf16"), True, dict(D16, BLOCK_N=32, SPLIT_K=14, DOT_CHAINS=4, CLUSTER=False)),
      ((7168, 256, 16, "bf16"), True, dict(D16, BLOCK_N=32, BLOCK_K=1024, SPLIT_K=7, DOT_CHAINS=4, CLUSTER=True)),
      ((7168, 384, 16, "bf16"), True, None),
      ((7168, 384, 16, "bf16"), True, dict(D16, BLOCK_N=64, BLOCK_K=1024, SPLIT_K=7, DOT_CHAINS=2, CLUSTER=True)),
      ((6144, 256, 16, "bf16"), True, None),
      ((6144, 256, 16, "bf16"), True, dict(D16, BLOCK_N=32, BLOCK_K=1024, SPLIT_K=6, DOT_CHAINS=4, CLUSTER=True)),
      ((7168, 384, 8, "bf16"), True, None),
      ((7168, 384, 8, "bf16"), True, dict(D16, BLOCK_M=8, SWAP_AB=True, BLOCK_N=32, BLOCK_K=1024, SPLIT_K=7,
                                          DOT_CHAINS=4, CLUSTER=True))]
CALLS = 58
MAX_PROGRAMS = 4096


def med(v):
    return statistics.median(v) if v else float("nan")


def trace_point(K, N, M, tag, rotated=True, config=None):
    calls = router_calls(K, N, M, tag, config, rotated)
    ops.TRACE = None
    plain = min(graph_us(calls) for _ in range(2))
    seq = (calls * -(-CALLS // len(calls)))[:CALLS]
    buf = torch.full((CALLS, MAX_PROGRAMS, 16), -1, dtype=torch.int64, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for i, c in enumerate(seq):
            ops.TRACE = buf[i]
            c()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i, c in enumerate(seq):
            ops.TRACE = buf[i]
            c()
    ops.TRACE = None
    for _ in range(20):
        graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(30):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / CALLS)
    traced = med(times)
    buf.fill_(-1)
    graph.replay()
    torch.cuda.synchronize()
    t = buf.cpu()
    progs = int((t[0, :, 0] >= 0).sum())
    t = t[:, :progs]
    ns = t[:, :, :5].double()
    cyc = t[:, :, 8:13].double()
    # per call i >= 1 (call 0 follows the replay's start)
    period, release, span, first_wait = [], [], [], []
    ph = {k: ([], []) for k in ("wait", "loop", "finish", "epi", "prog")}
    cph = {k: [] for k in ("loop", "finish", "epi")}
    has3 = bool((t[:, :, 3] >= 0).any())
    sms_used, most, loop_shared, loop_alone = [], [], [], []
    for i in range(1, CALLS):
        s = ns[i]
        sm = t[i, :, 5]
        per_sm = torch.bincount(sm, minlength=256)
        sms_used.append(int((per_sm > 0).sum()))
        most.append(int(per_sm.max()))
        shared = per_sm[sm] > 1
        lc = cyc[i][:, 2] - cyc[i][:, 1]
        if bool(shared.any()):
            loop_shared.append(float(lc[shared].median()))
        if bool((~shared).any()):
            loop_alone.append(float(lc[~shared].median()))
        period.append(float(s[:, 0].min() - ns[i - 1][:, 0].min()))
        release.append(float(s[:, 1].min() - ns[i - 1][:, 4].max()))
        span.append(float(s[:, 4].max() - s[:, 1].min()))
        first_wait.append(float(s[:, 1].min() - s[:, 0].min()))
        parts = {"wait": s[:, 1] - s[:, 0], "loop": s[:, 2] - s[:, 1], "prog": s[:, 4] - s[:, 0]}
        if has3:
            parts["finish"] = s[:, 3] - s[:, 2]
            parts["epi"] = s[:, 4] - s[:, 3]
        else:
            parts["epi"] = s[:, 4] - s[:, 2]
        for k, v in parts.items():
            ph[k][0].append(float(v.median()))
            ph[k][1].append(float(v.max()))
        c = cyc[i]
        cph["loop"].append(float((c[:, 2] - c[:, 1]).median()))
        if has3:
            cph["finish"].append(float((c[:, 3] - c[:, 2]).median()))
            cph["epi"].append(float((c[:, 4] - c[:, 3]).median()))
        else:
            cph["epi"].append(float((c[:, 4] - c[:, 2]).median()))
    diffs = torch.diff(torch.sort(ns[1:, :, :5].flatten()).values)
    tick = float(diffs[diffs > 0].min()) if bool((diffs > 0).any()) else float("nan")
    label = f"{tag} {K}x{N} M={M}" + ("" if rotated else " one set") + (f" {config}" if config else "")
    row = {"point": label, "programs": progs, "plain": plain, "traced": traced,
           "period": med(period), "release": med(release), "span": med(span), "first_wait": med(first_wait),
           "tick": tick, "sms": med(sms_used), "most": max(most), "loop_shared": med(loop_shared),
           "loop_alone": med(loop_alone)}
    for k, (m, x) in ph.items():
        row[k] = (med(m), med(x))
    for k, v in cph.items():
        row["cyc_" + k] = med(v)
    del graph, buf, calls, seq
    torch.cuda.empty_cache()
    return row


def fmt(v):
    return "-" if v != v else f"{v / 1e3:.2f}"


def main() -> int:
    print("| point | progs | plain µs | traced µs | period | release | after wait | prog | wait | loop | finish | "
          "epilogue | loop kcyc | finish kcyc | epi kcyc | tick ns | SMs | most a SM | loop kcyc sharing / alone |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    runs = {"variants": VARIANTS, "chains": CHAINS, "rows": ROWS, "l2": L2}.get((sys.argv[1:] or [""])[0], [(p, True, None) for p in POINTS])
    for (K, N, M, tag), rotated, config in runs:
        r = trace_point(K, N, M, tag, rotated, config)

        def mm(k):
            m, x = r.get(k, (float("nan"), float("nan")))
            return f"{fmt(m)} / {fmt(x)}"
        print(f"| {r['point']} | {r['programs']} | {r['plain']:.2f} | {r['traced']:.2f} | {fmt(r['period'])} | "
              f"{fmt(r['release'])} | {fmt(r['span'])} | {mm('prog')} | {mm('wait')} | {mm('loop')} | {mm('finish')} | "
              f"{mm('epi')} | {fmt(r['cyc_loop'])} | {fmt(r.get('cyc_finish', float('nan')))} | {fmt(r['cyc_epi'])} | "
              f"{r['tick']:.0f} | {r['sms']:.0f} | {r['most']} | {fmt(r['loop_shared'])} / {fmt(r['loop_alone'])} |",
              flush=True)
    print("\nµs unless marked; phases 'median / max over a call's programs', medians over the graph's calls; "
          "period: first start to the next call's first start; release: the last end of call i-1 to call i's first "
          "program past gdc_wait; after wait: call i's first past-wait to its last end; kcyc: thousands of SM "
          "clocks (%clock64), median over programs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
