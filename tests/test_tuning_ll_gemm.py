"""`lmkernels tune ll-gemm` (tuning/ll_gemm.py): its search space, a fake-timed run that writes a
table with cuBLAS's time beside each M, the reference check of the winner, resuming, the real op
under the interpreter, and how ll_gemm and linear read the tables (ops/small_gemm.py)."""
import argparse
import json
import os
import zlib

import pytest
import torch

from lmkernels import cli
from lmkernels import reference as ref
from lmkernels.ops import small_gemm as sg
from lmkernels.runtime import config_store as cs
from lmkernels.tuning import common
from lmkernels.tuning import ll_gemm as t

GPU = "Fake GPU 80GB"
ROUTERS = [(256, 7168), (384, 7168), (128, 5120), (8, 4096), (64, 2880)]  # (N, K)


def fake_us(cfg) -> float:
    """A deterministic, practically tie-free time per config."""
    return 2.0 + zlib.crc32(t.describe(cfg).encode()) % 100000 / 1e5


class Fake:
    """A target whose op is the reference (wrong by 1 % for configs in `bad`) and whose timer returns
    fake_us of the config a call carries; cuBLAS (the peers) takes `cublas_us`."""

    def __init__(self, bad=(), cublas_us=2.5, **kw):
        self.bad, self.cublas_us = set(bad), cublas_us
        self.timed = []
        self.target = t.Target(op=self.op, heuristic=self.heuristic, normalize=sg.check_config, timer=self.timer,
                               peers=self.peers, device="cpu", gpu=GPU, num_sms=8, **kw)

    @staticmethod
    def heuristic(M, N, K, elem_bytes):
        return sg.ll_gemm_config(M, N, K, elem_bytes, 8)

    def op(self, x, w, *, out_dtype, x_scale=None, w_scale=None, config=None):
        out = ref.small_gemm.ll_gemm(x, w, out_dtype=out_dtype, x_scale=x_scale, w_scale=w_scale)
        return out * 1.01 if t.describe(config) in self.bad else out

    def peers(self, x, w, xs, ws):
        return [lambda: "cublas"]

    def timer(self, calls, reps):
        assert calls and reps >= 3
        cfg = calls[0].keywords.get("config") if hasattr(calls[0], "keywords") else None
        self.timed.append(calls[0].args[0].shape[0] if cfg is not None else None)  # M: x is [M, K]
        return self.cublas_us if cfg is None else fake_us(cfg)


def quiet():
    return common.Progress(stream=open(os.devnull, "w"))


def run(fake, tmp_path, jobs=((64, 512, "bf16"),), ms=(1, 2, 16), **kw):
    return t.tune(list(jobs), ms, str(tmp_path), fake.target, progress=quiet(), log=lambda *a: None, **kw)


def load(tmp_path, N=64, K=512, dtype="bf16"):
    with open(tmp_path / "ll_gemm" / cs.file_name(N, K, GPU, dtype)) as f:
        return json.load(f)


def winner(M, N=64, K=512, skip=()):
    cands = t.candidates(M, N, K, num_sms=8, heuristic=Fake.heuristic(M, N, K, 2), normalize=sg.check_config)
    return min((c for c in cands if t.describe(c) not in skip), key=fake_us)


# ---- the search space -------------------------------------------------------------------------

@pytest.mark.parametrize("N, K", ROUTERS + [(3, 17), (100, 1000), (1, 14400)])
@pytest.mark.parametrize("M", [1, 2, 3, 5, 8, 9, 16])
@pytest.mark.parametrize("elem", [2, 1])
def test_candidates_are_valid_distinct_and_start_with_the_heuristic(N, K, M, elem):
    heur = sg.ll_gemm_config(M, N, K, elem, 132)
    cands = t.candidates(M, N, K, num_sms=132, heuristic=heur, normalize=sg.check_config, elem_bytes=elem)
    assert cands[0] == sg.check_config(heur, M)
    names = [t.describe(c) for c in cands]
    # at most ~170: M <= 8 doubles the split-K tiles with their transposed twins (163 at 7168 x 384)
    assert len(set(names)) == len(names) and 1 <= len(cands) <= 170
    for c in cands:
        assert sg.check_config(c, M) == c
        assert c["BLOCK_M"] >= M or (sg.m_tiles_ok(c) and c["BLOCK_M"] <= 8), c  # M tiled
        sg._make_plan(M, N, K, torch.bfloat16, torch.float32, None, False, -1, False, c)  # runnable
    if K >= 2048:  # smaller K: too few columns for 4+ warps of rows beyond the heuristic's
        assert any(not c["USE_DOT"] and c["BLOCK_M"] >= M for c in cands[1:]) == (M <= 8)
        # M tiled over programs: from M = 2, grids of at most 4 programs an SM
        tiled = [c for c in cands[1:] if c["BLOCK_M"] < M]
        assert bool(tiled) == (M >= 2)
        assert all(-(-N // c["BLOCK_N"]) * -(-M // c["BLOCK_M"]) <= 4 * 132 for c in tiled)
    assert any(c["USE_DOT"] for c in cands[1:]) == (M >= 2)


def test_split_configs_transposed_twins():
    """Every split-K dot tile also comes transposed with 8 rows (SWAP_AB: x's rows on the mma's n8
    side, probe_swap_ll_gemm.md); above M = 8 the one-launch ones only, as two m-tiles (M_TILED)."""
    for M in (2, 8, 9, 16):
        cfgs = list(t.split_configs(M, 384, 7168, 132))
        plain = [c for c in cfgs if not c.get("SWAP_AB")]
        twins = [dict(c, BLOCK_M=8, SWAP_AB=True) for c in plain if M <= 8 or c["ONE_LAUNCH"]]
        assert plain and twins == [c for c in cfgs if c.get("SWAP_AB")]
        assert any(not c["ONE_LAUNCH"] for c in plain)
        for c in cfgs:
            sg.check_config(c, M)
    assert "swap" in t.describe(dict(next(iter(t.split_configs(8, 256, 7168, 132))), SWAP_AB=True))


def test_split_configs_fill_the_sms_with_whole_k_tiles():
    for c in t.split_configs(16, 256, 7168, 132):
        split, chunk = sg.split_k(7168, c["BLOCK_K"], c["SPLIT_K"])
        assert split == c["SPLIT_K"] and chunk % c["BLOCK_K"] == 0
        assert (-(-256 // c["BLOCK_N"])) * split <= 2 * 132 + 256 // c["BLOCK_N"]
    assert {c["ONE_LAUNCH"] for c in t.split_configs(16, 256, 7168, 132)} == {True, False}
    # DOT_CHAINS beside 1 on the one-launch 16-column tiles only (probe_router_chain_chains.md), 8 chains
    # on 8 warps only; 8 warps for one launch only; the two-launch form from one program an SM
    shapes = {(c["BLOCK_N"], c["ONE_LAUNCH"], c["num_warps"], c["DOT_CHAINS"]) for c in t.split_configs(16, 256, 7168, 132)}
    assert shapes == {(16, True, 4, 1), (16, True, 4, 4), (16, True, 8, 4), (16, True, 8, 8), (16, False, 4, 1),
                      (32, True, 4, 1), (32, True, 8, 1), (32, False, 4, 1)}
    # half an SM's worth of programs, and 1024-deep 16-bit tiles on 16 columns only
    cfgs = list(t.split_configs(16, 256, 7168, 132))
    assert min(-(-256 // c["BLOCK_N"]) * c["SPLIT_K"] for c in cfgs) <= 132 // 2 + 16
    assert {c["BLOCK_K"] for c in cfgs if c["BLOCK_N"] == 16} == {256, 512, 1024}
    assert {c["BLOCK_K"] for c in cfgs if c["BLOCK_N"] == 32} == {256, 512}
    assert all(c["ONE_LAUNCH"] for c in cfgs if -(-256 // c["BLOCK_N"]) * c["SPLIT_K"] < 100)


# ---- a fake-timed run -------------------------------------------------------------------------

def test_picks_the_fastest_and_writes_cublas_beside_it(tmp_path):
    fake = Fake()
    res = run(fake, tmp_path)
    assert res["left"] == [] and len(res["files"]) == 1
    data = load(tmp_path)
    meta = data["_meta"]
    assert meta["op"] == "ll_gemm" and meta["complete"] and meta["m_grid"] == [1, 2, 16]
    for M in (1, 2, 16):
        assert data[str(M)] == winner(M)
        rec = meta["measured"][str(M)]
        assert rec["us"] == round(fake_us(winner(M)), 3) and rec["cublas_us"] == 2.5
        assert rec["heuristic_us"] >= rec["us"]
    table = cs.parse(data, "ll_gemm", "t", expect=(64, 512, "bf16"))  # the op's validator accepts it
    assert table.ms == [1, 2, 16]


def test_a_winner_off_the_reference_is_rejected(tmp_path):
    best = t.describe(winner(2))
    run(Fake(bad={best}), tmp_path, ms=(2,))
    data = load(tmp_path)
    assert data["2"] == winner(2, skip={best})
    assert data["_meta"]["measured"]["2"]["rejected"] == 1


def test_resumes_and_skips_tuned_ms(tmp_path):
    run(Fake(), tmp_path, ms=(1,))
    fake = Fake()
    run(fake, tmp_path, ms=(1, 4))
    assert set(fake.timed) == {4, None}  # M = 1 was not timed again (None: cuBLAS)
    assert sorted(k for k in load(tmp_path) if k != "_meta") == ["1", "4"]


def test_fp8_tables_and_a_peer_that_cannot_run(tmp_path):
    fake = Fake()
    fake.peers = lambda *a: [lambda: None]
    fake.target.peers = fake.peers
    fake.target.timer = lambda calls, reps: fake_us(calls[0].keywords["config"]) if hasattr(
        calls[0], "keywords") else (_ for _ in ()).throw(RuntimeError("_scaled_mm needs N % 16 == 0"))
    run(fake, tmp_path, jobs=((24, 96, "fp8"),), ms=(3,))
    rec = load(tmp_path, 24, 96, "fp8")["_meta"]["measured"]["3"]
    assert rec["cublas_us"] is None and rec["us"] > 0


def test_run_cli_and_the_m_limit(tmp_path, capsys):
    args = argparse.Namespace(nk=[(64, 512)], dtype=["bf16"], m=[1], out=str(tmp_path), max_minutes=None,
                              force=False, compile_workers=0)
    assert t.run_cli(args, target=Fake().target) == 0
    assert "every table is complete" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["tune", "ll-gemm", "--nk", "64,512", "--dtype", "bf16", "--m", "1,32"])
    assert "M <= 16" in capsys.readouterr().err


def bulk_faster(fake):
    """A timer for fake: a config's line form at fake_us, its bulk form (BULK_PREFETCH) 0.5 µs less."""
    def timer(calls, reps):
        if not hasattr(calls[0], "keywords"):
            return fake.timer(calls, reps)
        cfg = calls[0].keywords["config"]
        fake.timed.append(calls[0].args[0].shape[0])
        return fake_us(dict(cfg, BULK_PREFETCH=False)) - (0.5 if cfg.get("BULK_PREFETCH") else 0.0)
    return timer


def test_the_winner_takes_the_faster_prefetch_form(tmp_path):
    """Where PDL runs (bulk_prefetch), a prefetching winner is timed against its BULK_PREFETCH twin in
    interleaved rounds and the faster form kept, if it passes the reference; both times are recorded.
    Fake times: the bulk form 0.5 µs faster, except where it is wrong (then the line form stays)."""
    fake = Fake(bulk_prefetch=True)
    fake.target.timer = bulk_faster(fake)
    run(fake, tmp_path, ms=(1, 2))
    data = load(tmp_path)
    for M in (1, 2):
        win = winner(M)
        assert win["PREFETCH"]  # the router-shaped winners prefetch (else nothing to decide)
        assert data[str(M)] == dict(win, BULK_PREFETCH=True)
        rec = data["_meta"]["measured"][str(M)]
        assert rec["prefetch_forms"] == {"line": round(fake_us(win), 3), "bulk": round(fake_us(win) - 0.5, 3)}
        assert rec["us"] == rec["prefetch_forms"]["bulk"]
    assert "bulk" in t.describe(data["1"])
    # a bulk twin off the reference: the line form stays, its time still recorded
    bad = Fake(bad={t.describe(dict(winner(2), BULK_PREFETCH=True))}, bulk_prefetch=True)
    bad.target.timer = fake.target.timer
    run(bad, tmp_path / "bad", ms=(2,))
    data = load(tmp_path / "bad")
    assert data["2"] == winner(2) and data["_meta"]["measured"]["2"]["us"] == round(fake_us(winner(2)), 3)


def test_prefetch_form_only_rechecks_written_tables(tmp_path):
    """--prefetch-form-only: no search, each written entry timed in both forms; the search's fields
    stay (its seconds as search_seconds), an M the file lacks is refused."""
    run(Fake(), tmp_path, ms=(1, 2))  # tuned without the step (a CPU target: no PDL)
    before = load(tmp_path)
    fake = Fake(bulk_prefetch=True)
    fake.target.timer = bulk_faster(fake)
    args = argparse.Namespace(nk=[(64, 512)], dtype=["bf16"], m=[1, 2], out=str(tmp_path), max_minutes=None,
                              force=False, compile_workers=0, prefetch_form_only=True)
    assert t.run_cli(args, target=fake.target) == 0
    after = load(tmp_path)
    for M in ("1", "2"):
        assert after[M] == dict(sg.check_config(before[M], int(M)), BULK_PREFETCH=True)
        old, new = before["_meta"]["measured"][M], after["_meta"]["measured"][M]
        assert new["search_seconds"] == old["seconds"] and new["candidates"] == old["candidates"]
        assert new["heuristic_us"] == old["heuristic_us"] and new["us"] == new["prefetch_forms"]["bulk"]
        assert new["search_us"] == old["us"] and new["speedup"] == old["speedup"]
    assert set(fake.timed) == {1, 2}  # the entries only: no candidates, no cuBLAS
    fake.timed.clear()
    assert t.run_cli(args, target=fake.target) == 0 and fake.timed == []  # done: the file is not rewritten
    assert load(tmp_path) == after
    args.m = [4]
    with pytest.raises(ValueError, match="no entry for M=4 to recheck"):
        t.run_cli(args, target=fake.target)


# ---- the real op, interpreted -------------------------------------------------------------------

def test_tunes_the_real_op_and_its_winner_passes_the_reference(tmp_path):
    from lmkernels.runtime.device import is_interpreter
    if not is_interpreter():
        pytest.skip("the CPU suite's check; on a GPU `lmkernels tune ll-gemm` is the real run")
    import lmkernels
    target = t.Target(op=lmkernels.ll_gemm, heuristic=Fake.heuristic, normalize=sg.check_config,
                      timer=lambda calls, reps: (calls[0](), 1.0)[1], device="cpu", gpu=GPU, num_sms=4,
                      limit=3)
    res = t.tune([(8, 40, "bf16")], (2,), str(tmp_path), target, progress=quiet(), log=lambda *a: None)
    assert res["left"] == []
    rec = load(tmp_path, 8, 40)["_meta"]["measured"]["2"]
    assert rec["rejected"] == 0 and rec["candidates"] == 3 and rec["cublas_us"] is None


# ---- ll_gemm and linear read the tables ---------------------------------------------------------

def _write_table(root, N, K, dtype, entries):
    """A table for device 0 (device_name=cpu on a machine without CUDA)."""
    measured = {str(m): rec for m, (_, rec) in entries.items()}
    data = {"_meta": {"schema": cs.SCHEMA, "op": "ll_gemm", "N": N, "K": K, "dtype": dtype, "gpu": cs.device_name(0),
                      "torch": "x", "triton": "x", "date": "x", "complete": True, "measured": measured},
            **{str(m): cfg for m, (cfg, _) in entries.items()}}
    os.makedirs(root / "ll_gemm", exist_ok=True)
    with open(root / "ll_gemm" / cs.file_name(N, K, cs.device_name(0), dtype), "w") as f:
        json.dump(data, f)


@pytest.fixture
def tables(tmp_path, monkeypatch):
    monkeypatch.setenv(cs.ENV_DIR, str(tmp_path))
    cs.clear_cache()
    yield tmp_path
    cs.clear_cache()


def test_ll_gemm_takes_the_tuned_config_and_linear_the_faster_kernel(tables):
    N, K = 32, 256
    c2 = dict(sg.ll_gemm_config(2, N, K, 2, 132), num_warps=4)
    c8 = sg.ll_gemm_config(8, N, K, 2, 132)
    _write_table(tables, N, K, "bf16", {2: (c2, {"us": 2.0, "cublas_us": 5.0}), 8: (c8, {"us": 6.0, "cublas_us": 5.0})})
    assert sg.tuned_config(1, N, K, torch.bfloat16, 0) == c2 and sg.tuned_config(5, N, K, torch.bfloat16, 0) == c8
    assert sg.tuned_config(16, N, K, torch.bfloat16, 0) is None  # BLOCK_M 8 < 16: the heuristic
    assert sg.tuned_config(2, N, K, torch.bfloat16, -1) is None  # the CPU device never reads tables
    assert sg.tuned_config(2, N, K, torch.float16, 0) is None  # no fp16 table
    assert sg.use_ll_gemm(2, N, K, torch.bfloat16, 0) and not sg.use_ll_gemm(8, N, K, torch.bfloat16, 0)
    assert sg.use_ll_gemm(16, N, K, torch.bfloat16, 0)  # no bucket of 16 rows: the untuned rule
    assert sg.use_ll_gemm(8, N, K, torch.bfloat16, -1)  # no tables on the CPU device
    assert sg.use_ll_gemm(8, N, K + 1, torch.bfloat16, 0)  # untuned shape: ll_gemm where N <= 2 K ...
    assert not sg.use_ll_gemm(2, 8193, 4096, torch.bfloat16, 0)  # ... cuBLAS for wider weights from M = 2
    assert not sg.use_ll_gemm(2, 8192, 1024, torch.bfloat16, 0)  # (16 MiB)
    assert sg.use_ll_gemm(2, 8192, 1023, torch.bfloat16, 0)  # ... of at least 16 MiB
    assert sg.use_ll_gemm(16, 100, 16, torch.bfloat16, 0)  # a small weight: latency-bound, ll_gemm
    assert sg.use_ll_gemm(1, 28672, 4096, torch.bfloat16, 0) and sg.use_ll_gemm(16, 10240, 8192, torch.bfloat16, 0)
    assert not sg.use_ll_gemm(4, 28672, 4096, torch.float8_e4m3fn, 0)  # fp8 >= 16 MiB: scaled_mm from M = 2
    assert sg.use_ll_gemm(1, 28672, 4096, torch.float8_e4m3fn, 0) and sg.use_ll_gemm(4, 256, 7168, torch.float8_e4m3fn, 0)
    assert cs.entry("ll_gemm", N, K, "bf16", 3, 0)[1] == {"us": 6.0, "cublas_us": 5.0}


def test_a_bucket_serves_fewer_rows_never_more(tables):
    N, K = 32, 256
    _write_table(tables, N, K, "bf16", {4: (sg.ll_gemm_config(4, N, K, 2, 132), {"us": 6.0, "cublas_us": 5.0})})
    assert not sg.use_ll_gemm(3, N, K, torch.bfloat16, 0)  # bucket 4: cuBLAS measured faster
    assert sg.use_ll_gemm(5, N, K, torch.bfloat16, 0)  # past the last bucket: untuned, ll_gemm
    assert sg.use_ll_gemm(17, N, K, torch.bfloat16, 0) is False  # M > 16 never


def test_fp8_follows_its_table_too(tables):
    """fp8's other path is lmkernels.scaled_mm; the table's cuBLAS time (torch._scaled_mm) stands for it."""
    N, K = 32, 256
    _write_table(tables, N, K, "fp8", {2: (sg.ll_gemm_config(2, N, K, 1, 132), {"us": 9.0, "cublas_us": 1.0}),
                                       4: (sg.ll_gemm_config(4, N, K, 1, 132), {"us": 1.0, "cublas_us": 9.0})})
    assert not sg.use_ll_gemm(2, N, K, torch.float8_e4m3fn, 0) and sg.use_ll_gemm(4, N, K, torch.float8_e4m3fn, 0)


def test_a_table_entry_from_before_dot_chains_means_one_chain(tables):
    """Tables written before DOT_CHAINS existed (session 28) lack the key: served as 1 chain."""
    N, K = 256, 512
    cfg = {k: v for k, v in sg.ll_gemm_config(16, N, K, 2, 132).items() if k != "DOT_CHAINS"}
    _write_table(tables, N, K, "bf16", {16: (cfg, {"us": 1.0})})
    assert sg.tuned_config(16, N, K, torch.bfloat16, 0) == dict(cfg, DOT_CHAINS=1)


def test_a_partial_table_config_is_refused(tables):
    N, K = 32, 256
    _write_table(tables, N, K, "bf16", {2: ({"BLOCK_M": 2, "BLOCK_N": 1}, {"us": 1.0})})
    with pytest.raises(ValueError, match="lacks"):
        sg.tuned_config(2, N, K, torch.bfloat16, 0)


def test_linear_follows_the_table_on_the_gpu_and_under_compile(tables, monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("linear reads tables for GPU tensors only (use_ll_gemm above covers the rule on the CPU)")
    N, K = 32, 256
    _write_table(tables, N, K, "bf16", {2: (sg.ll_gemm_config(2, N, K, 2, 132), {"us": 2.0, "cublas_us": 5.0}),
                                        4: (sg.ll_gemm_config(4, N, K, 2, 132), {"us": 6.0, "cublas_us": 5.0})})
    calls = []
    real = sg._not_ll_gemm
    monkeypatch.setattr(sg, "_not_ll_gemm", lambda *a: (calls.append(a[0].shape[0]), real(*a))[1])
    w = torch.randn(N, K, device="cuda").bfloat16()
    for M in (2, 4):
        x = torch.randn(M, K, device="cuda").bfloat16()
        want = ref.small_gemm.linear(x, w).float()
        torch.testing.assert_close(sg.linear(x, w).float(), want, rtol=2**-7, atol=1e-2)
    assert calls == [4]
    torch._dynamo.reset()
    x = torch.randn(4, K, device="cuda").bfloat16()
    got = torch.compile(lambda a, b: sg.linear(a, b), fullgraph=True)(x, w)
    torch.testing.assert_close(got.float(), ref.small_gemm.linear(x, w).float(), rtol=2**-7, atol=1e-2)


def test_shipped_h100_tables_cover_the_routers_and_llama3_8b():
    """Shipped H100 tables: the issue's 7 router shapes in bf16 and fp8, and the Llama-3-8B dense
    shapes in bf16 (what linear decides on). Each is the tuner's (its _meta, every M of the default
    grid, cuBLAS timed beside every bf16 M), validates through the store, and its tuned config is
    never slower than the heuristic was in the same run (the search's rounds)."""
    from lmkernels.bench.small_gemm import ROUTERS as BENCH_ROUTERS
    gpu = "NVIDIA H100 80GB HBM3"
    jobs = [(N, K, d) for K, N in BENCH_ROUTERS for d in ("bf16", "fp8")]
    jobs += [(N, K, "bf16") for N, K in ((4096, 4096), (6144, 4096), (28672, 4096), (4096, 14336), (14336, 4096))]
    for N, K, dtype in jobs:
        path = os.path.join(cs.PACKAGED_DIR, t.OP, cs.file_name(N, K, gpu, dtype))
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        table = cs.parse(data, t.OP, path, expect=(N, K, dtype))
        meta = table.meta
        assert table.ms == list(t.M_GRID) and meta["complete"] and meta["gpu"] == gpu, path
        for m in t.M_GRID:
            rec = meta["measured"][str(m)]
            cfg = data[str(m)]
            # the search's time of its winner (prefetch_form times it again later, beside its twin)
            assert rec.get("search_us", rec["us"]) <= rec["heuristic_us"], (path, m)
            if "prefetch_forms" in rec:  # ... and keeps the other form only where it was > 2 % faster
                forms = rec["prefetch_forms"]
                kept, other = ("bulk", "line") if cfg.get("BULK_PREFETCH") else ("line", "bulk")
                assert rec["us"] == forms[kept] and (kept == "line" or forms[kept] < forms[other] * 0.98), (path, m)
            assert cfg["BLOCK_M"] >= m or sg.m_tiles_ok(cfg), (path, m)  # or M tiled
            assert dtype == "fp8" or rec["cublas_us"] > 0, (path, m)
