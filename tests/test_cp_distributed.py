"""cp_lse_ag_out_rs and cp_lse_ag_out_ar across real processes: gloo on the CPU (2 and 4 ranks,
kernels under the interpreter in every child) and NCCL with one GPU a rank where there are two.

Each rank holds the same queries and its shard of a KV sequence (token i on rank i % W, vLLM's
interleave; fewer keys than ranks leaves a rank empty, whose output then holds NaN). It computes
its partial attention and LSE with the float64 reference attention, rounds them as an attention
kernel would (output to the dtype, LSE to fp32), combines with the op, and compares with the
float64 full attention over the whole sequence, for the heads it keeps.
"""
import datetime
import os
import time

import pytest
import torch
import torch.multiprocessing as mp

from test_context_parallel import ATTN_SPREAD, SLACK, _assert_close

# Allowed error (besides _assert_close's 1 ulp of the final rounding), per element, in units of
# bound = sum_r exp(l_r - L) |o_r| (each rank's share of the output, float64):
#   (W + 1) u: the rank's output rounded to the dtype (u), the op's one rounding (u), and the W - 1
#   roundings of partial sums in the dtype inside the reduce-scatter / all-reduce (NCCL's ring adds
#   and rounds at each hop; gloo likewise or better), u = 2^-mantissa (the interpreter truncates);
#   SLACK (W + ATTN_SPREAD): the fp32 weights (tests/test_context_parallel.py derives it).
MANTISSA = {torch.float32: 23, torch.float16: 10, torch.bfloat16: 7}
NCCL_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
TIMEOUT_S = 300  # whole spawn, children's imports included (2 CPU cores: ~3 s of torch import a child)


def _case_inputs(rank, world, device, c):
    """(q, k, v) float64, identical on every rank (one seed), and this rank's rounded partial state."""
    from lmkernels.reference.context_parallel import attention_with_lse
    gen = torch.Generator(device=device).manual_seed(c["seed"])
    HW = c["H"] * world
    q = torch.randn(c["B"], HW, c["D"], generator=gen, device=device, dtype=torch.float64)
    k = torch.randn(c["B"], c["S"], c["Hkv"], c["D"], generator=gen, device=device, dtype=torch.float64)
    v = torch.randn(c["B"], c["S"], c["Hkv"], c["D"], generator=gen, device=device, dtype=torch.float64)
    parts = [attention_with_lse(q, k[:, r::world], v[:, r::world], lse_base_e=c["base_e"]) for r in range(world)]
    o, lse = parts[rank]
    o_in = o.to(c["dtype"])
    if c["S"] <= rank:  # no keys here: an attention kernel's output is garbage, its LSE -inf
        o_in.fill_(float("nan"))
    return q, k, v, parts, o_in, lse.float()


def _run_case(rank, world, device, group, c) -> None:
    import torch.distributed as dist

    import lmkernels
    from lmkernels.ops import context_parallel as cp_ops
    from lmkernels.reference.context_parallel import attention_with_lse
    q, k, v, parts, o_in, lse_in = _case_inputs(rank, world, device, c)
    o_before = o_in.clone()
    fn = lmkernels.cp_lse_ag_out_rs if c["op"] == "rs" else lmkernels.cp_lse_ag_out_ar
    saved = {}
    if c.get("fallback") == "probe":  # the backend "lacks" both collectives: raises as old gloo did
        def refuse(*_a, **_k):
            raise RuntimeError("ProcessGroupGloo does not support this collective")
        for name in ("reduce_scatter_single", "reduce_scatter_tensor", "all_gather_single", "all_gather_into_tensor"):
            if hasattr(dist, name):
                saved[name] = getattr(dist, name)
                setattr(dist, name, refuse)
    elif c.get("fallback") == "declared":
        cp_ops.LACKS_REDUCE_SCATTER.add(str(dist.get_backend(group)))
        cp_ops.LACKS_ALL_GATHER.add(str(dist.get_backend(group)))
    try:
        res = fn(o_in, lse_in, group, return_lse=c["return_lse"], lse_base_e=c["base_e"])
        if c.get("fallback"):
            assert str(dist.get_backend(group)) in cp_ops.LACKS_REDUCE_SCATTER, "the fallback was not taken"
    finally:
        for name, f in saved.items():
            setattr(dist, name, f)
        cp_ops.LACKS_REDUCE_SCATTER.clear()
        cp_ops.LACKS_ALL_GATHER.clear()
    out, lse = res if c["return_lse"] else (res, None)
    assert torch.equal(o_in.nan_to_num(7.0), o_before.nan_to_num(7.0)), "cp_attn_out was written"
    H = c["H"]
    heads = slice(rank * H, (rank + 1) * H) if c["op"] == "rs" else slice(None)
    full, full_lse = attention_with_lse(q, k, v, lse_base_e=c["base_e"])
    assert out.shape == full[:, heads].shape and out.dtype == c["dtype"] and out.is_contiguous()
    exp = torch.exp if c["base_e"] else torch.exp2
    bound = sum(exp(lr - full_lse)[..., None] * orr.abs() for orr, lr in parts)[:, heads]
    u = 2.0**-MANTISSA[c["dtype"]]
    what = f"rank {rank}/{world} {c}"
    _assert_close(out, full[:, heads], ((world + 1) * u + SLACK * (world + ATTN_SPREAD)) * bound, what)
    if lse is not None:
        assert lse.shape == full_lse[:, heads].shape
        _assert_close(lse, full_lse[:, heads], SLACK * (world + ATTN_SPREAD), what + " lse")


def _run_checks(rank, world, device, c) -> None:
    """World size 1 returns the inputs themselves; bad inputs raise on every rank before any collective."""
    import torch.distributed as dist

    import lmkernels
    _, _, _, _, o_in, lse_in = _case_inputs(rank, world, device, c)
    single, _ = dist.new_subgroups(group_size=1)
    assert lmkernels.cp_lse_ag_out_rs(o_in, lse_in, single) is o_in
    got = lmkernels.cp_lse_ag_out_ar(o_in, lse_in, single, return_lse=True)
    assert got[0] is o_in and got[1] is lse_in
    bad_heads = torch.zeros(c["B"], c["H"] * world + 1, c["D"], dtype=o_in.dtype, device=device)
    try:
        lmkernels.cp_lse_ag_out_rs(bad_heads, torch.zeros(bad_heads.shape[:2], device=device), dist.group.WORLD)
        raise AssertionError("heads not divisible by the world size were accepted")
    except ValueError as e:
        assert f"must be a multiple of the group's world size {world}" in str(e), e
    try:
        lmkernels.cp_lse_ag_out_ar(o_in, lse_in[:, :-1], dist.group.WORLD)
        raise AssertionError("a mismatched cp_attn_lse was accepted")
    except ValueError as e:
        assert "cp_attn_lse.shape" in str(e), e


def _worker(rank, world, backend, store, cases) -> None:
    os.environ.update(NCCL_ENV)  # before the process group exists (NVLink multicast stays off)
    import torch.distributed as dist
    if backend == "nccl":
        torch.cuda.set_device(rank)
        device = f"cuda:{rank}"
    else:
        device = "cpu"
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    try:
        _run_checks(rank, world, device, cases[0])
        for c in cases:
            _run_case(rank, world, device, dist.group.WORLD, c)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _spawn(world, backend, cases, tmp_path) -> None:
    ctx = mp.spawn(_worker, args=(world, backend, str(tmp_path / "store"), cases), nprocs=world, join=False)
    deadline = time.monotonic() + TIMEOUT_S
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
            pytest.fail(f"{backend} world {world}: no result within {TIMEOUT_S} s")


def _cases(dtypes, B, H, D, S, Hkv, seed0=0, fallbacks=True):
    """Both ops for every dtype (rs with its LSE, ar without); for the last dtype base-2 LSEs, a
    sequence of one key (every rank but 0 empty) and, with `fallbacks`, the collectives' fallbacks:
    declared (the backend listed as lacking them) and probed (the native call raises as old gloo's did)."""
    cases = []
    for i, dtype in enumerate(dtypes):
        for op in ("rs", "ar"):
            cases.append(dict(op=op, dtype=dtype, B=B, H=H, D=D, S=S, Hkv=Hkv, return_lse=op == "rs", base_e=True,
                              seed=seed0 + 10 * i + len(cases)))
    base = dict(dtype=dtypes[-1], B=B, H=H, D=D, Hkv=Hkv, S=S)
    cases += [dict(base, op="ar", return_lse=True, base_e=False, seed=seed0 + 101),
              dict(base, op="rs", return_lse=True, base_e=False, seed=seed0 + 105, S=1)]
    if fallbacks:
        cases += [dict(base, op="rs", return_lse=True, base_e=True, seed=seed0 + 102, fallback="declared"),
                  dict(base, op="ar", return_lse=True, base_e=True, seed=seed0 + 103, fallback="declared"),
                  dict(base, op="rs", return_lse=False, base_e=True, seed=seed0 + 104, fallback="probe")]
    return cases


@pytest.mark.parametrize("world", [2, 4])
def test_gloo_cpu(world, tmp_path, monkeypatch):
    """Small shapes: D = 80 (no power of two), 3 q heads a rank over 1 kv head (GQA), 7 keys (an
    uneven split). World 2 runs every dtype and the fallbacks (~7 s on 2 cores); world 4, four
    processes on 2 cores, bf16 without the fallbacks (~10 s, half of it the children's imports)."""
    for k, v in NCCL_ENV.items():
        monkeypatch.setenv(k, v)
    # CPU ranks run their kernels under the interpreter on any machine (on a GPU machine the parent
    # runs compiled; spawned children read the environment afresh)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    dtypes = [torch.float32, torch.float16, torch.bfloat16] if world == 2 else [torch.bfloat16]
    _spawn(world, "gloo", _cases(dtypes, 2, 3, 80, 7, 1, fallbacks=world == 2), tmp_path)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL across GPUs needs two GPUs in this machine")
def test_nccl_two_gpus(tmp_path, monkeypatch):
    """Two GPUs, one a rank, NVLink multicast off: 32 heads a rank of 128, GQA 8 kv heads, 4096 keys."""
    for k, v in NCCL_ENV.items():
        monkeypatch.setenv(k, v)
    _spawn(2, "nccl", _cases([torch.float32, torch.bfloat16], 8, 32, 128, 4096, 8, seed0=1000), tmp_path)
