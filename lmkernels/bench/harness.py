"""Timing machinery every `lmkernels bench` family uses.

Device time: one CUDA graph replays the op over K input sets in turn (K chosen so the sets overflow
L2 several times, at most 64), cycling through them until the graph holds at least MIN_GRAPH_CALLS
calls, timed with CUDA events; the median replay over its call count is one call. Host
time: eager calls back to back, wall clock over the count (small kernels leave the host the limit).
"""
from __future__ import annotations

import csv
import ctypes
import random
import statistics
import time
from dataclasses import dataclass, field

import torch

from . import copies

L2_BYTES_DEFAULT = 50 * 2**20


def l2_bytes() -> int:
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return getattr(props, "L2_cache_size", L2_BYTES_DEFAULT) or L2_BYTES_DEFAULT


def n_input_sets(bytes_per_call: int) -> int:
    """Enough sets that one replay touches 4x the L2; tiny decode inputs stop at 64 sets."""
    return max(1, min(64, -(-4 * l2_bytes() // max(1, bytes_per_call))))


# A replay pays the graph's launch once (a few µs between the start event and the first kernel):
# over the 4 calls that T = 4096 norms had (64 MB a call, 4 sets), that was ~1 µs a call, 4 % of
# 25 µs, charged to the kernel. 32 calls make it a fraction of a percent.
MIN_GRAPH_CALLS = 32


_libcuda: list = []  # [the CUDA driver library, or None where there is none (ROCm)], loaded once


def reset_persisting_l2() -> None:
    """Every L2 line marked persisting back to normal (cuCtxResetPersistingL2Cache), so that a
    measurement inherits nothing from the one before it. A load with eviction_policy="evict_last"
    (Inductor's reductions load their input so) marks its lines persisting; they outlive the kernel
    and the tensor, and when the next provider's tensors reuse that memory, part of its bytes come
    from L2 at every call. H100, rms_norm T = H = 4096 right after torch.compile's rms_norm: 2886
    GB/s rotating, 3228 on one set; with this reset between them 2784 / 2811, as in a fresh process
    (results/h100/probe_one_set.md, parts D and G: Liger's 3.05 TB/s in `bench norm` came from
    that slot). A no-op where the driver library is missing."""
    if not _libcuda:
        try:
            _libcuda.append(ctypes.CDLL("libcuda.so.1"))
        except OSError:
            _libcuda.append(None)
    if _libcuda[0] is not None:
        torch.cuda.synchronize()
        rc = _libcuda[0].cuCtxResetPersistingL2Cache()
        if rc != 0:
            raise RuntimeError(f"cuCtxResetPersistingL2Cache failed with CUresult {rc}")


def graph_us(calls, reps: int = 50, min_calls: int = MIN_GRAPH_CALLS, warmup_ms: float = 0.0) -> float:
    """Median device µs per call: calls is a list of zero-argument callables, one per input set,
    cycled in the graph until it holds min_calls calls (the tuner lowers it for calls of
    milliseconds, where one call already dwarfs the replay's launch). warmup_ms: replay the graph
    for about this long before the timed replays. Persisting L2 lines left by whatever ran before
    are reset first (reset_persisting_l2); the calls' own, made while they run, stay."""
    reset_persisting_l2()
    calls = list(calls) * -(-min_calls // len(calls))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for c in calls:  # warm up: compile, autotune, allocate outside the capture
            c()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for c in calls:
            c()
    graph.replay()
    torch.cuda.synchronize()
    t_end = time.perf_counter() + warmup_ms / 1e3
    while time.perf_counter() < t_end:
        graph.replay()
        torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / len(calls))
    del graph
    return statistics.median(times)


def graph_us_rounds(variants: dict, rounds: int, reps: int = 30) -> dict:
    """{name: [graph_us of its calls, one a round]}: rounds interleaved over the variants (each round
    times every variant once), so a clock or neighbour drifting during the run is shared alike. The
    probes' comparison loop; the caller takes medians and spreads."""
    times: dict = {name: [] for name in variants}
    for _ in range(rounds):
        for name, calls in variants.items():
            times[name].append(graph_us(calls, reps=reps))
    return times

def host_us(call, n: int = 2000, rounds: int = 5) -> float:
    """Wall-clock µs per eager call: the best of `rounds` rounds of n calls back to back, each
    synchronised at both ends. The best round, because on a shared host the mean of one round moved
    by 2x between runs (other tenants, frequency changes) while the best was stable."""
    for _ in range(20):
        call()
    best = float("inf")
    for _ in range(rounds):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def copy_bandwidth_gbs(nbytes: int = 2**30) -> float:
    """Device-to-device copy of 1 GiB, bytes read plus bytes written: the ceiling for the tables.

    The better of a memcpy (copy_) and an SM copy kernel (torch.add(x, 0, out=y)): captured in a graph,
    the memcpy node ran at 2.4 TB/s on the H100 where SM kernels moved 2.9, so memcpy alone understates it.
    """
    src = torch.randn(nbytes // 2, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    us = min(graph_us([lambda: dst.copy_(src)], reps=20), graph_us([lambda: torch.add(src, 0, out=dst)], reps=20))
    return 2 * nbytes / us / 1e3


def interleaved_host_us(calls: dict, rounds: int = 10, n: int = 2000) -> dict:
    """Best host µs per call of each named call over `rounds` rounds that run every call once in
    turn (host_us with one round of n calls each). Interleaved, so that a busy or a quiet spell of a
    shared host meets every call alike: back to back, one host's torch.mul(out=) moved between 7.6
    and 9.5 µs within a minute (results/h100/host_h100_s29_*.txt)."""
    best = {name: float("inf") for name in calls}
    order = list(calls.items())
    rng = random.Random(0)
    for _ in range(rounds):
        # a fresh order each round, so that no call always follows the same one (one run had a call
        # 1.6 µs slower right after torch.mul than its twin, the same op on the same facts, after it)
        rng.shuffle(order)
        for name, call in order:
            best[name] = min(best[name], host_us(call, n, rounds=1))
    return best


# The provider name of run_cases' same-bytes copy row
COPY_ROW = "copy, same bytes (ceiling at this size)"


def rows_by_case(table) -> dict:
    """{(op, shape, dtype): {provider: Row}}, in the table's order: what the families' target
    summaries read."""
    cases: dict = {}
    for r in table.rows:
        cases.setdefault((r.op, r.shape, r.dtype), {})[r.provider] = r
    return cases


# Issue 2's host-time bar (issue 4 takes the same): an eager call at most HOST_BAR_US, or HOST_REF's
# time in the same run where that is larger
HOST_REF = "torch.mul(x, 2, out=y)"
HOST_BAR_US = 8.0


def host_table(host: dict, bar_us: float, what: str) -> str:
    """Markdown: interleaved_host_us's results (HOST_REF among them), every lmkernels call against
    max(bar_us, HOST_REF's time): the host-time target of issues 2 and 4."""
    ref = host[HOST_REF]
    bar = max(bar_us, ref)
    lines = [f"### Host µs of {what} (best of 10 interleaved rounds of 2000 calls; bar max({bar_us:g}, "
             f"{HOST_REF}) = {bar:.2f})", "", f"| call | host µs | / {HOST_REF} | within the bar |", "|---|---:|---:|---|"]
    for name, us in host.items():
        met = "" if name.startswith("torch") else ("met" if us <= bar else "MISSED")
        lines.append(f"| {name} | {us:.2f} | {us / ref:.2f} | {met} |")
    return "\n".join(lines)


def copy_notes(gbs: float, copy: Row | None, best_copy: Row | None) -> list:
    """What a target table puts beside a bandwidth: the case's same-bytes copy (COPY_ROW) and its
    best copy (best_copy_row) with our fraction of it, those the table has."""
    return (([f"same-bytes copy {copy.gbs:.0f}"] if copy else [])
            + ([f"best copy {best_copy.gbs:.0f} ({gbs / best_copy.gbs:.3f}x)"] if best_copy else []))


def bandwidth_verdict(gbs: float, bar: float, best_copy: Row | None) -> str:
    """A bandwidth target's verdict for a target table: met, or MISSED, saying so where even the
    case's best copy (best_copy_row) stayed under the bar, i.e. no kernel that must read and write
    these bytes reached it on this GPU in this run."""
    if gbs >= bar:
        return "met"
    if best_copy is not None and best_copy.gbs < bar:
        return f"MISSED; above every copy of these bytes here (best {best_copy.gbs:.0f})"
    return "MISSED"


def torch_mul_host_us() -> float:
    """Host µs of a plain torch op on the GPU (the issue's floor for eager host time)."""
    x = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    y = torch.empty_like(x)
    return host_us(lambda: torch.mul(x, 2, out=y))


@dataclass
class Row:
    op: str
    shape: str
    dtype: str
    provider: str
    us: float
    gbs: float
    frac_copy: float
    host_us: float | None
    note: str = ""
    tflops: float | None = None       # matmuls: 2 M N K / time
    weight_gbs: float | None = None   # decode matmuls: the weight's bytes / time (the bytes that matter)
    weight_frac: float | None = None  # weight_gbs over the run's copy bandwidth
    warm_us: float | None = None      # one input set replayed: its weight stays in L2 (ANCHORS.md's method)
    warm_gbs: float | None = None     # the bytes over warm_us


def _opt(v, fmt: str) -> str:
    return "" if v is None or v != v else format(v, fmt)


@dataclass
class Table:
    """Rows of one family. The TFLOP/s and weight-bandwidth columns appear only when some row has
    them (matmul families), so the other families' tables keep their columns."""
    title: str
    copy_gbs: float
    rows: list = field(default_factory=list)

    def _extras(self) -> tuple[bool, bool, bool]:
        return (any(r.tflops is not None for r in self.rows), any(r.weight_gbs is not None for r in self.rows),
                any(r.warm_us is not None for r in self.rows))

    def markdown(self) -> str:
        flops, weight, warm = self._extras()
        head = "| op | shape | dtype | provider | µs (graph median) | GB/s | of copy BW |"
        rule = "|---|---|---|---|---:|---:|---:|"
        if flops:
            head, rule = head + " TFLOP/s |", rule + "---:|"
        if weight:
            head, rule = head + " weight GB/s | weight of copy BW |", rule + "---:|---:|"
        if warm:
            head += " µs, one input set (L2-warm, ANCHORS' method) | GB/s, one input set |"
            rule += "---:|---:|"
        head, rule = head + " host µs/call | note |", rule + "---:|---|"
        lines = [f"### {self.title}", "", f"copy bandwidth, measured in this run: {self.copy_gbs:.0f} GB/s", "",
                 head + "\n" + rule]
        for r in self.rows:
            host = "" if r.host_us is None else f"{r.host_us:.1f}"
            line = (f"| {r.op} | {r.shape} | {r.dtype} | {r.provider} | {r.us:.2f} | {r.gbs:.0f} | "
                    f"{r.frac_copy:.3f} | ")
            if flops:
                line += f"{_opt(r.tflops, '.1f')} | "
            if weight:
                line += f"{_opt(r.weight_gbs, '.0f')} | {_opt(r.weight_frac, '.3f')} | "
            if warm:
                line += f"{_opt(r.warm_us, '.2f')} | {_opt(r.warm_gbs, '.0f')} | "
            lines.append(line + f"{host} | {r.note} |")
        return "\n".join(lines)

    def write_csv(self, path: str) -> None:
        flops, weight, warm = self._extras()
        extra_head = ((["tflops"] if flops else []) + (["weight_gbs", "weight_frac_copy"] if weight else [])
                      + (["warm_us", "warm_gbs"] if warm else []))
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["op", "shape", "dtype", "provider", "us", "gbs", "frac_copy", "host_us", "copy_gbs", "note"]
                       + extra_head)
            for r in self.rows:
                extra = (([_opt(r.tflops, ".2f")] if flops else [])
                         + ([_opt(r.weight_gbs, ".1f"), _opt(r.weight_frac, ".4f")] if weight else [])
                         + ([_opt(r.warm_us, ".3f"), _opt(r.warm_gbs, ".1f")] if warm else []))
                w.writerow([r.op, r.shape, r.dtype, r.provider, f"{r.us:.3f}", f"{r.gbs:.1f}", f"{r.frac_copy:.4f}",
                            "" if r.host_us is None else f"{r.host_us:.2f}", f"{self.copy_gbs:.1f}", r.note] + extra)


def copy_buffers(nbytes: int):
    """buffers(set_index) -> (src, dst): nbytes / 4 bf16 elements each, src random, so that a copy
    between them reads half the bytes and writes half (each set its own buffers)."""
    def buffers(i, n=max(1, nbytes // 4)):
        src = torch.randn(n, device="cuda", dtype=torch.bfloat16)
        return src, torch.empty_like(src)
    return buffers


def same_bytes_copy(nbytes: int):
    """A provider maker (set index -> call) for an SM copy moving nbytes: torch.add(src, 0, out=dst)
    over copy_buffers."""
    buffers = copy_buffers(nbytes)

    def make(i):
        src, dst = buffers(i)
        return lambda: torch.add(src, 0, out=dst)
    return make


# A GPU that has just run long calls at full power runs what comes next at lower clocks: scaled_mm
# M = 1 4096 x 4096 fp8 measured 10.83 µs right after the M = 4096 cases and 9.08 in a probe of the
# same call (session 9); with a pause between cases only, the first provider of a heavy case gained
# on the ones after it (fp8 1024 x 28672 x 4096: ours 183.9 µs, torch._scaled_mm 220.6, which ran
# 196.5 / 198.8 without pauses). So after any measurement with a call over HEAVY_US (a replay of
# 32 such calls, 50 times, is >= 80 ms at full load) every provider waits COOL_S first.
HEAVY_US = 50.0
COOL_S = 1.0


def best_copy_row(table: Table, op: str, shape: str, dtype: str, nbytes: int, k: int, torch_add: Row | None) -> Row:
    """BEST_COPY_ROW of a case: the fastest of its torch.add row (when given) and the Triton PDL
    copies of copies.PDL_COPIES, each timed as every provider is (k input sets, graph median); the
    note names the fastest and lists them all."""
    buffers = copy_buffers(nbytes)
    times = {"torch.add": torch_add.us} if torch_add is not None and torch_add.us == torch_add.us else {}
    last_us = torch_add.us if times else 0.0
    for name, make in copies.pdl_copy_makers(buffers).items():
        if last_us > HEAVY_US:  # the cool-down run_cases keeps between heavy measurements
            time.sleep(COOL_S)
        calls = [make(i) for i in range(k)]
        times[name] = last_us = graph_us(calls)
        calls = None
        torch.cuda.empty_cache()
    best = min(times, key=times.get)
    us = times[best]
    gbs = nbytes / us / 1e3
    note = f"fastest: {best}; " + ", ".join(f"{n} {t:.2f}" for n, t in times.items())
    return Row(op, shape, dtype, copies.BEST_COPY_ROW, us, gbs, gbs / table.copy_gbs, None, note)


def run_cases(table: Table, cases) -> None:
    """cases: (op, shape, dtype, bytes_per_call, {provider: make(set_index) -> callable}[, extra]).

    Each provider's maker builds one input set per index (fresh random data) and returns the call.
    Providers that raise are recorded with the error instead of a time. extra (optional dict):
    "flops" a call does (adds TFLOP/s), "weight_bytes" it reads (adds the weight's GB/s and its
    fraction of the copy bandwidth), "copy_row" False to leave out the same-bytes copy (a
    compute-bound case's ceiling is not a copy), "host_calls" per host-timing round (default 200;
    a call of milliseconds is device-bound there, and 5 x 200 of them cost seconds), "warm" True to
    also time the first input set alone, replayed (its bytes stay in L2 when they fit: how
    ANCHORS.md's peers were timed, results/h100/probe_scaled_mm_warm.md; the main column always
    rotates sets past the L2, as a real step reads a weight from HBM), "best_copy" True to add
    BEST_COPY_ROW after the case's rows (best_copy_row: the copy ceiling a bandwidth bar is
    checked against).
    """
    last_us = 0.0
    for op, shape, dtype, nbytes, providers, *rest in cases:
        extra = rest[0] if rest else {}
        k = n_input_sets(nbytes)
        copy_make = same_bytes_copy(nbytes)
        if extra.get("copy_row", True):
            providers = dict(providers, **{COPY_ROW: copy_make})
        flops, wbytes = extra.get("flops"), extra.get("weight_bytes")
        copy_row = None  # the torch.add row, which best_copy_row reuses
        for name, make in providers.items():
            if last_us > HEAVY_US:
                time.sleep(COOL_S)
            try:
                calls = [make(i) for i in range(k)]
                us = graph_us(calls)
                warm_us = graph_us(calls[:1]) if extra.get("warm") else None
                host = host_us(calls[0], n=extra.get("host_calls", 200))
                gbs = nbytes / us / 1e3
                row = Row(op, shape, dtype, name, us, gbs, gbs / table.copy_gbs, host, warm_us=warm_us,
                          warm_gbs=None if warm_us is None else nbytes / warm_us / 1e3)
            except Exception as e:  # a peer that cannot run this case is reported, not fatal
                us = float("nan")
                row = Row(op, shape, dtype, name, us, us, us, None, f"failed: {type(e).__name__}: {str(e)[:80]}")
            if flops is not None and make is not copy_make:
                row.tflops = flops / us / 1e6
            if wbytes is not None and make is not copy_make:
                row.weight_gbs = wbytes / us / 1e3
                row.weight_frac = row.weight_gbs / table.copy_gbs
            table.rows.append(row)
            if make is copy_make:
                copy_row = row
            last_us = us if us == us else 0.0
            calls = None
            torch.cuda.empty_cache()
        if extra.get("best_copy"):
            table.rows.append(best_copy_row(table, op, shape, dtype, nbytes, k, copy_row))
            last_us = table.rows[-1].us
