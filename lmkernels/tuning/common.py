"""What any tuner needs besides its op: the loop over tables and Ms (resumable, within a time
budget), the timing passes that rank one M's candidates, atomic JSON files, a progress line, and
parsers for the command line's lists. Tuners: tuning/scaled_mm.py, tuning/ll_gemm.py."""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import importlib
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

from ..runtime import config_store

# device seconds of replays a candidate gets in the quick pass / the refine (3 to 20 / 10 to 100
# replays): ~25 candidates x 30 ms + 4 x 150 ms, ~2 s of timing a M besides compiles and checks
QUICK_S, FULL_S = 0.03, 0.15
REFINE = 3
# the refine's replays come in rounds that visit every finalist in turn, a finalist's time the median
# of its rounds: a GPU's clock drifts over a search (power and heat), and finalists timed one after
# the other took that drift as a difference. H100, session 20: the fp8 table at 4096 x 28672 x 4096
# M = 4096 took a config at 760 µs that a probe run timed at 682, torch._scaled_mm 724 in both
# (tune_scaled_mm_s20_fp8_8b.log, probe_ws_tma.md)
REFINE_ROUNDS = 5
REPLAY_US = 1000.0


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Budget:
    """Wall-clock budget of a run (None: unlimited). The tuner asks before each M whether it may
    start it: not once the budget is spent, nor when the M is predicted to overrun it, except that
    the first M of a run always starts (else a budget shorter than one M would never progress)."""

    def __init__(self, max_minutes: float | None, clock=time.monotonic):
        self.limit_s = None if max_minutes is None else 60.0 * max_minutes
        self.clock = clock
        self.t0 = clock()

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def left(self) -> float:
        return float("inf") if self.limit_s is None else self.limit_s - self.elapsed()

    def may_start(self, predicted_s: float, first: bool) -> bool:
        return first or self.left() > predicted_s


def dumps(obj, indent: str = "") -> str:
    """JSON with one line per flat object or list (a config, a measured record, the M grid) and
    nesting only above that: a table of 18 Ms reads as 18 config lines, not 200."""
    flat = not isinstance(obj, (dict, list)) or all(not isinstance(v, (dict, list))
                                                    for v in (obj.values() if isinstance(obj, dict) else obj))
    if flat:
        return json.dumps(obj, ensure_ascii=False)
    inner = indent + " "
    if isinstance(obj, list):
        return "[\n" + ",\n".join(inner + dumps(v, inner) for v in obj) + "\n" + indent + "]"
    return ("{\n" + ",\n".join(f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {dumps(v, inner)}"
                                for k, v in obj.items()) + "\n" + indent + "}")


def write_json_atomic(path: str, obj) -> None:
    """Write obj as JSON (dumps) so that a reader (or a run killed at any instant) sees the old file
    or the new one, never half of one: a temporary file in the same folder, fsync, os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dumps(obj) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Progress:
    """One status line on stderr. On a terminal it is redrawn in place; elsewhere (a log file, the
    device runner's captured tail) it is printed as a line at most every `every` seconds, so a
    10-minute run leaves tens of lines rather than thousands of redraws."""

    def __init__(self, stream=None, every: float = 30.0, clock=time.monotonic):
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every, self.clock = every, clock
        self.last = -float("inf")
        self.shown = ""

    def update(self, text: str) -> None:
        if self.tty:
            pad = max(0, len(self.shown) - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            self.shown = text
        elif self.clock() - self.last >= self.every:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.last = self.clock()

    def clear(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\r" + " " * len(self.shown) + "\r")
            self.stream.flush()
            self.shown = ""


def parse_pair(text: str) -> tuple[int, int]:
    """argparse type for N,K: two positive integers."""
    parts = text.split(",")
    try:
        n, k = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,K (two positive integers, e.g. 4096,14336), got {text!r}")
    if n <= 0 or k <= 0:
        raise argparse.ArgumentTypeError(f"N and K must be positive, got {text!r}")
    return n, k


def parse_int_list(text: str) -> list[int]:
    """argparse type for M,M,...: positive integers, sorted, duplicates dropped."""
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers (e.g. 1,16,128), got {text!r}")
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"M values must be positive integers, got {text!r}")
    return sorted(set(values))


def parse_count(text: str) -> int:
    """argparse type for a count that may be 0."""
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return v


def parse_minutes(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}")
    if not v > 0:
        raise argparse.ArgumentTypeError(f"the budget must be positive, got {text!r}")
    return v


class CompilePool:
    """Worker processes (spawned) that compile a tuner's candidates ahead of timing: each runs
    call_in_child(fn_path, *args) once per candidate, so Triton's on-disk cache holds every binary
    and the tuner's own first call is a disk-cache load. Processes, not threads: two threads in one
    process would race on the launchers' caches, and a candidate that faults takes down a worker,
    not the tuner. workers = 0: no pool (the tuner compiles as it warms)."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None

    def run(self, fn_path: str, arg_tuples: list) -> dict | None:
        """{index: why} for the calls that raised; None when there is no pool or it died (the caller
        then compiles in its own process)."""
        if self.workers <= 0 or len(arg_tuples) < 2:
            return None
        try:
            if self._pool is None:
                self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            futures = [self._pool.submit(call_in_child, fn_path, *args) for args in arg_tuples]
            return {i: why for i, why in enumerate(f.result() for f in futures) if why is not None}
        except Exception as e:  # a dead worker: the rest compile in the tuner's process
            print(f"\ncompile workers failed ({type(e).__name__}: {e}); compiling in this process", file=sys.stderr)
            self.close()
            return None

    def warm(self, fn_path: str, arg_tuples: list, run_here) -> dict:
        """Compile every candidate before timing: in the workers (run), then run_here(i) once for each
        candidate i that compiled there (a disk-cache load; all of them without workers). {index:
        why} for those that cannot run (out of shared memory, refused): skipped, not fatal."""
        failed = self.run(fn_path, arg_tuples) or {}
        for i in range(len(arg_tuples)):
            if i not in failed:
                try:
                    run_here(i)
                except Exception as e:
                    failed[i] = f"{type(e).__name__}: {str(e)[:200]}"
        return failed

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def call_in_child(fn_path: str, *args) -> str | None:
    """In a compile worker: fn(*args) for fn_path "module:function"; None, or why it raised."""
    mod, name = fn_path.split(":")
    try:
        getattr(importlib.import_module(mod), name)(*args)
        return None
    except Exception as e:
        return f"{type(e).__name__}: {str(e)[:200]}"


def git_commit() -> str | None:
    """The checkout's short commit (+dirty), recorded in a table's _meta; None outside a git tree."""
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def read_existing(path: str, op: str, N: int, K: int, dtype: str) -> tuple[dict, dict, list]:
    """({M: config}, {M str: measured record}, m_grid) of a table file already there, or empties."""
    if not os.path.exists(path):
        return {}, {}, []
    try:
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except ValueError as e:
                raise ValueError(f"config table {path}: not valid JSON: {e}") from None
        table = config_store.parse(data, op, path, expect=(N, K, dtype))
    except ValueError as e:
        raise ValueError(f"{e}\n(the existing file cannot be resumed: fix or delete it, or pass --force)") from None
    meta = table.meta
    return dict(zip(table.ms, (data[str(m)] for m in table.ms))), dict(meta["measured"]), list(meta.get("m_grid", []))


def rank(n_cands: int, time_one, show, calls_per_replay: int, n_sets: int, failed: dict, what: str) -> tuple:
    """Time candidates 0..n_cands-1 (0 is the heuristic) and rank them.

    time_one(i, n_calls, reps) -> µs a call over replays of n_calls calls (whole rotations of the
    n_sets input sets), or None when candidate i fails (it records why in `failed`). A probe of the
    heuristic (one rotation, 3 replays) sizes the replays: enough calls that a replay is >= REPLAY_US
    (its launch, a few µs, stays < 0.5 %), at most calls_per_replay. A quick pass gives every
    candidate ~QUICK_S of replays, then the REFINE fastest and the heuristic get ~FULL_S, in
    REFINE_ROUNDS rounds over all of them (each one's time: the median of its rounds).
    Returns (indices fastest first, {i: µs} best measurement of each, record of the replay sizes)."""
    probe = time_one(0, n_sets, 3)
    if probe is None:
        raise RuntimeError(f"{what}: timing the heuristic config failed: {failed[0]}")
    per = min(calls_per_replay, max(1, math.ceil(REPLAY_US / max(probe, 1e-3))))
    n_calls = n_sets * math.ceil(per / n_sets)
    replay_s = probe * n_calls * 1e-6
    quick_reps = min(20, max(3, round(QUICK_S / replay_s)))
    full_reps = min(100, max(10, round(FULL_S / replay_s)))
    alive = [i for i in range(n_cands) if i not in failed]
    quick = {}
    for n, i in enumerate(alive, 1):
        show(f"time {n}/{len(alive)}")
        quick[i] = time_one(i, n_calls, quick_reps)
    if quick[0] is None:
        raise RuntimeError(f"{what}: timing the heuristic config failed: {failed[0]}")
    order = sorted((i for i in quick if quick[i] is not None), key=quick.get)
    again = order[:REFINE] + ([0] if 0 not in order[:REFINE] else [])
    round_reps = max(2, full_reps // REFINE_ROUNDS)
    full = interleaved_medians(again, lambda i: time_one(i, n_calls, round_reps), REFINE_ROUNDS, show, "refine round")
    ranked = sorted((i for i in full if full[i] is not None), key=full.get) + [i for i in order if i not in full]
    best = {i: full.get(i) or quick[i] for i in ranked}
    return ranked, best, {"calls_per_replay": n_calls, "quick_reps": quick_reps,
                          "full_reps": round_reps * REFINE_ROUNDS, "refine_rounds": REFINE_ROUNDS}


def interleaved_medians(ids: list, time_one, n_rounds: int, show, label: str, warmup: int = 0) -> dict:
    """{id: the median of its times over n_rounds rounds, None where a timing failed}: each round
    times every id in turn (time_one(id) -> µs or None), so a clock drifting over the rounds is
    shared alike; the first `warmup` rounds are timed and thrown away."""
    rounds: dict = {i: [] for i in ids}
    for r in range(warmup + n_rounds):
        show(f"{label} {r + 1}/{warmup + n_rounds}")
        for i in ids:
            if rounds[i] is not None:
                t = time_one(i)
                rounds[i] = None if t is None else rounds[i] + ([t] if r >= warmup else [])
    return {i: None if ts is None else sorted(ts)[len(ts) // 2] for i, ts in rounds.items()}


def first_passing(ranked: list, check, describe, what: str, show) -> tuple[int, list]:
    """(the first candidate index in `ranked` whose output check(i) accepts (None), the rejections
    before it as "config: why"). RuntimeError naming `what` when none passes."""
    rejected = []
    for i in ranked:
        show(f"check {describe(i)}")
        problem = check(i)
        if problem is None:
            return i, rejected
        rejected.append(f"{describe(i)}: {problem}")
    raise RuntimeError(f"{what}: no candidate matches the reference; " + "; ".join(rejected[:3]))


def record(times: dict, i: int, n_cands: int, failed: dict, rejected: list, replays: dict, **extra) -> dict:
    """The _meta['measured'] record of a tuned M: the winner's and the heuristic's (index 0) µs, the
    op's extra fields (e.g. cublas_us), the search's counts and replay sizes, up to 3 rejections."""
    rec = {"us": round(times[i], 3), "heuristic_us": round(times[0], 3), "speedup": round(times[0] / times[i], 3),
           **extra, "candidates": n_cands, "failed": len(failed), "rejected": len(rejected), **replays}
    if rejected:
        rec["rejected_why"] = rejected[:3]
    return rec


def table_meta(op: str, N: int, K: int, dtype: str, gpu: str, run_meta: dict, grid: list, entries: dict,
               measured: dict, **fields) -> dict:
    """A table's _meta block (runtime/config_store.py's META_FIELDS, plus the run's facts in
    run_meta, the M grid and the op's own descriptive fields), dated now."""
    import datetime

    import torch
    import triton
    return {"schema": config_store.SCHEMA, "op": op, "N": N, "K": K, "dtype": dtype, "gpu": gpu,
            "torch": torch.__version__, "triton": triton.__version__, **run_meta,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "complete": all(m in entries for m in grid), "m_grid": grid, **fields,
            "measured": {str(m): measured[str(m)] for m in sorted(entries) if str(m) in measured}}


def tune_tables(jobs, ms, out_dir: str, *, op: str, gpu: str, tune_m, input_sets, meta, describe,
                budget: Budget | None = None, force: bool = False, progress: Progress | None = None,
                log=functools.partial(print, flush=True), close=lambda: None, redo=None) -> dict:
    """Tune jobs [(N, K, dtype)] at every M in ms, one table file per job under out_dir/op/, rewritten
    (atomically) after every M: an interruption loses at most the M in flight, and a rerun skips the
    Ms already in the file (unless force, which re-tunes the Ms in ms, keeps the file's other Ms,
    and replaces a file it cannot read).

    The op's part: input_sets(weights, M, N, K, dtype) -> the sets one M rotates through (weights: a
    list kept across a shape's Ms, to reuse); tune_m(sets, M, N, K, dtype, show) -> (winner config,
    _meta['measured'] record with "us" and "heuristic_us"); meta(N, K, dtype, grid, entries, measured)
    -> the _meta block; describe(cfg) -> a short name; close() when done. redo(M, config, record) ->
    whether an M the file has is done again (default: force's answer for every M).
    Returns {"files": [paths written], "left": [(N, K, dtype, [Ms not tuned])], "stopped": bool}."""
    budget = budget or Budget(None)
    progress = progress or Progress()
    ms = sorted(set(ms))
    plan = []
    for N, K, dtype in jobs:
        path = os.path.join(out_dir, op, config_store.file_name(N, K, gpu, dtype))
        try:
            entries, measured, grid = read_existing(path, op, N, K, dtype)
        except ValueError:
            if not force:
                raise
            entries, measured, grid = {}, {}, []  # force replaces a file it cannot read
        # force re-tunes the Ms asked for and keeps the file's others (a partial re-tune must not
        # empty the rest of a shipped table)
        todo = [m for m in ms if m not in entries or (force if redo is None else redo(m, entries[m], measured[str(m)]))]
        plan.append((N, K, dtype, path, entries, measured, sorted(set(grid) | set(ms)), todo))
    files, stopped, last = [], False, None
    done: set = set()  # (N, K, dtype, M) tuned by this run
    try:
        for n_job, (N, K, dtype, path, entries, measured, grid, todo) in enumerate(plan, 1):
            if not todo:
                log(f"N={N} K={K} {dtype}: all {len(ms)} M already in {path} (--force redoes them)")
                continue
            weights = []
            for n_m, M in enumerate(todo, 1):
                # predicted time of this M: the last M's, scaled by the work up to 2x
                predicted = 0.0 if last is None else last[0] * min(2.0, max(1.0, M * N * K / last[1]))
                if stopped or not budget.may_start(predicted, first=last is None):
                    stopped = True
                    break
                t0 = budget.elapsed()

                def show(what, n_job=n_job, n_m=n_m, M=M, N=N, K=K, dtype=dtype, todo=todo):
                    progress.update(f"[{n_job}/{len(plan)}] N={N} K={K} {dtype} | M {n_m}/{len(todo)} = {M} | "
                                    f"{what} | {fmt_seconds(budget.elapsed())}"
                                    + ("" if budget.limit_s is None else f" of {fmt_seconds(budget.limit_s)}"))
                sets = input_sets(weights, M, N, K, dtype)
                cfg, rec = tune_m(sets, M, N, K, dtype, show)
                del sets
                rec["seconds"] = round(budget.elapsed() - t0, 1)
                entries[M], measured[str(M)] = cfg, rec
                done.add((N, K, dtype, M))
                write_json_atomic(path, {"_meta": meta(N, K, dtype, grid, entries, measured),
                                         **{str(m): entries[m] for m in sorted(entries)}})
                if path not in files:
                    files.append(path)
                progress.clear()
                extra = "".join(f", {k.removesuffix('_us')} {rec[k]:.2f}" for k in rec
                                if k.endswith("_us") and k != "heuristic_us" and rec[k] is not None)
                log(f"N={N} K={K} {dtype} M={M}: {describe(cfg)}  {rec['us']:.2f} µs (heuristic "
                    f"{rec['heuristic_us']:.2f}, x{rec['speedup']:.2f}{extra}); {rec['candidates']} candidates, "
                    f"{rec['failed']} failed, {rec['rejected']} rejected; {rec['seconds']:.0f} s "
                    f"[{fmt_seconds(budget.elapsed())}]")
                last = (budget.elapsed() - t0, M * N * K)
            del weights
    finally:
        close()
        progress.clear()
    left = [(N, K, dtype, [m for m in todo if (N, K, dtype, m) not in done]) for N, K, dtype, *_, todo in plan]
    return {"files": files, "left": [x for x in left if x[3]], "stopped": stopped}


def report(result: dict, budget: Budget, max_minutes: float | None) -> int:
    """The command line's ending: the files written, what is left; 0 when every table is complete,
    3 when the budget stopped the run with Ms left (rerun the same command to continue)."""
    for path in result["files"]:
        print(f"wrote {path}")
    if result["left"]:
        why = f"the {max_minutes:g}-minute budget is spent" if result["stopped"] else "not tuned"
        print(f"\nstopped after {fmt_seconds(budget.elapsed())}: {why}. Left:")
        for N, K, dtype, todo in result["left"]:
            print(f"  N={N} K={K} {dtype}: M {','.join(map(str, todo))}")
        print("Rerun the same command to continue: Ms already in the files are skipped.")
        return 3
    print(f"\ndone in {fmt_seconds(budget.elapsed())}: every table is complete")
    return 0
