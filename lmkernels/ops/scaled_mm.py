"""W8A8 scaled matmul (vLLM's cutlass_scaled_mm): int8 or fp8 e4m3 operands, per-tensor / per-token /
per-channel fp32 scales, optional bias, one rounding to bf16 / fp16 / fp32.

Shape of the module (for library.py):
  scaled_mm          public: refuses non-tensors, routes to torch.ops.lmkernels.scaled_mm while
                     torch.compile traces (config travels as JSON there), else scaled_mm_impl.
  scaled_mm_impl     what the registered op calls. The common call (config None, pointer or default
                     access, every operand on one GPU) looks its plan up by the operands' shapes,
                     strides and dtypes and launches through Launcher.fast: a plan exists only for
                     facts the careful path has checked once. Anything else takes _careful, which
                     checks everything, explains what is wrong, resolves the access mode and config,
                     and caches the plan.
  check_scaled_mm    shape/dtype/device/layout checks, no data: the fake implementation runs it.
  check_config       validates and normalises a config dict (also registered with config_store).
  heuristic_config   the config when no tuned table covers a shape.

Kernels: kernels/scaled_mm.py (its docstring has the layouts and the epilogue's order), and on sm90
kernels/scaled_mm_wgmma.py where a config says WGMMA (Gluon: asynchronous int8 wgmma, which Triton
3.6's own pipeliner never emits).
"""
from __future__ import annotations

import functools
import json

import torch
import triton

from ..kernels.scaled_mm import _scaled_mm_kernel, _split_k_reduce_kernel
from ..runtime import access as _access
from ..runtime import config_store
from ..runtime import scratch as _scratch
from ..runtime.device import fp8_mma_problem, is_interpreter, num_sms
from ..runtime.launch import Launcher
from ._common import (check_runnable, check_same_device, check_tensor, config_int, cpu_interpreted, resolve_pdl,
                      tile_descriptor, use_dispatcher)

# a, b, c (or workspace), one-launch workspace, counters, scale_a, scale_b, bias | M | N, K, stride_a,
# stride_b, stride_cm | stride_cs | stride_sa, stride_sb, k_chunk
_launch = Launcher(_scaled_mm_kernel, "tttttttt" "n" "iiiii" "n" "iii")
_launch_desc = Launcher(_scaled_mm_kernel, "ddtttttt" "n" "iiiii" "n" "iii")  # access="descriptor"
# workspace, c, scale_a, scale_b, bias | M | N | stride_ws | stride_cm, stride_sa, stride_sb
_launch_reduce = Launcher(_split_k_reduce_kernel, "ttttt" "n" "i" "n" "iii")
try:  # Gluon's Hopper API as Triton 3.6 has it; an older Triton runs every config on _scaled_mm_kernel
    from triton.experimental.gluon import language as _gl
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor as _GluonDescriptor

    from ..kernels.scaled_mm_wgmma import _scaled_mm_wgmma_kernel
    from ..kernels.scaled_mm_ws import _scaled_mm_ws_kernel
    # a, b, b's second box (descriptors), c, scale_a, scale_b, bias | M | N, K, stride_cm, stride_sa, stride_sb
    _launch_wgmma = Launcher(_scaled_mm_wgmma_kernel, "dddtttt" "n" "iiiii")
    # a, b, c (descriptors; c's a stand-in without TMA_STORE), c, scale_a, scale_b, bias | M | N, K, ...
    _launch_ws = Launcher(_scaled_mm_ws_kernel, "dddtttt" "n" "iiiii")
    _GL_OUT = {torch.bfloat16: _gl.bfloat16, torch.float16: _gl.float16, torch.float32: _gl.float32}
    _GLUON_PROBLEM = None
except (ImportError, AttributeError, TypeError) as _e:  # pragma: no cover - other Triton versions
    _launch_wgmma = _launch_ws = None
    _GL_OUT = {}
    _GLUON_PROBLEM = f"this Triton ({triton.__version__}) lacks the Gluon Hopper API the kernel uses ({_e})"

INT8, FP8 = torch.int8, torch.float8_e4m3fn
_HIP = torch.version.hip is not None
OUT_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
# int32 accumulation is exact while |sum| <= 2^31 - 1; every product is at most (-128)^2 = 2^14
MAX_INT8_K = (2**31 - 1) // 2**14
_Tensor, _Dtype = torch.Tensor, torch.dtype

REQUIRED_KEYS = ("BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K", "GROUP_SIZE_M", "num_warps", "num_stages")
# FP8_FAST_ACCUM defaults to True: vLLM's CUTLASS fp8 kernels on sm90 all use the FP8FastAccum schedules
# (scaled_mm_sm90_fp8_dispatch.cuh), so this is the accuracy its callers already have; the precise
# variant costs 1.2-1.4x on an H100 (benchmarks/results/h100/probe_scaled_mm_big.md)
# ONE_LAUNCH: split-K finishes in the main kernel (kernels/scaled_mm.py), not in a second launch.
# Off by default: on the H100 it ran 0.84-1.33x the two-launch time over the 44 split entries of the
# first tables (results/h100/probe_scaled_mm_one_launch.md), so the tuner times both; HIP always
# takes two (its barrier fences LDS only: kernels/small_gemm.py)
# SPLIT_TAIL: split only the tiles past the last whole wave of one tile an SM (kernels/scaled_mm.py
# _item), finished in the launch. H100 (results/h100/probe_scaled_mm_tail.md, the session-13
# tables): 4-13 % faster where tiles run one an SM (70B 10240 x 8192: 160 tiles of 128 x 128);
# 6 % slower for 64 x 64 tiles, which already run two an SM. Needs ONE_LAUNCH; where that cannot
# be (HIP) the config runs as plain two-launch split-K
# WGMMA: run the tile on kernels/scaled_mm_wgmma.py (sm90 only, TMA operands, K-contiguous a and b,
# one tile a program). H100, int8 at M >= 1024 on the Llama-3-8B shapes (results/h100/
# probe_wgmma.md): 1.0-1.13x faster than the Triton kernel at its tuned tables, bit-identical; fp8
# mostly slower than Triton's own asynchronous fp8 pipeline, so the tuner decides per entry. A
# tuned or heuristic WGMMA config a call cannot take (another GPU, a column-major operand,
# misaligned bases, access="pointer") runs the same tile on _scaled_mm_kernel (a tile two accumulators
# wide, BLOCK_SIZE_N = 192 say, its wider power-of-two part: wgmma_n_split)
# WGMMA with PERSISTENT: kernels/scaled_mm_ws.py, one program an SM walking its tiles, a producer
# warp loading the next tile's operands while the consumer writes the last one out; PINGPONG: two
# 4-warp consumers taking the tiles in turn, one's write-out under the other's MMAs. H100, int8 at
# M >= 1024 (results/h100/probe_ws.md): 1.07-1.22x faster than the session-18 tables on 7 of the
# 8 Llama-3-8B rows (1024 x 6144 x 4096 44.9 -> 36.8 µs). TMA_STORE: that kernel's consumers write
# each tile to shared memory and leave it to one TMA store, not waiting for it (kernels/scaled_mm_ws.py)
# SWAP_AB: _scaled_mm_kernel computes the transposed tile (acc^T = b^T a^T), so that the weight tile is
# the MMA's M side: on sm90 a 16-row decode tile then runs on wgmma (m64n16k32, native fp8) where Triton
# otherwise takes mma.sync, which on sm90 has no fp8 form (e4m3 widened to f16, twice int8's MMAs)
OPTIONAL_KEYS = {"SPLIT_K": 1, "ACCESS": None, "PERSISTENT": False, "FP8_FAST_ACCUM": True, "ONE_LAUNCH": False,
                 "SPLIT_TAIL": False, "WGMMA": False, "PINGPONG": False, "TMA_STORE": False, "SWAP_AB": False}
# Block sizes: powers of two; 16 is the smallest MMA tile edge (mma.sync m16), 256 the largest TMA
# box edge; BLOCK_SIZE_K >= 32: one 8-bit MMA step (m16n8k32 / wgmma k32) and a 32-byte TMA row
BLOCK_RANGE = {"BLOCK_SIZE_M": (16, 256), "BLOCK_SIZE_N": (16, 256), "BLOCK_SIZE_K": (32, 256)}
MAX_SPLIT_K = 64
CONFIG_ACCESS = ("pointer", "block_ptr", "descriptor")

_plans: dict = {}
MAX_PLANS = 4096


# ---------------------------------------------------------------- configs

def check_config(cfg) -> dict:
    """A validated copy of a scaled_mm config dict with the optional keys filled in. Keys:
    BLOCK_SIZE_M, BLOCK_SIZE_N (powers of two, 16-256; with WGMMA BLOCK_SIZE_N may be the sum of two:
    wgmma_n_split), BLOCK_SIZE_K (power of two, 32-256),
    GROUP_SIZE_M (1-64), num_warps (1, 2, 4, 8, 16), num_stages (1-8) required; SPLIT_K (1-64,
    default 1), ACCESS ("pointer", "block_ptr", "descriptor"; default None: the access argument or
    the default), PERSISTENT (bool, default False), FP8_FAST_ACCUM (bool, default True: see
    scaled_mm), ONE_LAUNCH (bool, default False: split-K's sum and epilogue run in a second launch;
    True: in the main kernel; HIP always takes two), SPLIT_TAIL (bool, default False; True: SPLIT_K
    applies only to the tiles past the last whole wave, and needs SPLIT_K > 1 and ONE_LAUNCH), WGMMA
    (bool, default False; True: the sm90 Gluon kernel, which needs SPLIT_K 1, ACCESS absent or
    "descriptor", FP8_FAST_ACCUM True, num_warps 4 or 8 and BLOCK_SIZE_M >= 64 and >= 16 x
    num_warps: each warp of a warpgroup owns 16 rows of a 64-row wgmma; with PERSISTENT the
    warp-specialised one, whose BLOCK_SIZE_N is a power of two), PINGPONG (bool, default False;
    True: two 4-warp consumers, needs WGMMA, PERSISTENT and num_warps 4), TMA_STORE (bool, default
    False; True: the persistent kernel's tiles leave through shared memory by TMA stores, needs WGMMA
    and PERSISTENT; a call whose output rows are not a multiple of 16 bytes, or whose output tiles do
    not fit shared memory beside the stages, cannot take it: see _tma_store_problem), SWAP_AB (bool,
    default False; True: the Triton kernel computes the transposed tile, the weight tile as the MMA's
    M side; not with WGMMA).
    Raises ValueError naming the key and the value."""
    if not isinstance(cfg, dict):
        raise ValueError(f"config must be a dict, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS), key=str)
    if unknown:
        raise ValueError(f"config has unknown key(s) {unknown}; expected {list(REQUIRED_KEYS)} and optionally "
                         f"{list(OPTIONAL_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"config lacks {missing} (required: {list(REQUIRED_KEYS)})")
    out = dict(OPTIONAL_KEYS)
    out.update(cfg)
    for key, (lo, hi) in BLOCK_RANGE.items():
        config_int(out, key, lo, hi, pow2=key != "BLOCK_SIZE_N" or out.get("WGMMA") is not True)
    config_int(out, "GROUP_SIZE_M", 1, 64)
    config_int(out, "num_warps", 1, 16, pow2=True)
    config_int(out, "num_stages", 1, 8)
    config_int(out, "SPLIT_K", 1, MAX_SPLIT_K)
    if out["ACCESS"] is not None and out["ACCESS"] not in CONFIG_ACCESS:
        raise ValueError(f"config['ACCESS']={out['ACCESS']!r} must be one of {list(CONFIG_ACCESS)} or absent")
    for key in ("PERSISTENT", "FP8_FAST_ACCUM", "ONE_LAUNCH", "SPLIT_TAIL", "WGMMA", "PINGPONG", "TMA_STORE",
                "SWAP_AB"):
        if type(out[key]) is not bool:
            raise ValueError(f"config[{key!r}]={out[key]!r} must be a bool")
    if out["SPLIT_TAIL"] and (out["SPLIT_K"] < 2 or not out["ONE_LAUNCH"]):
        raise ValueError(f"config['SPLIT_TAIL']=True needs SPLIT_K > 1 and ONE_LAUNCH True, got "
                         f"SPLIT_K={out['SPLIT_K']} and ONE_LAUNCH={out['ONE_LAUNCH']}")
    if out["WGMMA"]:
        bm, warps = out["BLOCK_SIZE_M"], out["num_warps"]
        if out["SPLIT_K"] != 1 or out["ACCESS"] not in (None, "descriptor") or \
                not out["FP8_FAST_ACCUM"] or warps not in (4, 8) or bm < max(64, 16 * warps):
            raise ValueError(f"config['WGMMA']=True needs SPLIT_K 1, ACCESS None or 'descriptor', "
                             f"FP8_FAST_ACCUM True, num_warps 4 or 8 and BLOCK_SIZE_M >= max(64, 16 * num_warps); "
                             f"got SPLIT_K={out['SPLIT_K']}, ACCESS={out['ACCESS']!r}, "
                             f"FP8_FAST_ACCUM={out['FP8_FAST_ACCUM']}, num_warps={warps}, BLOCK_SIZE_M={bm}")
        split = wgmma_n_split(out["BLOCK_SIZE_N"])
        if split is None or (out["PERSISTENT"] and split[1]):
            raise ValueError(f"config['BLOCK_SIZE_N']={out['BLOCK_SIZE_N']} must be a power of two or, with WGMMA "
                             f"and PERSISTENT False, the sum of two (each >= 16), in [16, 256]")
    if out["PINGPONG"] and not (out["WGMMA"] and out["PERSISTENT"] and out["num_warps"] == 4):
        raise ValueError(f"config['PINGPONG']=True needs WGMMA True, PERSISTENT True and num_warps 4; got "
                         f"WGMMA={out['WGMMA']}, PERSISTENT={out['PERSISTENT']}, num_warps={out['num_warps']}")
    if out["SWAP_AB"] and out["WGMMA"]:
        raise ValueError("config['SWAP_AB']=True runs on the Triton kernel and cannot be combined with "
                         "config['WGMMA']=True")
    if out["TMA_STORE"] and not (out["WGMMA"] and out["PERSISTENT"]):
        raise ValueError(f"config['TMA_STORE']=True needs WGMMA True and PERSISTENT True; got WGMMA={out['WGMMA']}, "
                         f"PERSISTENT={out['PERSISTENT']}")
    return out


def wgmma_n_split(bn: int) -> tuple[int, int] | None:
    """A WGMMA tile's width as (BLOCK_N, BLOCK_N2) of kernels/scaled_mm_wgmma.py: (bn, 0) for a power
    of two, else the largest power of two below it and the rest, which must be one too (>= 16: a
    16-byte TMA row of bf16 stores, an int8 wgmma's smallest useful N); None where bn is neither.
    H100: 192 = 128 + 64 puts 1024 x 6144 in 256 tiles (1.94 waves of one an SM) instead of 384
    of 128 x 128 (1.45 waves of two); 96 = 64 + 32 puts M = 128 x 6144 in 128 tiles (one wave)."""
    if bn & (bn - 1) == 0:
        return bn, 0
    hi = 1 << (bn.bit_length() - 1)
    lo = bn - hi
    return (hi, lo) if lo >= 16 and lo & (lo - 1) == 0 else None


if hasattr(config_store, "register_validator"):
    config_store.register_validator("scaled_mm", check_config)


@functools.lru_cache(maxsize=None)
def _gpu(device_index: int) -> tuple[str, int, int]:
    """(vendor "cuda" / "hip" / "cpu", compute capability major*10+minor (0 off NVIDIA), the
    shared memory a program may use in bytes)."""
    if is_interpreter() or device_index < 0 or not torch.cuda.is_available():
        return "cpu", 0, 1 << 30
    p = torch.cuda.get_device_properties(device_index)
    if torch.version.hip:
        return "hip", 0, 64 * 1024  # MI300 LDS
    smem = getattr(p, "shared_memory_per_block_optin", 0) or 48 * 1024
    return "cuda", p.major * 10 + p.minor, smem


def tail_split(tiles: int, sms: int, k_tiles: int, most: int, min_k_tiles: int) -> int:
    """SPLIT_K for SPLIT_TAIL over `tiles` tiles on `sms` SMs, or 1 where it cannot pay: no whole
    wave, or more than half a wave over (the rem overrun tiles x SPLIT_K parts must fit one wave
    beside the whole tiles: sms // rem parts, at most `most`, each >= min_k_tiles K tiles). The
    heuristic and the tuner's twins (tuning/scaled_mm.py) both ask here."""
    rem = tiles % sms
    if tiles < sms or rem == 0 or 2 * rem > sms:
        return 1
    return max(1, min(sms // rem, most, k_tiles // min_k_tiles))


def _fit_and_split(M, N, K, bm, bn, bk, stages, smem, sms, vendor) -> tuple[int, int, int, bool]:
    """heuristic_config's second half: (BLOCK_K, stages, SPLIT_K, SPLIT_TAIL) for a tile shape."""
    while (bm + bn) * bk * stages > smem and stages > 2:  # smaller GPUs: fewer stages, then shorter K tiles
        stages -= 1
    while (bm + bn) * bk * stages > smem and bk > 32:
        bk //= 2
    tiles = triton.cdiv(M, bm) * triton.cdiv(N, bn)
    split = 1
    if M <= 32:
        if tiles < sms and K >= 8192:
            split = 2
    elif 0 < tiles < sms:
        split = max(1, min(triton.cdiv(2 * sms, tiles), triton.cdiv(K, bk) // 4, 16, K // (32 * max(M, 1))))
    # SPLIT_TAIL (one launch, CUDA only): K >= 8192, tiles of at least 64 x 128 overrunning a whole
    # wave by at most half a wave, under 4 waves in all: the overrun tiles in sms // overrun parts
    # (<= 4, >= 4 K tiles each). H100 (session 13, check_heuristic_s13.md): 70B 10240 x 8192 at 160
    # tiles 7-13 % faster and this rule within 1.08x of its tables; at K = 4096 the same rule ran
    # fp8 6144 x 4096 M = 512 1.21x its table (only int8 gained there) and 64 x 64 tiles (two
    # programs an SM) lost 6 %
    tail = split == 1 and vendor == "cuda" and M > 64 and K >= 8192 and bm * bn >= 64 * 128 and tiles < 4 * sms
    if tail:
        split = tail_split(tiles, sms, triton.cdiv(K, bk), 4, 4)
        tail = split > 1
    return bk, stages, split, tail


def _wgmma_tile(M: int, N: int, K: int, fp8: bool, sms: int) -> tuple | None:
    """(BLOCK_M, BLOCK_N, BLOCK_K, warps, stages, PERSISTENT, PINGPONG, TMA_STORE) for the sm90
    Gluon kernels, or None:
      first (session 20), fp8 from M = 1024 where 128 x 256 tiles are at least two an SM and
        fill >= 90 % of their last wave: those tiles, 128 deep, in 3 stages on the persistent
        kernel's one 8-warp consumer, stored by TMA. H100 (probe_ws_tma.md): 4096 x 28672 x 4096
        682 µs against 771 for the ping-pong tile below (torch._scaled_mm 724), 4096 x 6144
        146.5 / 151.3, 4096 x 4096 98.8 / 100.7, 1024 x 28672 171.5 / 175.4. Where the last wave
        is emptier the ping-pong tile won by 1.18-1.25x (tune_scaled_mm_s20_fp8_*.log: 6144 x 4096
        M = 1536 and 3072, 288 and 576 tiles; 10240 x 8192 M = 1024, 320), and at 1024 x 6144
        (192 tiles) 38.6 µs against 47.3;
      int8 (session 27) from M = 1024 at K >= 8192 where 128 x 256 tiles fill the SMs and >= 90 %
        of their last wave: those tiles in 4 stages (192 KB), the persistent kernel's one 8-warp
        consumer, register-stored: the int8 tables' winner at 13 of the 25 M >= 1024 entries at
        K >= 8192. The ping-pong tile below ran 1.13-1.27x them at 57344 x 8192 M = 2048 / 4096,
        8192 x 28672 M = 1024 / 4096 and 4096 x 14336 M = 2048 (check_heuristic_s27_all.md); at
        K = 4096 the tables keep the ping-pong tile from M = 1536 (28672 x 4096);
      then (session 19), from M = 512 where 128 x 128 tiles are at least two an SM: those tiles
        in 5 stages on the persistent ping-pong kernel (kernels/scaled_mm_ws.py). H100
        (probe_ws.md): int8 1024 x 6144 x 4096 36.8 µs against the session-18 table's 44.9,
        4096 x 28672 x 4096 670.6 / 738.8, within 1.11x of the best config on the other 8B rows;
        fp8 within 1.10x of the best (the tables' Triton 128 x 256 at 4096 x 4096 x 14336), and
        the session-19 fp8 tables take it at 9 of 18 re-tuned entries (their heuristic, Triton's
        128 x 256 / 128 x 128 at 4 warps, ran up to 1.20x them at M = 1536); both tables take
        it at 28672 x 4096 M = 512 (int8: the one-tile-a-program 128 x 256 ran 1.25x it,
        check_heuristic_s19_int8.md);
    then the session-17 H100 tables' winners (benchmarks/results/h100/tune_scaled_mm_*_s17*.log),
    which took the one-tile-a-program kernel at 59 of the 72 int8 entries from M = 96 and at 6 of
    the 45 fp8 entries re-tuned from M = 256:
      first (session 18), tiles of two accumulators (wgmma_n_split) where they fill >= 90 % of at
        most two waves of one program an SM: 64 x 96 x 128 in 6 stages to M = 128, 64 x 192 x 128
        in 6 to M = 256, 128 x 192 x 128 at 8 warps in 5 to M = 1024 (fp8: 512). H100, N = 6144,
        K = 4096 (probe_wgmma_split.md): int8 M = 128 13.8 µs against the table's 15.1, M = 256
        16.2 / 18.6, M = 512 22.5 / 24.9, M = 1024 44.4 / 46.5; fp8 M = 128-512 5-10 % faster,
        M = 1024 11 % slower. Their 64-wide half is slower per FLOP (128 x 192 at M = 4096: 0.87x
        128 x 256), so only where the wider tiles quantise badly; then
      int8 past M = 128: 128 x 256 x 64 in 5 stages where those tiles fill >= 80 % of their last
        wave (one wave included: 1024 x 4096 x 14336, 128 tiles, 77.9 µs against 86.4 for 128 x 128,
        probe_wgmma.md);
      int8 past M = 128 and fp8 at M = 129-512: 128 x 128 x 128 where its tiles fill 3/4 of the
        SMs (fp8: at most two waves of them; N = 57344 M = 512 ran 1.26x the table's persistent
        Triton 128 x 256, check_heuristic_s17_fp8.md); 4 stages (128 KB, one program an SM) while
        the tiles fit one wave of SMs, else 3 (96 KB: two an SM hold up to two SMs' worth in one
        wave): fp8 6144 x 4096 M = 512, 192 tiles, ran 1.25x its table in 4 stages, 4096 x 4096, 128
        tiles, 1.18x in 3; the rule matches 8 of the 9 int8 tables' such entries;
      M = 65-128: 128 x 128 x 128 in 3 stages where those tiles fill the SMs (N = 28672 and 57344;
        fp8 since session 27: the Triton kernel's 64 x 128 below ran 1.11-1.17x the fp8 tables
        there at M = 96, check_heuristic_s27_final.md: 64-row tiles read the weight twice at M = 96),
        else, int8 only, 64 x 128 x 128 at 4 warps in 4 stages where those fill 3/4 of them (N =
        8192, 10240).
    Elsewhere (fewer tiles: split-K, or the decode sizes) the Triton kernel's rules."""
    def tiles(bm, bn):
        return triton.cdiv(M, bm) * triton.cdiv(N, bn)
    if M <= 64:
        return None
    wide = tiles(128, 256)
    if fp8 and M >= 1024 and wide >= 2 * sms and wide >= 0.9 * triton.cdiv(wide, sms) * sms:
        return 128, 256, 128, 8, 3, True, False, True
    if not fp8 and M >= 1024 and K >= 8192 and wide >= sms and wide >= 0.9 * triton.cdiv(wide, sms) * sms:
        return 128, 256, 128, 8, 4, True, False, False
    if M >= 512 and tiles(128, 128) >= 2 * sms:
        return 128, 128, 128, 4, 5, True, True, False
    for bm, bn, bk, warps, stages, most_m in ((64, 96, 128, 4, 6, 128), (64, 192, 128, 4, 6, 256),
                                              (128, 192, 128, 8, 5, 512 if fp8 else 1024)):
        t = tiles(bm, bn)
        # one wave from 80 % full for 64 x 192 at M <= 128 and int8's 128 x 192: 10240 x 8192 (108
        # tiles, 82 %) at M = 96 / 128 and int8 M = 256, the tables' winners (session 22: int8 M = 96
        # 39.1 µs, the 64 x 128 below 46.9; M = 256 41.2, 128 x 128 49.7)
        full = 0.8 if t <= sms and ((bm, bn) == (64, 192) and M <= 128 or bm == 128 and not fp8) else 0.9
        if M <= most_m and t <= 2 * sms and t >= full * triton.cdiv(t, sms) * sms:
            return bm, bn, bk, warps, stages, False, False, False
    if not fp8 and M > 128:
        if wide >= 0.8 * triton.cdiv(wide, sms) * sms:
            return 128, 256, 64, 8, 5, False, False, False
    if M > 128 and 4 * tiles(128, 128) >= 3 * sms and (not fp8 or M <= 512 and tiles(128, 128) <= 2 * sms):
        return 128, 128, 128, 8, 4 if tiles(128, 128) <= sms else 3, False, False, False
    if M <= 128 and tiles(128, 128) >= sms:
        return 128, 128, 128, 8, 3, False, False, False
    if not fp8 and M <= 128 and 4 * tiles(64, 128) >= 3 * sms:
        return 64, 128, 128, 4, 4, False, False, False
    return None


def heuristic_config(M: int, N: int, K: int, fp8: bool, device_index: int = 0) -> dict:
    """The config used when no tuned table covers (N, K) on this GPU: the patterns of the H100
    tables for the eight Llama-3 shapes (lmkernels/configs/scaled_mm, 18 Ms each), shrunk to the
    shared memory of other GPUs. int8 and fp8 (fast accumulation) take the same tiles.

    M <= 32 is a weight stream: the time is N x K bytes over the bandwidth. The session-12 tables
    picked 16 (32) x 32 tiles, BLOCK_K 256, 5 stages, pointer loads (Triton's cp.async pipeline: the
    TMA descriptors lost by 5-15 % here), 4 warps; split-K only for K >= 8192 with fewer tiles than
    SMs (N = 4096, K = 14336: 128 tiles, 2 splits). That is still int8's rule here, though the
    session-27 int8 tables take those tiles transposed and 64 wide at 44 of their 56 M <= 32 entries
    (1-5 % faster; this rule within 1.11x of them, results/h100/check_heuristic_s27_int8_decode.md).
    fp8 on sm90 (SWAP_AB): 16 (32) x 64 x 256 tiles transposed, 5 stages, unsplit: the weight's 64
    rows are wgmma's M side, where a 16-row tile ran on mma.sync with e4m3 widened to f16 (H100,
    results/h100/probe_swap_ab.md, M = 1 / 16:
    6144 x 4096 11.9 -> 10.3 µs, 4096 x 14336 24.5 -> 23.2; one input set 10.4 -> 5.6).
    sm90, M = 33-128, where 64 x 64 tiles are at most two programs an SM: those, 128 deep, in 6
    pointer stages, transposed (SWAP_AB), both dtypes (session 22, see the rule's comment).
    Elsewhere M <= 64: 64 x 64 x 256, 4 stages, split-K to fill the SMs. Larger M: 64 x 128 up to M = 128,
    then 128 x 256 where those tiles fill the SMs and at least 80 % of their last wave (8 warps,
    4 stages: 192 KB, persistent once there is more than one wave; M = 256, N = 28672: 224 tiles,
    1.25x over 128 x 128; M = 512, N = 10240: 160 tiles, 1.19x slower than 128 x 128), else
    128 x 128;
    BLOCK_N halves down to 64 while the tiles leave SMs idle (M = 128, N = 4096: 128 tiles of
    64 x 64). 128 x 128 tiles: BLOCK_K 128, 8 warps (fp8 from M = 1024: 4, the session-16 fp8
    tables' choice at 5 of their 6 such entries, persistent past one wave); fp8 in 4 stages, int8
    in 3 (96 KB, so two programs share an SM: Triton 3.6 never keeps an int8 wgmma in flight
    across K steps, only fp32-accumulator ones, so each int8 K step waits for its MMAs and the
    other program's fill the wait. The session-16 int8 tables pick it at 17 of their 56 entries
    from M = 256; benchmarks/results/h100/probe_int8sync.md: 1.11-1.27x over 128 x 128 x 64 at 4
    warps, the rule before, at M = 1024).

    Split-K only where tiles still leave SMs idle, aiming at 2 programs an SM, each split at least
    4 K tiles deep (its pipeline fills), and at most K / (32 M) splits: the fp32/int32 workspace
    costs 8 M bytes a split and column against the weight's K, so this keeps it under a quarter
    of the weight's traffic; on CUDA past M = 64 at K >= 14336 the splits are summed in the same
    launch (ONE_LAUNCH), at K >= 16384 in as many splits as bring the tiles to one program an SM.
    SPLIT_TAIL (CUDA, M > 64, K >= 8192, tiles of at least 64 x 128, fewer than 4 waves) where the
    tiles overrun a whole wave by at most half a wave: the overrun tiles in up to 4 parts, the
    session-13 tables' pattern; int8's 128 x 128 tiles keep 4 warps x 64-deep K steps there. sm90+: descriptors (TMA) for M > 32
    where the operands allow, pointers for the weight stream; other GPUs: the process default.
    sm90 (Gluon): the tiles of _wgmma_tile where it gives one, on the WGMMA kernels.
    """
    vendor, cc, smem = _gpu(device_index)
    sms = num_sms(max(device_index, 0))
    persistent, warps = False, 4
    sm90 = vendor == "cuda" and cc // 10 == 9
    # SWAP_AB on sm90, the weight tile as the MMA's M side: fp8 at M <= 32 (see above), and both
    # dtypes at M = 33-128 where 64 x 64 tiles are at most two programs an SM (session 22: 64 x 64 x
    # 128 in 6 pointer stages, the re-tuned H100 tables' winner, plain or transposed, at 36 of the 44
    # such entries, tune_s22_mid_*.log; fp8 4096 x 4096 M = 128 12.35 -> 9.85 µs, 6144 x 4096 M = 64
    # 15.38 -> 11.85, 8192 x 8192 M = 64 34.3 -> 27.5; within 1.09x of the tables at the 8 others,
    # check_heuristic_s22_mid_*.md: 10240 x 8192 M = 48-64, 6144 x 4096 M = 128, int8 4096 x 4096
    # M = 48-64)
    mid = sm90 and 32 < M <= 128 and triton.cdiv(M, 64) * triton.cdiv(N, 64) <= 2 * sms
    swap = sm90 and (fp8 and M <= 32 or mid)
    if not mid and wgmma_unavailable(device_index) is None:
        tile = _wgmma_tile(M, N, K, fp8, sms)
        if tile is not None:
            bm, bn, bk, warps, stages, persistent, pingpong, tma_store = tile
            return check_config({"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "BLOCK_SIZE_K": bk, "GROUP_SIZE_M": 8,
                                 "num_warps": warps, "num_stages": stages, "ACCESS": "descriptor", "WGMMA": True,
                                 "PERSISTENT": persistent, "PINGPONG": pingpong, "TMA_STORE": tma_store})
    if mid:
        bm, bn, bk, stages = 64, 64, 128, 6
    elif swap:  # fp8 on wgmma (SWAP_AB): 64 weight rows a tile, one program a tile, no split
        bm, bn, bk, stages = (16 if M <= 16 else 32), 64, 256, 5
    elif M <= 32:
        bm, bn, bk, stages = (16 if M <= 16 else 32), 32, 256, 5
    elif M <= 64:
        bm, bn, bk, stages = 64, 64, 256, 4
    else:
        bk, stages = 128, 4
        bm = 64 if M <= 128 else 128
        wide = triton.cdiv(M, 128) * triton.cdiv(N, 256)  # 128 x 256 tiles: >= 80 % of their last wave busy
        bn = 256 if bm == 128 and wide >= sms and wide >= 0.8 * triton.cdiv(wide, sms) * sms else 128
        # K >= 16384 fills the SMs by split-K below instead (N = 8192, K = 28672, M = 96: 64 x 128
        # in 2 splits 94 µs, 64 x 64 tiles 127 µs)
        while triton.cdiv(M, bm) * triton.cdiv(N, bn) < sms and bn > (128 if K >= 16384 else 64):
            bn //= 2
        if (bm, bn) == (128, 128):  # see the docstring: int8 in 3 stages, two programs an SM
            bk, warps = 128, 8
            if not fp8:
                stages = 3
            elif M >= 1024:  # fp8 from M = 1024: 4 warps (a warpgroup of 128 rows), persistent
                warps, persistent = 4, triton.cdiv(M, bm) * triton.cdiv(N, bn) > sms
        if bm * bn >= 128 * 256:
            warps = 8
            persistent = triton.cdiv(M, bm) * triton.cdiv(N, bn) > sms
    bk, stages, split, tail = _fit_and_split(M, N, K, bm, bn, bk, stages, smem, sms, vendor)
    if swap:  # one program a tile, unsplit
        split = 1
    if not fp8 and (bm, bn) == (128, 128) and tail:
        # int8 128 x 128 tiles under SPLIT_TAIL keep 4 warps x 64-deep K steps in 4 stages (the
        # rule before session 16): 70B 10240 x 8192 M = 256 / 512 ran 1.22 / 1.32x its table in 3
        # stages of 128 (check_heuristic_s16_first.md), 1.04-1.08x this way
        bk, warps, stages = 64, 4, 4
        bk, stages, split, tail = _fit_and_split(M, N, K, bm, bn, bk, stages, smem, sms, vendor)
    # plain split-K finished in the same launch at K >= 14336 past M = 64, the session-16 tables'
    # choice at 10 of those 11 entries (8B 4096 x 14336 M = 96 / 128, 70B 8192 x 28672 M = 96-256);
    # two launches ran 1.16-1.23x there (check_heuristic_s16_first.md). At K >= 16384 the tables
    # take one program an SM (2 splits of 128 tiles, not 3): 3 ran 1.17-1.34x
    one_launch = tail or (split > 1 and vendor == "cuda" and M > 64 and K >= 14336)
    if one_launch and not tail and K >= 16384:
        split = min(split, triton.cdiv(sms, triton.cdiv(M, bm) * triton.cdiv(N, bn)))
    cfg = {"BLOCK_SIZE_M": bm, "BLOCK_SIZE_N": bn, "BLOCK_SIZE_K": bk, "GROUP_SIZE_M": 1 if M <= 32 else 8,
           "num_warps": warps, "num_stages": stages, "SPLIT_K": split, "PERSISTENT": persistent,
           "FP8_FAST_ACCUM": True}
    if one_launch:
        cfg["ONE_LAUNCH"] = True
    if tail:
        cfg["SPLIT_TAIL"] = True
    if swap:
        cfg["SWAP_AB"] = True
    if vendor == "cuda" and cc >= 90:
        cfg["ACCESS"] = "descriptor" if M > 32 and not mid else "pointer"
    return check_config(cfg)


# ---------------------------------------------------------------- checks (no data: fake tensors too)

def _scale_kind(scale, name: str, n: int, what: str, ref, allow_row: bool) -> tuple[bool, int]:
    """(per row/column, element stride) of a scale tensor; raises for anything else."""
    check_tensor(scale, name)
    if scale.dtype != torch.float32:
        raise TypeError(f"{name}.dtype={scale.dtype} must be torch.float32")
    check_same_device(scale, name, ref, "a")
    shape = tuple(scale.shape)
    if scale.dim() <= 2 and scale.numel() == 1:
        return False, 0
    if shape == (n, 1):
        return True, scale.stride(0)
    if allow_row and shape == (1, n):
        return True, scale.stride(1)
    forms = f"[{n}, 1]" + (f" or [1, {n}]" if allow_row else "")
    raise ValueError(f"{name}.shape={shape} must be per tensor (0-d, [1] or [1, 1]) or per {what} {forms}")


def _layout(t, name: str, rows: int, cols: int, prefer_transposed: bool) -> tuple[bool, int]:
    """(transposed, row stride of the view the kernel addresses) for a 2-D operand [rows, cols]:
    False = cols contiguous (view [rows, cols]), True = rows contiguous (view [cols, rows]). A dim
    of size 1 counts as contiguous, its stride replaced by the dense one (never used to address).
    prefer_transposed: the reading to take when both apply (the K-contiguous one, which the MMA
    wants: a's rows, b's columns)."""
    s0, s1 = t.stride()
    row_major = s1 == 1 or cols <= 1
    col_major = s0 == 1 or rows <= 1
    if row_major and (not col_major or not prefer_transposed):
        return False, s0 if rows > 1 else cols
    if col_major:
        return True, s1 if cols > 1 else rows
    raise ValueError(f"{name} has shape {tuple(t.shape)} and strides {t.stride()}: one of its dims must be "
                     f"contiguous (row-major, or a transposed view such as w.t()); pass {name}.contiguous()")


def check_scaled_mm(a, b, scale_a, scale_b, out_dtype, bias=None) -> tuple:
    """Every check that needs no data. Returns (M, N, K, int8, scale_a per token, its stride,
    scale_b per channel, its stride)."""
    check_tensor(a, "a")
    check_tensor(b, "b")
    if a.dtype not in (INT8, FP8):
        raise TypeError(f"a.dtype={a.dtype} is not supported; expected torch.int8 or torch.float8_e4m3fn")
    if b.dtype != a.dtype:
        raise TypeError(f"b.dtype={b.dtype} must equal a.dtype={a.dtype} (both int8 or both float8_e4m3fn)")
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"a and b must be 2-D, got a.shape={tuple(a.shape)} and b.shape={tuple(b.shape)}")
    M, K = a.shape
    if b.shape[0] != K:
        raise ValueError(f"b.shape[0]={b.shape[0]} must equal a.shape[1]={K} (K); a is [M, K], b is [K, N]")
    N = b.shape[1]
    check_same_device(b, "b", a, "a")
    if not isinstance(out_dtype, torch.dtype) or out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype={out_dtype!r} is not supported; expected torch.bfloat16, torch.float16 or "
                        f"torch.float32")
    sa_tok, ssa = _scale_kind(scale_a, "scale_a", M, "token", a, False)
    sb_ch, ssb = _scale_kind(scale_b, "scale_b", N, "output channel", a, True)
    if bias is not None:
        check_tensor(bias, "bias")
        if bias.dtype not in (torch.float32, out_dtype):
            raise TypeError(f"bias.dtype={bias.dtype} must be torch.float32 or out_dtype={out_dtype}")
        check_same_device(bias, "bias", a, "a")
        if tuple(bias.shape) != (N,):
            raise ValueError(f"bias.shape={tuple(bias.shape)} must be [N] = [{N}]")
    if a.dtype == INT8 and K > MAX_INT8_K:
        raise ValueError(f"K={K} exceeds {MAX_INT8_K} for int8: the int32 accumulator could overflow "
                         f"(128 x 128 x K > 2^31 - 1)")
    _layout(a, "a", M, K, False)
    _layout(b, "b", K, N, True)
    return M, N, K, a.dtype == INT8, sa_tok, ssa, sb_ch, ssb


# ---------------------------------------------------------------- plans

def _descriptor_problem(a, b, A_T, B_T, sa_view, sb_view, bm, bn, bk) -> str | None:
    if a.numel() == 0 or b.numel() == 0:
        return None  # nothing is addressed (the op returns early or reads no K tile)
    ops = [("a", a, sa_view, bm if A_T else bk), ("b", b, sb_view, bk if B_T else bn)]
    return _access.unavailable_reason(_access.DESCRIPTOR) or _access.descriptor_problem(ops)


def early_launch(items: int, one_row: bool, dev: int) -> bool:
    """Whether a PDL launch lets its dependents launch right after its wait (else once each program's
    work is done): up to 1.5 work items an SM, 2 where the tiles are one row of M (decode). H100
    (probe_scaled_mm_pdl.md, against PDL off): 96-192 items early -0.5 to -0.7 µs, late -0.2 to
    -0.5; 448-896 items (28672 x 4096 at decode) early +3.3 to +4.5 µs, late -0.5 to +0.1; 256 items
    at decode early -0.2 to -1.4 (8192 x 8192, 4096 x 14336 fp8), late -0.3 to +0.7; 256 items at
    M = 128 (8192 x 8192) early +1.7 to +2.8, late -0.3 to -0.5."""
    return 2 * items <= (4 if one_row else 3) * num_sms(max(dev, 0))


def wgmma_unavailable(dev: int) -> str | None:
    """Why kernels/scaled_mm_wgmma.py cannot run on device `dev` at all, or None (the heuristic, the
    plan and the tuner all ask here)."""
    if _GLUON_PROBLEM is not None:
        return _GLUON_PROBLEM
    vendor, cc, _ = _gpu(dev)
    if vendor != "cuda" or cc != 90:
        where = "the CPU interpreter" if vendor == "cpu" else f"sm{cc}" if vendor == "cuda" else vendor
        return f"it needs an sm90 GPU (wgmma); this call runs on {where}"
    return None


def _wgmma_problem(dev: int, mode: int, A_T: bool, B_T: bool) -> str | None:
    """Why kernels/scaled_mm_wgmma.py cannot run a call, or None."""
    why = wgmma_unavailable(dev)
    if why is not None:
        return why
    if A_T or not B_T:
        return ("it needs K-contiguous operands: a row-major [M, K] and b the transpose of a row-major [N, K] "
                "weight (an 8-bit wgmma reads only K-major tiles)")
    if mode != _access.DESCRIPTOR:
        return "it reads its operands through TMA descriptors, and this call resolved to another access mode"
    return None


def _tma_store_problem(N: int, out_dtype: torch.dtype, cfg: dict, dev: int) -> str | None:
    """Why kernels/scaled_mm_ws.py cannot TMA-store this call's output tiles, or None. The ring's
    stages and one [BLOCK_M, BLOCK_N] output tile a consumer share the program's shared memory
    (H100: 227 KB; 128 x 256 bf16 tiles fit beside 3 stages of 128-deep K, not 4)."""
    es = out_dtype.itemsize
    if N * es % 16:
        return f"the output's rows (N={N} x {es} bytes) are not a multiple of 16 bytes, as TMA needs"
    need = ws_smem_bytes(cfg, es)
    smem = _gpu(max(dev, 0))[2]
    if need + 1024 > smem:  # + the barriers and the compiler's scratch
        bm, bn, bk = cfg["BLOCK_SIZE_M"], cfg["BLOCK_SIZE_N"], cfg["BLOCK_SIZE_K"]
        return (f"{cfg['num_stages']} stages of ({bm} + {bn}) x {bk} bytes and the {out_dtype} output tiles need "
                f"{need} bytes of shared memory; this GPU gives a program {smem}")
    return None


def ws_smem_bytes(cfg: dict, out_bytes: int) -> int:
    """Shared memory of kernels/scaled_mm_ws.py's ring (1-byte operands) and, with TMA_STORE, its
    consumers' output tiles of out_bytes-wide elements (the tuner sizes its candidates by it too)."""
    bm, bn, bk = cfg["BLOCK_SIZE_M"], cfg["BLOCK_SIZE_N"], cfg["BLOCK_SIZE_K"]
    tiles = (2 if cfg.get("PINGPONG") else 1) * bm * bn * out_bytes if cfg.get("TMA_STORE") else 0
    return cfg["num_stages"] * (bm + bn) * bk + tiles


def ws_maxnreg(warps: int, pingpong: bool) -> int:
    """Registers a thread for kernels/scaled_mm_ws.py's launch: its consumers' warps plus the
    producer's warpgroup (a partition takes whole warpgroups' registers) share the 64K-register file,
    in steps of 8; the partitions then move registers among themselves (setmaxnreg)."""
    return min(256, 65536 // (32 * (warps * (2 if pingpong else 1) + 4)) // 8 * 8)


def _wgmma_plan(M, N, K, int8, out_dtype, sa_tok, ssa, sb_ch, ssb, bias_dtype, dev, cfg, use_pdl) -> tuple:
    """_make_plan for the Gluon kernels: one tile a program, no split (kernels/scaled_mm_wgmma.py), or
    with PERSISTENT one program an SM (kernels/scaled_mm_ws.py)."""
    bm, bn, bk = cfg["BLOCK_SIZE_M"], cfg["BLOCK_SIZE_N"], cfg["BLOCK_SIZE_K"]
    tiles = triton.cdiv(M, bm) * triton.cdiv(N, bn)
    bn1, bn2 = wgmma_n_split(bn)
    warps, pingpong = cfg["num_warps"], cfg["PINGPONG"]
    early = use_pdl and early_launch(tiles, M <= bm, dev)
    if cfg["PERSISTENT"]:
        launcher, grid, maxnreg = _launch_ws, min(tiles, num_sms(max(dev, 0))), ws_maxnreg(warps, pingpong)
        consts = (bm, bn, bk, cfg["GROUP_SIZE_M"], cfg["num_stages"], 2 if pingpong else 1, sa_tok, sb_ch,
                  bias_dtype is not None, int8, use_pdl, early, cfg["TMA_STORE"])
    else:
        launcher, grid, maxnreg = _launch_wgmma, tiles, None
        consts = (bm, bn1, bn2, bk, cfg["GROUP_SIZE_M"], cfg["num_stages"], sa_tok, sb_ch, bias_dtype is not None,
                  int8, use_pdl, early)
    stand_in = torch.float32 if bias_dtype is None else bias_dtype
    meta = launcher.meta_id(consts, warps, 1, (out_dtype, torch.float32, torch.float32, stand_in), use_pdl,
                            fp_fusion=False, maxnreg=maxnreg)
    gl_dtype = _gl.int8 if int8 else _gl.float8e4nv
    boxes = ((bm, bk), (bn1, bk), (bn2 or bn1, bk))  # without a second accumulator b's box twice (unread)
    layouts = tuple(_gl.NVMMASharedLayout.get_default_for(list(box), gl_dtype) for box in boxes)
    if cfg["PERSISTENT"] and cfg["TMA_STORE"]:  # the output's box in the third place (b's second unused)
        boxes = boxes[:2] + ((bm, bn),)
        layouts = layouts[:2] + (_gl.NVMMASharedLayout.get_default_for([bm, bn], _GL_OUT[out_dtype]),)
    return (grid, consts, meta, warps, (M, N, K, N, ssa, ssb), boxes, layouts, cfg["PERSISTENT"], maxnreg,
            cfg["PERSISTENT"] and cfg["TMA_STORE"])


def _make_plan(M, N, K, int8, out_dtype, A_T, B_T, stride_a, stride_b, sa_tok, ssa, sb_ch, ssb, bias_dtype,
               dev, mode, cfg, use_pdl, wgmma=False) -> tuple:
    """Everything a launch needs but the tensors: see _launch_plan for how it is read. scratch is
    (spec, {stream: (workspace, counters)}) for one-launch split-K (runtime/scratch.py), else None;
    reduce is None or (constexprs, meta id, grid, ints) of the second launch; wgmma None or
    _wgmma_plan's tuple (the Gluon kernel runs the call instead)."""
    if wgmma:
        return (mode, 0, (), 0, 0, 0, (M, N, K, stride_a, stride_b), (), 1, out_dtype, None, (M, N), out_dtype,
                A_T, B_T, use_pdl, None,
                _wgmma_plan(M, N, K, int8, out_dtype, sa_tok, ssa, sb_ch, ssb, bias_dtype, dev, cfg, use_pdl))
    bm, bn, bk = cfg["BLOCK_SIZE_M"], cfg["BLOCK_SIZE_N"], cfg["BLOCK_SIZE_K"]
    k_tiles = triton.cdiv(K, bk)
    split = min(cfg["SPLIT_K"], max(k_tiles, 1))
    k_chunk = triton.cdiv(k_tiles, split) * bk  # whole K tiles a split: no tile straddles two
    split = triton.cdiv(K, k_chunk) if K else 1  # every split non-empty
    tiles = triton.cdiv(M, bm) * triton.cdiv(N, bn)
    one_launch = split > 1 and cfg["ONE_LAUNCH"] and not _HIP
    sms = num_sms(max(dev, 0))
    tail_sms = sms if one_launch and cfg["SPLIT_TAIL"] else 0
    split_tiles = tiles % sms if tail_sms else tiles  # the tiles that are split (the rest run whole)
    items = tiles + split_tiles * (split - 1)
    persistent = cfg["PERSISTENT"]
    grid = min(items, sms) if persistent else items
    consts = (bm, bn, bk, cfg["GROUP_SIZE_M"], split, persistent, A_T, B_T, sa_tok, sb_ch, bias_dtype is not None,
              int8, cfg["FP8_FAST_ACCUM"] and not int8, mode, use_pdl,
              use_pdl and early_launch(items, M <= bm, dev), one_launch, tail_sms, cfg["SWAP_AB"])
    dt = INT8 if int8 else FP8
    acc_dtype = torch.int32 if int8 else torch.float32
    ws_dtype = acc_dtype if split > 1 and not one_launch else out_dtype  # what c_ptr points at
    part_dtype = acc_dtype if one_launch else ws_dtype
    count_dtype = torch.int32 if one_launch else ws_dtype
    stand_in = torch.float32 if bias_dtype is None else bias_dtype  # no bias: scale_a rides in its slot
    launcher = _launch_desc if mode == _access.DESCRIPTOR else _launch
    tail = (ws_dtype, part_dtype, count_dtype, torch.float32, torch.float32, stand_in)
    tensor_dtypes = tail if mode == _access.DESCRIPTOR else (dt, dt) + tail
    warps, stages = cfg["num_warps"], cfg["num_stages"]
    meta = launcher.meta_id(consts, warps, stages, tensor_dtypes, use_pdl, fp_fusion=False)
    ints = (M, N, K, stride_a, stride_b, N, M * N, ssa, ssb, k_chunk)
    boxes = ((bk, bm) if A_T else (bm, bk), (bn, bk) if B_T else (bk, bn))
    scratch = None
    if one_launch:
        # slots for a power of two of tiles: M moves every decode step, and this keeps the number of
        # cached workspaces per (BLOCK_M, BLOCK_N, SPLIT_K) to a handful (a graph holds their addresses)
        slots = triton.next_power_of_2(max(split_tiles, 1))
        scratch = ((slots, slots * split * bm * bn, acc_dtype), {})
    reduce = None
    if split > 1 and not one_launch:
        rbm = min(16, triton.next_power_of_2(M))
        rbn = max(16, min(triton.next_power_of_2(N), 2048 // rbm))
        rconsts = (split, rbm, rbn, sa_tok, sb_ch, bias_dtype is not None, use_pdl)
        rmeta = _launch_reduce.meta_id(rconsts, 4, 1, (ws_dtype, out_dtype, torch.float32, torch.float32, stand_in),
                                       use_pdl, fp_fusion=False)
        rgrid = triton.cdiv(M, rbm) * triton.cdiv(N, rbn)
        reduce = (rconsts, rmeta, rgrid, (M, N, M * N, N, ssa, ssb))
    return (mode, grid, consts, meta, warps, stages, ints, boxes, split, ws_dtype, reduce, (M, N), out_dtype,
            A_T, B_T, use_pdl, scratch, None)


def _launch_wgmma_plan(wplan, a, b, out, scale_a, scale_b, bias_arg, dev, stride_a, stride_b, pdl):
    grid, consts, meta, warps, ints, boxes, layouts, persistent, maxnreg, tma_store = wplan
    M, N, K = ints[:3]
    av = _GluonDescriptor(a, [M, K], [stride_a, 1], list(boxes[0]), layouts[0])
    bv = _GluonDescriptor(b, [N, K], [stride_b, 1], list(boxes[1]), layouts[1])  # b = w.t(): w [N, K]
    if persistent:
        # without TMA_STORE the kernel's c_desc is a stand-in it never reads
        cv = _GluonDescriptor(out, [M, N], [N, 1], list(boxes[2]), layouts[2]) if tma_store else av
        launcher, descs = _launch_ws, (av, bv, cv)
    else:
        bv2 = bv if boxes[2] == boxes[1] else _GluonDescriptor(b, [N, K], [stride_b, 1], list(boxes[2]), layouts[2])
        launcher, descs = _launch_wgmma, (av, bv, bv2)
    if not launcher.fast(dev, meta, grid, 1, *descs, out, scale_a, scale_b, bias_arg, *ints):
        launcher(dev, (grid,), (*descs, out, scale_a, scale_b, bias_arg, *ints), consts, warps, 1, pdl=pdl,
                 fp_fusion=False, maxnreg=maxnreg)


def _launch_plan(plan, a, b, scale_a, scale_b, bias, dev):
    """Allocate the output (and the two-launch workspace; a one-launch split takes the cached one)
    and launch the plan's kernel(s)."""
    (mode, grid, consts, meta, warps, stages, ints, boxes, split, ws_dtype, reduce, shape, out_dtype, A_T, B_T, pdl,
     scratch, wplan) = plan
    out = a.new_empty(shape, dtype=out_dtype)
    if wplan is not None:
        _launch_wgmma_plan(wplan, a, b, out, scale_a, scale_b, scale_a if bias is None else bias, dev, ints[3],
                           ints[4], pdl)
        return out
    c = out if split == 1 or scratch is not None else a.new_empty((split, *shape), dtype=ws_dtype)
    part, count = (c, c) if scratch is None else _scratch.split_buffers(dev, scratch)  # (c, c): never touched
    bias_arg = scale_a if bias is None else bias
    if mode == _access.DESCRIPTOR:
        M, N, K, stride_a, stride_b = ints[:5]
        av = tile_descriptor(a, K, M, stride_a, *boxes[0]) if A_T else tile_descriptor(a, M, K, stride_a, *boxes[0])
        bv = tile_descriptor(b, N, K, stride_b, *boxes[1]) if B_T else tile_descriptor(b, K, N, stride_b, *boxes[1])
        if not _launch_desc.fast(dev, meta, grid, 1, av, bv, c, part, count, scale_a, scale_b, bias_arg, *ints):
            _launch_desc(dev, (grid,), (av, bv, c, part, count, scale_a, scale_b, bias_arg, *ints), consts, warps,
                         stages, pdl=pdl, fp_fusion=False)
    elif not _launch.fast(dev, meta, grid, 1, a, b, c, part, count, scale_a, scale_b, bias_arg, *ints):
        _launch(dev, (grid,), (a, b, c, part, count, scale_a, scale_b, bias_arg, *ints), consts, warps, stages,
                pdl=pdl, fp_fusion=False)
    if reduce is not None:
        rconsts, rmeta, rgrid, rints = reduce
        if not _launch_reduce.fast(dev, rmeta, rgrid, 1, c, out, scale_a, scale_b, bias_arg, *rints):
            _launch_reduce(dev, (rgrid,), (c, out, scale_a, scale_b, bias_arg, *rints), rconsts, 4, 1, pdl=pdl,
                           fp_fusion=False)
    return out


def _resolve_mode(access, cfg_access, explicit_cfg: bool, problem) -> tuple[int, bool]:
    """(The access mode of a call, whether it fell back to pointers). An explicit request (the access argument, or ACCESS in a config
    the caller passed) that cannot serve raises; a tuned or heuristic config's ACCESS, and the
    process default, fall back to pointer (the default never fails for a reason of addressing).
    `problem()` says why descriptors cannot address the operands, or None."""
    if access is not None and explicit_cfg and cfg_access is not None and cfg_access != access:
        raise ValueError(f"access={access!r} and config['ACCESS']={cfg_access!r} disagree; give one")
    want = access if access is not None else cfg_access if explicit_cfg else None
    if want is not None:
        if not isinstance(want, str):
            raise TypeError(f"access must be a str or None, got {type(want).__name__}")
        if want not in _access.MODES:
            raise ValueError(f"access={want!r} is not an access mode; expected one of {sorted(_access.MODES)} or None")
        mode = _access.MODES[want]
        why = _access.unavailable_reason(mode) or (problem() if mode == _access.DESCRIPTOR else None)
        if why is not None:
            raise ValueError(f"access={want!r} cannot serve this call: {why}")
        return mode, False
    mode = _access.MODES[cfg_access] if cfg_access is not None else _access.default_mode()
    if _access.unavailable_reason(mode) or (mode == _access.DESCRIPTOR and problem() is not None):
        return _access.POINTER, True
    return mode, False


def _careful(a, b, scale_a, scale_b, out_dtype, bias, access, config, key, pdl):
    M, N, K, int8, sa_tok, ssa, sb_ch, ssb = check_scaled_mm(a, b, scale_a, scale_b, out_dtype, bias)
    check_runnable(a, "a")
    dev = a.get_device()
    use_pdl = resolve_pdl(pdl, dev)  # refuses a pdl that is not a bool or None
    if not int8:
        why = fp8_mma_problem(dev)
        if why is not None:
            raise ValueError(why)
    explicit = config is not None
    if explicit:
        cfg = check_config(config)
    else:
        cfg = config_store.lookup("scaled_mm", N, K, "int8" if int8 else "fp8", M, dev) if M * N else None
        cfg = check_config(cfg) if cfg is not None else heuristic_config(M, N, K, not int8, dev)
    A_T, stride_a = _layout(a, "a", M, K, False)
    B_T, stride_b = _layout(b, "b", K, N, True)
    bm, bn, bk = cfg["BLOCK_SIZE_M"], cfg["BLOCK_SIZE_N"], cfg["BLOCK_SIZE_K"]
    cfg_access = cfg["ACCESS"]
    if cfg["WGMMA"] and cfg_access is None and access is None:
        cfg_access = "descriptor"  # the Gluon kernel's only mode
    mode, fell_back = _resolve_mode(access, cfg_access, explicit,
                         lambda: _descriptor_problem(a, b, A_T, B_T, stride_a, stride_b, bm, bn, bk))
    if M == 0 or N == 0:
        return torch.empty((M, N), dtype=out_dtype, device=a.device)
    wgmma = cfg["WGMMA"] and K > 0
    if wgmma:
        why = _wgmma_problem(dev, mode, A_T, B_T)
        if why is not None:
            if explicit:
                raise ValueError(f"config['WGMMA']=True cannot serve this call: {why}")
            wgmma = False  # a tuned or heuristic config: the same tile on _scaled_mm_kernel
    if wgmma and cfg["TMA_STORE"]:
        why = _tma_store_problem(N, out_dtype, cfg, dev)
        if why is not None:
            if explicit:
                raise ValueError(f"config['TMA_STORE']=True cannot serve this call: {why}")
            cfg = dict(cfg, TMA_STORE=False)  # a tuned or heuristic config: the tile's stores from registers
    if not wgmma and bn & (bn - 1):  # _scaled_mm_kernel's tiles are powers of two: a split one's wider part
        cfg = dict(cfg, BLOCK_SIZE_N=wgmma_n_split(bn)[0])
    if K == 0:  # nothing to read: out = 0 * scales + bias from the epilogue, whatever the mode asked
        mode = _access.POINTER
    bias_dtype = None if bias is None else bias.dtype
    plan = _make_plan(M, N, K, int8, out_dtype, A_T, B_T, stride_a, stride_b, sa_tok, ssa, sb_ch, ssb,
                      bias_dtype, dev, mode, cfg, use_pdl, wgmma)
    # the fast path reuses the plan for calls with the key's facts, which hold everything but the
    # bases' alignment: a descriptor plan re-checks it at each call (a base off 16 bytes comes back
    # here), and a pointer plan that fell back for a misaligned base is not kept (the next, aligned
    # call of the shape may have descriptors)
    if key is not None and not (fell_back and (a.data_ptr() & 15 or b.data_ptr() & 15)):
        if len(_plans) >= MAX_PLANS:  # a server sees a few hundred batch sizes; this bounds a stranger caller
            _plans.clear()
        _plans[key] = plan
    return _launch_plan(plan, a, b, scale_a, scale_b, bias, dev)


def scaled_mm_impl(a, b, scale_a, scale_b, out_dtype, bias=None, access=None, config=None, pdl=None):
    """out = scaled_mm(...): the fast branch for a call whose facts have a plan, else _careful.

    The plan key holds every fact the plan was derived from (shapes, strides, dtypes, scale and
    bias forms, device, the access request and the process default); devices are asked of each
    operand, and for a descriptor plan the two bases' 16-byte alignment (TMA's rule; the strides'
    alignment is in the key), and the pdl request."""
    key = None
    if (config is None and type(a) is _Tensor and type(b) is _Tensor and type(scale_a) is _Tensor
            and type(scale_b) is _Tensor and type(out_dtype) is _Dtype and (access is None or type(access) is str)
            and (pdl is None or type(pdl) is bool)):
        dev = a.get_device()
        if bias is None:
            bkey = None
        elif type(bias) is _Tensor:
            bkey = (bias.shape, bias.stride(), bias.dtype)
        else:
            bkey = False
        if bkey is not False:
            key = (a.shape, b.shape, a.stride(), b.stride(), a.dtype, b.dtype, out_dtype, scale_a.shape,
                   scale_a.stride(), scale_a.dtype, scale_b.shape, scale_b.stride(), scale_b.dtype, bkey, dev,
                   access, _access._default, pdl)
            plan = _plans.get(key)
            if (plan is not None and b.get_device() == dev and scale_a.get_device() == dev
                    and scale_b.get_device() == dev and (bias is None or bias.get_device() == dev)
                    and (dev >= 0 or cpu_interpreted(a, b, scale_a, scale_b) and (bias is None or bias.is_cpu))
                    and (plan[0] != _access.DESCRIPTOR or (a.data_ptr() & 15) == 0 == (b.data_ptr() & 15))):
                return _launch_plan(plan, a, b, scale_a, scale_b, bias, dev)
            if plan is not None and plan[0] == _access.DESCRIPTOR:
                key = None  # misaligned bases this call: the careful path decides again, caching nothing
    return _careful(a, b, scale_a, scale_b, out_dtype, bias, access, config, key, pdl)


@torch.compiler.assume_constant_result
def config_json(config) -> str:
    """A config dict as the registered op's JSON string. Checked and encoded in Python while
    torch.compile traces (dynamo cannot trace json's C encoder; the config is a constant of the
    graph anyway)."""
    return json.dumps(check_config(config), sort_keys=True)


def scaled_mm(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
              out_dtype: torch.dtype, bias: torch.Tensor | None = None, *, access: str | None = None,
              config: dict | None = None, pdl: bool | None = None) -> torch.Tensor:
    """W8A8 scaled matmul: ``out[m, n] = round(sa[m] * sb[n] * sum_k a[m, k] b[k, n] + bias[n])``.

    a [M, K], b [K, N]: both torch.int8 (int32 accumulation, exact; K <= 131071) or both
    torch.float8_e4m3fn (fp32 accumulation; NVIDIA sm89+). Each may be row-major or column-major
    (b is typically w.t() of a row-major [N, K] weight), never copied; other strides are refused.
    scale_a float32: per tensor (0-d, [1] or [1, 1]) or per token [M, 1]; scale_b float32: per
    tensor or per output channel [N, 1] or [1, N]. bias None or [N] of float32 or out_dtype.
    out_dtype torch.bfloat16, torch.float16 or torch.float32. Returns a new [M, N] tensor.

    Evaluated in fp32 in this order, each step rounded once, then one rounding to out_dtype:
    t = float(acc) * sa[m]; t = t * sb[n]; t = t + bias[n] (no FMA contraction). int8 results are
    therefore bit-identical to lmkernels.reference.scaled_mm on a GPU. fp8: on sm90 the whole K sum
    stays in the tensor cores' accumulator, which keeps fewer bits than fp32 (~14, DeepSeek-V3
    3.3.2), as vLLM's CUTLASS kernels (FP8FastAccum) and torch._scaled_mm(use_fast_accum=True) do;
    a config with FP8_FAST_ACCUM=False adds each BLOCK_SIZE_K slice into a separate fp32
    accumulator instead (torch._scaled_mm's default accuracy, 1.2-1.4x slower on an H100).
    K == 0 gives bias (or zeros) times nothing: out = 0 * sa * sb + bias. M == 0 or N == 0: an
    empty result.

    access: None (a tuned or heuristic config's choice: descriptors on sm90+ where the bases and
    strides are 16-byte aligned, else the process default), "pointer", "block_ptr" or
    "descriptor" (raises ValueError where it cannot serve). config: a dict (see check_config) that
    replaces the tuned / heuristic one; None looks up lmkernels.runtime.config_store, then
    heuristic_config. Deterministic: split-K sums its partials in a fixed order.
    pdl: programmatic dependent launch, None = where the GPU has it (sm90+); never changes the result.

    >>> w = torch.randint(-128, 128, (4096, 4096), dtype=torch.int8, device="cuda")
    >>> x = torch.randint(-128, 128, (16, 4096), dtype=torch.int8, device="cuda")
    >>> y = lmkernels.scaled_mm(x, w.t(), torch.rand(16, 1, device="cuda"), torch.rand(4096, 1, device="cuda"),
    ...                         torch.bfloat16)
    """
    check_tensor(a, "a")
    if use_dispatcher(a):
        cfg = None if config is None else config_json(config)
        return torch.ops.lmkernels.scaled_mm(a, b, scale_a, scale_b, out_dtype, bias, access, cfg, pdl)
    return scaled_mm_impl(a, b, scale_a, scale_b, out_dtype, bias, access, config, pdl)
