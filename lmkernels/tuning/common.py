"""What any tuner needs besides its op: a time budget, atomic JSON files, a progress line, and
parsers for the command line's lists. No third-party dependencies."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


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
