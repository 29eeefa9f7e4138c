"""Paged KV-cache write: reshape_and_cache_flash (vLLM's), in place on the two caches.

Shape of the module (for library.py):
  reshape_and_cache_flash   public: first the memo (_memo: the operand facts of a call the fast
                            branch below has launched -> its launch bound by Launcher.bind, so a
                            repeat call is one tuple of facts, one dict lookup and the C launch);
                            otherwise refuses non-tensors, routes to torch.ops.lmkernels.<name> while
                            torch.compile traces (or for fake/subclass tensors), else calls *_into.
  reshape_and_cache_into    what the registered op calls: every check, then one launch. The common
                            call (3-D key/value, 4-D caches with equal strides, contiguous last dims,
                            pointer mode, validate off, on a GPU) is recognised by a straight-line
                            fast branch and launched through Launcher.fast with a plan cached on (H,
                            D, dtypes, kv_cache_dtype, scales given, pdl, device); anything else takes
                            _careful, which explains what is wrong, checks the slots (validate=True)
                            or resolves another access mode.
  check_reshape_and_cache   shape/dtype/device checks only (no data): the registered op's fake
                            implementation runs it; the op mutates key_cache and value_cache.

One kernel (kernels/kv_cache.py:_reshape_and_cache_kernel) for copies and fp8; its layout notes
say how slots, skips and the NHD/HND strides work.
"""
from __future__ import annotations

import torch
import triton

from ..kernels.kv_cache import _reshape_and_cache_kernel
from ..runtime import access as _access
from ..runtime.device import fp8_cast_native, is_interpreter, num_sms
from ..runtime.launch import LaunchMemo, Launcher
from ._common import (FLOAT_DTYPES, check_last_contiguous, check_runnable, check_same_device, check_tensor,
                      cpu_interpreted, resolve_pdl, use_dispatcher)

# key, value, key_cache, value_cache, slots | n | k_scale, v_scale | num_blocks, block_size |
# stride_kt, kh, vt, vh, cb, co, ch | stride_slot, stride_ks, stride_vs. The arguments that change
# every call come first (the memo binds the rest: a copy's scale stand-ins included)
_launch = Launcher(_reshape_and_cache_kernel, "ttttt" "n" "tt" "ni" "iiiiiii" "nii")
_launch_desc = Launcher(_reshape_and_cache_kernel, "ddddt" "n" "tt" "ni" "iiiiiii" "nii")  # access="descriptor"

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
# kv_cache_dtype -> the dtype the cache holds (None: key's dtype); fp8 caches may also be uint8
KV_CACHE_DTYPES = {"auto": None, "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32,
                   "fp8": E4M3, "fp8_e4m3": E4M3, "fp8_e5m2": E5M2}
FP8_KIND = {E4M3: 1, E5M2: 2}  # the kernel's FP8 constexpr (0: copy)
SLOT_DTYPES = (torch.int64, torch.int32)
_Tensor, _F32 = torch.Tensor, torch.float32  # read by the hot path without an attribute lookup
_is_compiling = torch.compiler.is_compiling

# A program's tile of one tensor, one token, holds at most this many elements (heads x padded head
# size: 32 heads of 128); more heads split over grid axis 1.
MAX_TILE = 4096
# Pointer mode, many tokens: BLOCK_T tokens a program so that it reads about PROGRAM_BYTES of key
# and value, threads holding VECTORS_LARGE 16-byte vectors of each tensor (copies) or one (fp8: the
# conversion wants more threads). H100 sweep (benchmarks/results/h100/sweep_kv_cache.md, 8 heads of
# 128, bf16, PDL on): T = 4096 one token a program, 1 warp 12.47 µs against 14.55 for the 4 tokens x 4
# warps first guessed (16 KB a program); T = 32768 93-94 µs for every config; fp8 one token x 4 warps
# best at T = 4096 (10.83 µs) and 32768 (68.95, 8 warps 77.8). Small heads (H = 4 of 64: 512-byte
# tiles) still take several tokens a program. Few tokens (a grid of fewer than SMALL_WAVES programs
# an SM): one token a program, one vector a thread (T = 1 0.90 µs, T = 256 1.98 at 4 warps).
PROGRAM_BYTES = 4096
VECTORS_SMALL, VECTORS_LARGE, VECTORS_FP8 = 1, 4, 1
SMALL_WAVES = 4
MAX_BLOCK_T = 8
# Descriptor mode: a program waits out its TMA copies (see ops/rotary.py): small programs
DESCRIPTOR_WARPS = 2

_plans: dict = {}
# Prepared launches keyed on every operand fact except the token counts (T, n): the facts tuple of
# reshape_and_cache_flash -> _remember's entry. Filled by the fast branch of reshape_and_cache_into
# after it launched (under the interpreter an entry keeps a copy's stand-in key tensor).
_memo = LaunchMemo()
_COPY_NAMES = frozenset(k for k, v in KV_CACHE_DTYPES.items() if FP8_KIND.get(v, 0) == 0)


def clear_memo() -> None:
    _memo.clear()


def kv_config(H: int, D: int, elem_bytes: int, small: bool, fp8: bool = False) -> tuple[int, int, int, int, int]:
    """(BLOCK_T, BLOCK_H, groups, BLOCK_D, num_warps) from the model's shape, the key's element size,
    whether the token count is small and whether the cache is fp8; never from the data."""
    block_d = triton.next_power_of_2(D)
    block_h = min(triton.next_power_of_2(H), max(1, MAX_TILE // block_d))
    groups = -(-H // block_h)
    tile_bytes = block_h * block_d * elem_bytes
    if small:
        block_t, per_thread = 1, VECTORS_SMALL
    else:
        block_t = 1 << max(0, min(MAX_BLOCK_T.bit_length() - 1, (PROGRAM_BYTES // (2 * tile_bytes)).bit_length() - 1))
        per_thread = VECTORS_FP8 if fp8 else VECTORS_LARGE
    vectors = max(1, block_t * tile_bytes // 16)
    warps = 1 << max(0, min(3, (vectors // (32 * per_thread)).bit_length() - 1))  # power of two, 1..8
    return block_t, block_h, groups, block_d, warps


def _plan(key):
    """(token limit of the small config, small config, large config, use PDL, u8 view) for one plan
    key, cached; a config is (BLOCK_T, groups, pointer-mode constexprs, num_warps, launcher meta
    id). u8 view: the fp8 cache must reach the kernel as a uint8 view (a GPU without a native fp8
    cast, where Triton refuses float8_e4m3fn pointers below sm89): only the careful path does that.
    None when the key's facts are invalid (the careful path then explains)."""
    H, D, kdt, cdt, sdt, kv_dtype, has_scale, pdl, dev = key
    if kdt not in FLOAT_DTYPES or sdt not in SLOT_DTYPES or H <= 0 or D <= 0 or kv_dtype not in KV_CACHE_DTYPES:
        return None
    want = KV_CACHE_DTYPES[kv_dtype]
    fp8 = FP8_KIND.get(want, 0)
    if not (cdt is (want or kdt) or (fp8 and cdt is torch.uint8)):
        return None
    has_scale = has_scale and fp8 > 0
    use_pdl = resolve_pdl(pdl, dev)
    soft = fp8 > 0 and not fp8_cast_native(dev)  # fp8 bits from integer arithmetic (kernels/kv_cache.py)
    u8_view = soft and cdt is not torch.uint8 and not is_interpreter()
    sct = _F32 if has_scale else kdt  # no scale: the kernel gets key as a stand-in pointer it never reads
    configs = []
    for small in (True, False):
        block_t, block_h, groups, block_d, warps = kv_config(H, D, kdt.itemsize, small, fp8 > 0)
        consts = (H, D, fp8, has_scale, soft, block_t, block_h, block_d, _access.POINTER, use_pdl, False)
        meta = _launch.meta_id(consts, warps, 1, (kdt, kdt, cdt, cdt, sdt, sct, sct), use_pdl)
        configs.append((block_t, groups, consts, warps, meta))
    limit = SMALL_WAVES * num_sms(max(dev, 0)) * configs[1][0]
    plan = _plans[key] = (limit, configs[0], configs[1], use_pdl, u8_view)
    return plan


# ---------------------------------------------------------------- checks (no data: fake tensors too)

def _check_scale(scale, name: str, H: int, key) -> None:
    check_tensor(scale, name)
    if scale.dtype != torch.float32:
        raise TypeError(f"{name}.dtype={scale.dtype} must be torch.float32")
    check_same_device(scale, name, key, "key")
    if scale.numel() != 1 and tuple(scale.shape) != (H,):
        raise ValueError(f"{name}.shape={tuple(scale.shape)} must hold 1 element (per tensor) or be [H] = [{H}] "
                         f"(per head)")


def check_reshape_and_cache(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype="auto",
                            k_scale=None, v_scale=None) -> tuple[int, int]:
    """Shape/dtype/device/stride checks of reshape_and_cache_flash (fake tensors too). Returns
    (fp8 kind: 0 copy, 1 e4m3, 2 e5m2; whether the scales are used)."""
    for t, name in ((key, "key"), (value, "value"), (key_cache, "key_cache"), (value_cache, "value_cache"),
                    (slot_mapping, "slot_mapping")):
        check_tensor(t, name)
    if key.dtype not in FLOAT_DTYPES:
        raise TypeError(f"key.dtype={key.dtype} is not supported; expected float16, bfloat16 or float32")
    if key.dim() != 3:
        raise ValueError(f"key must be [T, H, D], got shape {tuple(key.shape)}")
    if value.dtype != key.dtype:
        raise TypeError(f"value.dtype={value.dtype} must equal key.dtype={key.dtype}")
    if value.shape != key.shape:
        raise ValueError(f"value.shape={tuple(value.shape)} must equal key.shape={tuple(key.shape)}")
    T, H, D = key.shape
    if key_cache.dim() != 4 or tuple(key_cache.shape[2:]) != (H, D):
        raise ValueError(f"key_cache.shape={tuple(key_cache.shape)} must be [num_blocks, block_size, H, D] with "
                         f"[H, D] = {[H, D]} from key")
    if value_cache.dtype != key_cache.dtype:
        raise TypeError(f"value_cache.dtype={value_cache.dtype} must equal key_cache.dtype={key_cache.dtype}")
    if value_cache.shape != key_cache.shape:
        raise ValueError(f"value_cache.shape={tuple(value_cache.shape)} must equal "
                         f"key_cache.shape={tuple(key_cache.shape)}")
    if value_cache.stride() != key_cache.stride():
        raise ValueError(f"value_cache.stride()={value_cache.stride()} must equal key_cache.stride()="
                         f"{key_cache.stride()}: the kernel addresses both caches with one set of strides")
    for t, name in ((value, "value"), (key_cache, "key_cache"), (value_cache, "value_cache"),
                    (slot_mapping, "slot_mapping")):
        check_same_device(t, name, key, "key")
    if slot_mapping.dtype not in SLOT_DTYPES:
        raise TypeError(f"slot_mapping.dtype={slot_mapping.dtype} must be torch.int64 or torch.int32")
    if slot_mapping.dim() != 1 or slot_mapping.shape[0] > T:
        raise ValueError(f"slot_mapping.shape={tuple(slot_mapping.shape)} must be [n] with n <= T = "
                         f"key.shape[0] = {T}")
    for t, name in ((key, "key"), (value, "value"), (key_cache, "key_cache")):
        check_last_contiguous(t, name)
    if not isinstance(kv_cache_dtype, str) or kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ValueError(f"kv_cache_dtype={kv_cache_dtype!r} is not supported; expected one of "
                         f"{list(KV_CACHE_DTYPES)}")
    want = KV_CACHE_DTYPES[kv_cache_dtype]
    fp8 = FP8_KIND.get(want, 0)
    if fp8:
        if key_cache.dtype not in (want, torch.uint8):
            raise TypeError(f"key_cache.dtype={key_cache.dtype} must be {want} or torch.uint8 for "
                            f"kv_cache_dtype={kv_cache_dtype!r}")
        if (k_scale is None) != (v_scale is None):
            raise ValueError("k_scale and v_scale must both be tensors or both be None (None: scale 1)")
        if k_scale is not None:
            _check_scale(k_scale, "k_scale", H, key)
            _check_scale(v_scale, "v_scale", H, key)
    elif key_cache.dtype != (want or key.dtype):
        raise TypeError(f"key_cache.dtype={key_cache.dtype} must be {want or key.dtype} for kv_cache_dtype="
                        f"{kv_cache_dtype!r}" + (" (key's dtype)" if want is None else ""))
    return fp8, fp8 > 0 and k_scale is not None


# ---------------------------------------------------------------- the op

def _scale_stride(scale, H: int):
    """0 for one scale (per tensor), the stride of a per-head [H] scale, None for anything else."""
    if scale.numel() == 1:
        return 0
    return scale.stride(0) if scale.shape == (H,) else None


def reshape_and_cache_into(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, k_scale, v_scale,
                           access, validate=False, pdl=None, memo_facts=None) -> None:
    """key_cache, value_cache <- the tokens' rows at their slots, in place; checks, then one launch.

    The fast branch asks each fact once (this CPU machine: a dtype, a shape, a stride() or a
    get_device() 70-120 ns each, stride(0) twice a stride()[0]; ops/norm.py measured 0.1-0.9 µs an
    operation on the H100 hosts) and reads no scale for a copy: 3.9 µs of Python here against
    rms_norm's 2.2, Launcher.fast excluded. memo_facts: the public function's _memo key for these
    operands; a launch from the fast branch is remembered under it."""
    if (type(key) is _Tensor and type(value) is _Tensor and type(key_cache) is _Tensor
            and type(value_cache) is _Tensor and type(slot_mapping) is _Tensor and type(kv_cache_dtype) is str
            and validate is False and (pdl is None or type(pdl) is bool)
            and (access is None and _access._default == _access.POINTER
                 or type(access) is str and access == "pointer")):
        dev = key.get_device()
        kdt = key.dtype
        cdt = key_cache.dtype
        kshape = key.shape
        if ((dev >= 0 or cpu_interpreted(key, value, key_cache, value_cache) and slot_mapping.is_cpu)
                and value.get_device() == dev and key_cache.get_device() == dev
                and value_cache.get_device() == dev and slot_mapping.get_device() == dev
                and value.dtype is kdt and value_cache.dtype is cdt and len(kshape) == 3):
            cshape = key_cache.shape
            cs = key_cache.stride()
            ks = key.stride()
            vs = value.stride()
            sshape = slot_mapping.shape
            if (len(cshape) == 4 and value.shape == kshape and value_cache.shape == cshape
                    and value_cache.stride() == cs and cs[3] == 1 and ks[2] == 1 and vs[2] == 1
                    and cshape[2] == kshape[1] and cshape[3] == kshape[2] and len(sshape) == 1
                    and 0 < sshape[0] <= kshape[0]):
                pkey = (kshape[1], kshape[2], kdt, cdt, slot_mapping.dtype, kv_cache_dtype, k_scale is not None,
                        pdl, dev)
                plan = _plans.get(pkey)
                if plan is None:
                    plan = _plan(pkey)
                if plan is not None and not plan[4]:
                    n = sshape[0]
                    block_t, groups, consts, warps, meta = plan[1] if n <= plan[0] else plan[2]
                    ksp = vsp = key  # stand-ins the kernel never reads (copies, fp8 without scales)
                    sks = svs = 0
                    ok = True
                    if consts[3]:  # fp8 with scales: per tensor (1 element, any shape) or per head ([H], strided)
                        ok = (type(k_scale) is _Tensor and type(v_scale) is _Tensor and k_scale.dtype is _F32
                              and v_scale.dtype is _F32 and k_scale.get_device() == dev and v_scale.get_device() == dev
                              and (dev >= 0 or k_scale.is_cpu and v_scale.is_cpu))
                        if ok:
                            ksp, vsp = k_scale, v_scale
                            sks, svs = _scale_stride(k_scale, kshape[1]), _scale_stride(v_scale, kshape[1])
                            ok = sks is not None and svs is not None
                    elif consts[2] and v_scale is not None:
                        ok = False  # fp8, v_scale without k_scale: the careful path refuses it
                    if ok:
                        grid0 = n if block_t == 1 else -(-n // block_t)
                        args = (key, value, key_cache, value_cache, slot_mapping, n, ksp, vsp, cshape[0], cshape[1],
                                ks[0], ks[1], vs[0], vs[1], cs[0], cs[1], cs[2], slot_mapping.stride()[0], sks, svs)
                        if not _launch.fast(dev, meta, grid0, groups, *args):
                            _launch(dev, (grid0, groups), args, consts, num_warps=warps, pdl=plan[3])
                        if memo_facts is not None:
                            _remember(memo_facts, plan, n <= plan[0], dev, args, kshape[1], kshape[2], groups)
                        return
    _careful(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, k_scale, v_scale, access, validate,
             pdl)


def _remember(facts, plan, small: bool, dev: int, args: tuple, H: int, D: int, groups: int) -> None:
    """Store the launch the fast branch just made under the public function's operand facts:
    [small-config token limit, H, D, groups, small BLOCK_T, its bound launch, large BLOCK_T, its
    bound launch, scales read]. Each config's launch is bound once it has run (bind returns None
    before); a call whose config is not bound yet takes the fast branch and binds it."""
    memo = _memo.entry(facts, lambda: [plan[0], H, D, groups, plan[1][0], None, plan[2][0], None, plan[1][2][3]])
    if memo[5 if small else 7] is None:
        _, _, consts, warps, _ = plan[1] if small else plan[2]
        # key, value, caches, slots and n change; so do the scales where the kernel reads them,
        # else their stand-in pointers (never dereferenced) stay bound
        memo[5 if small else 7] = _launch.bind(dev, args, consts, warps, plan[3], vary=8 if memo[8] else 6)


def _careful(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, k_scale, v_scale, access, validate,
             pdl) -> None:
    fp8, has_scale = check_reshape_and_cache(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype,
                                             k_scale, v_scale)
    check_runnable(key, "key")
    if type(validate) is not bool:
        raise TypeError(f"validate must be a bool, got {type(validate).__name__}")
    dev = key.get_device()
    use_pdl = resolve_pdl(pdl, dev)  # also refuses a pdl that is not a bool or None
    n = slot_mapping.shape[0]
    T, H, D = key.shape
    nb, bs = key_cache.shape[:2]
    if validate and n > 0:  # the one place that synchronises with the device
        bad = slot_mapping >= nb * bs
        if bool(bad.any()):
            raise ValueError(f"slot_mapping holds {int(bad.sum())} slot(s) >= the caches' capacity {nb} blocks x "
                             f"{bs} = {nb * bs} (largest {int(slot_mapping.max())}); validate=True refuses them, "
                             f"validate=False skips them")
    if n == 0 or H * D == 0 or nb * bs == 0:  # nothing to read or nowhere to write
        _access.resolve(access, [])  # still refuses an unknown access
        return
    plan = _plan((H, D, key.dtype, key_cache.dtype, slot_mapping.dtype, kv_cache_dtype, has_scale, use_pdl, dev))
    assert plan is not None  # the checks above refuse every invalid key
    cfg = plan[1] if n <= plan[0] else plan[2]
    block_d, cs = cfg[2][7], key_cache.stride()
    ks, vs = key.stride(), value.stride()
    mode = _access.resolve(access, [("key", key, [ks[0], ks[1]], block_d), ("value", value, [vs[0], vs[1]], block_d),
                                    ("key_cache", key_cache, list(cs[:3]), block_d),
                                    ("value_cache", value_cache, list(cs[:3]), block_d)])
    # TMA describes dims outermost stride first: HND's descriptor is over [nb, H, bs, D] (HEAD_MAJOR)
    head_major = cs[2] > cs[1]
    block_h = cfg[2][6]
    if mode == _access.DESCRIPTOR and (not cs[0] >= max(cs[1], cs[2]) or block_h > 256):
        if access is not None:
            raise ValueError(f"access={access!r} cannot serve this call: TMA needs the caches' block stride to be "
                             f"their largest and boxes of at most 256 heads, got key_cache.stride()={cs} and "
                             f"{block_h} heads a box")
        mode = _access.POINTER  # the default never fails for a reason of addressing
    if mode != _access.POINTER:  # one token a program: a box a store (kernels/access.py store_rows_4d)
        cfg = plan[1]
    block_t, groups, consts, warps, _ = cfg
    if plan[4]:
        key_cache, value_cache = key_cache.view(torch.uint8), value_cache.view(torch.uint8)
    consts = consts[:8] + (mode, use_pdl, head_major and mode == _access.DESCRIPTOR)
    ksp, vsp = (k_scale, v_scale) if has_scale else (key, key)
    sks = 0 if not has_scale or k_scale.numel() == 1 else k_scale.stride(0)
    svs = 0 if not has_scale or v_scale.numel() == 1 else v_scale.stride(0)
    rest = (n, ksp, vsp, nb, bs, ks[0], ks[1], vs[0], vs[1], cs[0], cs[1], cs[2], slot_mapping.stride(0), sks, svs)
    grid = (-(-n // block_t), groups)
    if mode != _access.DESCRIPTOR:
        _launch(dev, grid, (key, value, key_cache, value_cache, slot_mapping, *rest), consts, num_warps=warps,
                pdl=use_pdl)
        return
    from triton.tools.tensor_descriptor import TensorDescriptor

    def rows(t, s):
        return TensorDescriptor(t, [n, H, D], [s[0], s[1], 1], [1, block_h, block_d])

    def cache(t):
        if head_major:
            return TensorDescriptor(t, [nb, H, bs, D], [cs[0], cs[2], cs[1], 1], [1, block_h, 1, block_d])
        return TensorDescriptor(t, [nb, bs, H, D], [cs[0], cs[1], cs[2], 1], [1, 1, block_h, block_d])
    _launch_desc(dev, grid, (rows(key, ks), rows(value, vs), cache(key_cache), cache(value_cache), slot_mapping, *rest),
                 consts, num_warps=DESCRIPTOR_WARPS, pdl=use_pdl)


def reshape_and_cache_flash(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor,
                            value_cache: torch.Tensor, slot_mapping: torch.Tensor, kv_cache_dtype: str = "auto",
                            k_scale: torch.Tensor | None = None, v_scale: torch.Tensor | None = None, *,
                            access: str | None = None, validate: bool = False, pdl: bool | None = None) -> None:
    """Write each token's key and value rows into a paged KV cache, in place (vLLM's op). Returns None.

    key, value [T, H, D] float16/bfloat16/float32, token and head strides free (slices of a
    [T, 3, H, D] qkv tensor are fine), last dim contiguous. key_cache, value_cache logical
    [num_blocks, block_size, H, D] with equal strides and a contiguous last dim, the leading dims in
    any physical order: NHD ([nb, bs, H, D]) and HND ([nb, H, bs, D] transposed to that view) alike.
    slot_mapping int64 or int32 [n], n <= T: token t < n goes to block slot // block_size, offset
    slot % block_size; tokens past n (CUDA-graph padding) are not read; a negative slot is skipped;
    a slot at or beyond num_blocks * block_size is never written (validate=True makes the host
    raise on it instead, at the cost of a device synchronisation).

    kv_cache_dtype: "auto" (the cache holds key's dtype), "bfloat16" / "float16" / "float32" (the
    cache holds that dtype; key is rounded once to it): copies, bit-exact when the dtypes match.
    "fp8" / "fp8_e4m3" and "fp8_e5m2": the cache holds float8_e4m3fn / float8_e5m2 bits (the cache
    tensor is that dtype or uint8) of x / scale in fp32 (IEEE division), saturated to +-448 /
    +-57344 (inf saturates, NaN stays NaN), rounded to nearest even. k_scale, v_scale: float32 with
    one element (per tensor) or [H] (per head), both or neither (None: scale 1); read only for
    fp8. pdl: programmatic dependent launch (None: where the GPU has it, sm90+); never changes a
    result. Valid slots must be distinct (as in vLLM).

    >>> kc = torch.zeros(64, 16, 8, 128, dtype=torch.bfloat16, device="cuda"); vc = torch.zeros_like(kc)
    >>> k, v = torch.randn(2, 3, 8, 128, dtype=torch.bfloat16, device="cuda")
    >>> lmkernels.reshape_and_cache_flash(k, v, kc, vc, torch.tensor([0, 17, 40], device="cuda"))
    """
    facts = None
    if (type(key) is _Tensor and type(value) is _Tensor and type(key_cache) is _Tensor
            and type(value_cache) is _Tensor and type(slot_mapping) is _Tensor and validate is False
            and type(kv_cache_dtype) is str and (access is None or type(access) is str)
            and (pdl is None or type(pdl) is bool) and not _is_compiling()):
        # The memo: every operand fact the launch depends on except the token counts, one dict
        # lookup instead of the fast branch's ~20 comparisons, plan lookup and launcher key. A copy
        # never reads its scales (any objects pass, as on the careful path), so it asks them nothing.
        if kv_cache_dtype in _COPY_NAMES or k_scale is None and v_scale is None:
            scales = None
        elif type(k_scale) is _Tensor and type(v_scale) is _Tensor:
            scales = (k_scale.get_device(), v_scale.get_device(), k_scale.dtype, v_scale.dtype, k_scale.shape,
                      v_scale.shape, k_scale.stride(), v_scale.stride())
        else:
            scales = False  # one scale given: the careful path refuses it
        if scales is not False:
            facts = (key.get_device(), value.get_device(), key_cache.get_device(), value_cache.get_device(),
                     slot_mapping.get_device(), key.dtype, value.dtype, key_cache.dtype, value_cache.dtype,
                     slot_mapping.dtype, key.stride(), value.stride(), key_cache.shape, key_cache.stride(),
                     value_cache.shape, value_cache.stride(), slot_mapping.stride(), kv_cache_dtype, scales, access,
                     _access._default, pdl)
            last = _memo.last
            memo = last[1] if facts == last[0] else _memo.find(facts)
            if memo is not None:
                kshape = key.shape
                n = slot_mapping.shape[0]  # rank 1, and key's rank 3: their strides are in the facts
                if 0 < n <= kshape[0] and kshape[1] == memo[1] and kshape[2] == memo[2] and value.shape == kshape:
                    block_t, go = (memo[4], memo[5]) if n <= memo[0] else (memo[6], memo[7])
                    if go is not None and (
                            go(n if block_t == 1 else -(-n // block_t), memo[3], key, value, key_cache, value_cache,
                               slot_mapping, n, k_scale, v_scale) if memo[8] else
                            go(n if block_t == 1 else -(-n // block_t), memo[3], key, value, key_cache, value_cache,
                               slot_mapping, n)):
                        return
    check_tensor(key, "key")
    if use_dispatcher(key):
        torch.ops.lmkernels.reshape_and_cache_flash(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype,
                                                    k_scale, v_scale, access, validate, pdl)
        return
    reshape_and_cache_into(key, value, key_cache, value_cache, slot_mapping, kv_cache_dtype, k_scale, v_scale, access,
                           validate, pdl, facts)
