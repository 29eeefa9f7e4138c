"""AOT-tuned kernel configs: JSON tables looked up env folder -> packaged -> None (the caller's heuristic).

Layout. One file per (op, N, K, GPU, operand dtype), in a folder named after the op:

    <root>/scaled_mm/N=4096,K=14336,device_name=NVIDIA_H100_80GB_HBM3,dtype=int8.json

device_name is torch.cuda.get_device_name(i) with spaces replaced by underscores (the vLLM naming);
a CPU tensor (device index -1, the interpreter) looks for device_name=cpu. Roots, in order: the
folder in env LMKERNELS_CONFIG_DIR (same layout below it), then the package's lmkernels/configs/.
The first root holding the file wins, file by file: a private folder can override one shape and
leave the rest to the shipped tables. No file anywhere: lookup returns None and warns once per
(op, N, K, dtype, GPU), naming the file and the folders searched (not for the CPU: tables are a
GPU matter, and the CPU suite would otherwise warn once per shape it runs).

Format (vLLM's convention plus a _meta block): a JSON object whose keys are M values written as
decimal strings ("1", "16", "4096"), each mapping to one config dict of the op, and "_meta":

    {"_meta": {"schema": 1, "op": "scaled_mm", "N": 4096, "K": 14336, "dtype": "int8",
               "gpu": "NVIDIA H100 80GB HBM3", "torch": "...", "triton": "...", "date": "...",
               "complete": true, "measured": {"16": {"us": 21.3, "heuristic_us": 24.0, ...}}, ...},
     "1": {"BLOCK_SIZE_M": 16, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 256, ...}, "16": {...}, ...}

Bucket rule: a call with M rows takes the config of the smallest tuned M >= M; past the largest
tuned M, the largest's. (A tuned M is the largest problem its config was timed on: rounding up
keeps tiles and split-K chosen for at least as many rows; vLLM rounds to the nearest instead.)
With the tuner's default grid 1, 2, 4, ..., 4096: M = 3 takes "4", M = 100 takes "128", M = 9000
takes "4096".

Validation happens when a file is loaded (the first lookup that needs it): malformed JSON, a
top-level value that is not an object, a key that is not a positive decimal M, a missing or
ill-typed _meta (or one whose op/N/K/dtype disagree with the file name), or a config the op's
registered validator refuses (register_validator) raise ValueError naming the file and the
problem: a bad table fails at lookup, never later inside a kernel.

Caching: loaded tables by path, resolved lookups by their arguments; the op asks once per new
shape and the second identical lookup is one dict hit. LMKERNELS_CONFIG_DIR is read when a key is
first resolved; clear_cache() forgets everything (tests, or after writing new tables).
"""
from __future__ import annotations

import bisect
import functools
import json
import math
import os
import re
import warnings
from pathlib import Path

SCHEMA = 1
ENV_DIR = "LMKERNELS_CONFIG_DIR"
PACKAGED_DIR = Path(__file__).resolve().parent.parent / "configs"

# _meta keys every table must carry, with their JSON types (bool is not accepted as an int)
META_FIELDS = {"schema": int, "op": str, "N": int, "K": int, "dtype": str, "gpu": str, "torch": str,
               "triton": str, "date": str, "complete": bool, "measured": dict}
_M_KEY = re.compile(r"[1-9][0-9]*\Z")


class ConfigWarning(UserWarning):
    """No tuned table for a shape on this GPU: the op falls back to its heuristic config."""


class Table:
    """One loaded file: sorted tuned Ms, their configs (as the op's validator returned them), _meta."""

    __slots__ = ("path", "ms", "configs", "meta")

    def __init__(self, path: str, ms: list[int], configs: list[dict], meta: dict):
        self.path, self.ms, self.configs, self.meta = path, ms, configs, meta

    def index(self, M: int) -> int:
        """The bucket rule: the index of the smallest tuned M >= M, else of the largest tuned M."""
        return min(bisect.bisect_left(self.ms, M), len(self.ms) - 1)

    def pick(self, M: int) -> dict:
        return self.configs[self.index(M)]


_validators: dict = {}  # op -> fn(cfg) -> dict (normalised) or None; raises ValueError
_tables: dict = {}      # (op, path) -> Table
_resolved: dict = {}    # (op, N, K, dtype, M, device_index) -> dict | None
_missing: dict = {}     # (op, N, K, dtype, device_index) -> True: no file anywhere (warned once)


def register_validator(op: str, fn) -> None:
    """fn(cfg) raises ValueError for a config the op cannot run, and may return a normalised copy
    (defaults filled in), which lookups then return. Tables of `op` loaded before are dropped so
    that they are validated again."""
    _validators[op] = fn
    for key in [k for k in _tables if k[0] == op]:
        del _tables[key]
    for key in [k for k in _resolved if k[0] == op]:
        del _resolved[key]


def clear_cache() -> None:
    """Forget loaded tables, resolved lookups and the one-time warnings (validators stay)."""
    _tables.clear()
    _resolved.clear()
    _missing.clear()


def file_name(N: int, K: int, device_name: str, dtype: str) -> str:
    """The table's file name for an [*, K] x [K, N] problem on `device_name` with operands `dtype`."""
    return f"N={N},K={K},device_name={device_name.replace(' ', '_')},dtype={dtype}.json"


@functools.lru_cache(maxsize=None)
def device_name(device_index: int) -> str:
    """torch.cuda.get_device_name with spaces as underscores; "cpu" for index -1 (or no CUDA)."""
    import torch
    if device_index < 0 or not torch.cuda.is_available():
        return "cpu"
    return torch.cuda.get_device_name(device_index).replace(" ", "_")


def roots() -> list[Path]:
    """The folders searched, in order: $LMKERNELS_CONFIG_DIR (when set and not empty), the package's."""
    env = os.environ.get(ENV_DIR, "")
    return ([Path(env)] if env else []) + [PACKAGED_DIR]


def find(op: str, N: int, K: int, dtype: str, device_index: int) -> tuple[Path | None, list[Path]]:
    """(the file lookup would load, or None; every path looked at, in order)."""
    name = file_name(N, K, device_name(device_index), dtype)
    tried = [root / op / name for root in roots()]
    return next((p for p in tried if p.is_file()), None), tried


def lookup(op: str, N: int, K: int, dtype: str, M: int, device_index: int, warn: bool = True) -> dict | None:
    """The tuned config dict for an [M, K] x [K, N] problem of `op` ("scaled_mm", "ll_gemm") with
    operand dtype tag `dtype` ("int8", "fp8", "bf16", ...) on the GPU `device_index`, or None when no
    table covers (N, K) on this GPU (the caller then uses its heuristic; warn=False: without the
    one-time warning, for ops whose heuristic is the designed default for untuned shapes). The dict
    is shared by every caller: read it, do not change it. Raises ValueError when the table that
    would serve is malformed."""
    return _resolve(op, N, K, dtype, M, device_index, warn)[0]


def entry(op: str, N: int, K: int, dtype: str, M: int, device_index: int) -> tuple:
    """(config, measured record, tuned M) of the bucket lookup() serves for these arguments, from one
    cached resolve (the record is _meta["measured"] of that bucket: the tuner's timings of the
    config, e.g. {"us": ..., "heuristic_us": ..., "cublas_us": ...}, or None): the tuned M is >= M, or the largest, below M, past the table's last bucket;
    (None, None, None) without a table. Never warns."""
    return _resolve(op, N, K, dtype, M, device_index, False)


def _resolve(op, N, K, dtype, M, device_index, warn) -> tuple:
    key = (op, N, K, dtype, M, device_index)
    try:
        return _resolved[key]
    except KeyError:
        pass
    shape = (op, N, K, dtype, device_index)
    path, tried = (None, None) if shape in _missing else find(op, N, K, dtype, device_index)
    if path is None:
        if warn and device_index >= 0 and shape not in _missing:
            cli = op.replace("_", "-")
            warnings.warn(ConfigWarning(
                f"lmkernels: no tuned {op} table for N={N} K={K} dtype={dtype} on {device_name(device_index)}; "
                f"looked for {tried[0].name} in {', '.join(str(p.parent) for p in tried)} "
                f"(${ENV_DIR} {'is ' + repr(os.environ[ENV_DIR]) if os.environ.get(ENV_DIR) else 'is not set'}). "
                f"Using the heuristic config; `lmkernels tune {cli} --nk {N},{K} --dtype {dtype}` makes one."),
                stacklevel=3)
        _missing[shape] = True
        hit = (None, None, None)
    else:
        table = load(path, op, expect=(N, K, dtype))
        i = table.index(M)
        hit = (table.configs[i], table.meta["measured"].get(str(table.ms[i])), table.ms[i])
    _resolved[key] = hit
    return hit


def load(path, op: str, expect: tuple | None = None) -> Table:
    """Read and validate one table file (cached by path). expect: (N, K, dtype) the file's name
    promised, checked against _meta. Raises ValueError naming the file and the problem."""
    path = str(path)
    table = _tables.get((op, path))
    if table is None:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"config table {path}: not valid JSON: {e}") from None
        table = parse(data, op, path, expect)
        _tables[(op, path)] = table
    return table


def parse(data, op: str, where: str, expect: tuple | None = None) -> Table:
    """Validate a decoded table (see the module docstring) and build its Table. `where` names the
    source in error messages."""
    def bad(what: str) -> ValueError:
        return ValueError(f"config table {where}: {what}")

    if not isinstance(data, dict):
        raise bad(f"the top level must be a JSON object of M -> config plus _meta, got {type(data).__name__}")
    meta = data.get("_meta")
    if not isinstance(meta, dict):
        raise bad("no _meta object (schema, op, N, K, dtype, gpu, torch, triton, date, complete, measured)"
                  if meta is None else f"_meta must be an object, got {type(meta).__name__}")
    for name, typ in META_FIELDS.items():
        if name not in meta:
            raise bad(f"_meta has no {name!r}")
        v = meta[name]
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise bad(f"_meta[{name!r}] must be {typ.__name__}, got {type(v).__name__} {v!r}")
    if meta["schema"] != SCHEMA:
        raise bad(f"_meta schema {meta['schema']} is not the schema this lmkernels reads ({SCHEMA})")
    if meta["op"] != op:
        raise bad(f"_meta op {meta['op']!r} but the table was looked up for {op!r}")
    if expect is not None and (meta["N"], meta["K"], meta["dtype"]) != tuple(expect):
        raise bad(f"_meta says N={meta['N']} K={meta['K']} dtype={meta['dtype']} but the file name says "
                  f"N={expect[0]} K={expect[1]} dtype={expect[2]} (a renamed file?)")
    for m, rec in meta["measured"].items():
        if not (_M_KEY.match(m) and isinstance(rec, dict)):
            raise bad(f"_meta['measured'] must map M strings to objects, got {m!r}: {type(rec).__name__}")
    validate = _validators.get(op)
    entries = []
    for k, cfg in data.items():
        if k == "_meta":
            continue
        if not isinstance(k, str) or not _M_KEY.match(k):
            raise bad(f"key {k!r} is not an M bucket (a positive integer written in decimal, e.g. \"16\")")
        if not isinstance(cfg, dict) or not cfg:
            raise bad(f"M={k}: the config must be a non-empty object, got {type(cfg).__name__} {cfg!r}")
        for name, v in cfg.items():  # null: an optional key left to the op's default (scaled_mm's ACCESS)
            if not (v is None or isinstance(v, (int, str, bool)) or isinstance(v, float) and math.isfinite(v)):
                raise bad(f"M={k}: {name}={v!r} is not an int, bool, string, finite number or null")
        if validate is not None:
            try:
                checked = validate(dict(cfg))
            except (ValueError, TypeError) as e:
                raise bad(f"M={k}: {cfg} is refused by the {op} validator: {e}") from None
            cfg = checked if isinstance(checked, dict) else cfg
        entries.append((int(k), cfg))
    if not entries:
        raise bad("no M entries (a table needs at least one tuned M)")
    entries.sort(key=lambda e: e[0])
    return Table(where, [m for m, _ in entries], [c for _, c in entries], meta)
