"""The scaled_mm tuner's control flow on the CPU: pruning, picking the fastest, the vLLM-style file
with _meta, resuming after an interruption, the time budget, refusing a winner that fails the
reference check, compile failures. A fake timer stands in for CUDA-graph timing and (except in the
last tests) a fake op for the kernel, so no GPU is needed and no kernel needs to exist."""
import argparse
import json
import os
import zlib

import pytest
import torch

from lmkernels.runtime import config_store as cs
from lmkernels.tuning import common
from lmkernels.tuning import scaled_mm as t

GPU = "Fake GPU 80GB"
N, K = 64, 2048  # small: the fake op runs the torch reference on it; K leaves room for split-K


def reference(a, b, sa, sb, out_dtype, bias=None, **_):
    """The op's rounding order ((acc * sa) * sb, one cast) in plain torch: int8 sums exactly in float64."""
    acc = (a.double() @ b.double()).float() if a.dtype == torch.int8 else a.float() @ b.float()
    return ((acc * sa) * sb).to(out_dtype)


def fake_us(cfg) -> float:
    """A deterministic, practically tie-free time per config."""
    return 100.0 + zlib.crc32(t.describe(cfg).encode()) % 100000 / 1000


class Fake:
    """A target whose op is the reference (wrong for configs in `bad`, raising for those in `broken`)
    and whose timer returns fake_us, counting calls by M; `on_time(M)` runs before each timing."""

    def __init__(self, bad=(), broken=(), on_time=None, **target_kw):
        self.bad, self.broken, self.on_time = set(bad), set(broken), on_time
        self.timed = []
        self.target = t.Target(op=self.op, reference=reference, heuristic=self.heuristic, timer=self.timer,
                               device="cpu", gpu=GPU, num_sms=8, interpreter=True, **target_kw)

    @staticmethod
    def heuristic(M, N, K, fp8):
        return t.config(16, 64, 128, 1, 4, 4) if M <= 32 else t.config(64, 128, 64, 8, 4, 3)

    def op(self, a, b, sa, sb, out_dtype, bias=None, *, config=None):
        if t.describe(config) in self.broken:
            raise RuntimeError("out of resources: shared memory")
        out = reference(a, b, sa, sb, out_dtype)
        return out * 1.5 if t.describe(config) in self.bad else out

    def timer(self, cfg, calls, reps):
        M = calls[0].args[0].shape[0]  # functools.partial(op, a, b, ...): a is [M, K]
        if self.on_time is not None:
            self.on_time(M)
        self.timed.append(M)
        assert len(calls) >= 1 and reps >= 3
        return fake_us(cfg)


def expected_winner(M, skip=(), fp8=False):
    cands = t.candidates(M, N, K, num_sms=8, descriptor_ok=False, heuristic=Fake.heuristic(M, N, K, fp8), fp8=fp8)
    return min((c for c in cands if t.describe(c) not in skip), key=fake_us)


def quiet():
    return common.Progress(stream=open(os.devnull, "w"))


def run(fake, tmp_path, ms=(1, 16, 48), dtype="int8", **kw):
    kw.setdefault("progress", quiet())
    kw.setdefault("log", lambda *a: None)
    return t.tune([(N, K, dtype)], ms, str(tmp_path), fake.target, **kw)


def table_path(tmp_path, dtype="int8"):
    return tmp_path / "scaled_mm" / cs.file_name(N, K, GPU, dtype)


# ---- the search space -------------------------------------------------------------------------

LLAMA = [(6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336), (10240, 8192), (8192, 8192), (57344, 8192),
         (8192, 28672)]


@pytest.mark.parametrize("descriptor_ok", [False, True])
@pytest.mark.parametrize("nk", LLAMA)
def test_candidates_are_pruned_valid_and_start_with_the_heuristic(nk, descriptor_ok):
    n, k = nk
    for M in t.M_GRID:
        heur = t.config(32, 32, 32, 4, 2, 2)  # outside the space: must still be timed, first
        cands = t.candidates(M, n, k, num_sms=132, descriptor_ok=descriptor_ok, heuristic=heur)
        assert cands[0] == heur and 10 <= len(cands) <= 48, (M, len(cands))  # 47 at most + the heuristic
        assert len({json.dumps(c, sort_keys=True) for c in cands}) == len(cands)
        for c in cands[1:]:
            bm, bn, bk = c["BLOCK_SIZE_M"], c["BLOCK_SIZE_N"], c["BLOCK_SIZE_K"]
            # the transposed twins of tiles under 64 rows and at least 64 wide (session 27: int8 too)
            assert set(c) - {"SWAP_AB"} == set(t.config(1, 1, 1, 1, 1, 1)) and ("SWAP_AB" not in c or bm < 64 <= bn), c
            assert c["num_stages"] * (bm + bn) * bk <= t.SMEM_BUDGET
            tiles = -(-M // bm) * -(-n // bn)
            if M <= t.SMALL_M:
                assert bm == (16 if M <= 16 else 32) and bk in (128, 256) and c["ACCESS"] == "pointer"
                assert c["SPLIT_K"] == 1 or tiles < 132, c
                assert -(-k // (bk * c["SPLIT_K"])) >= 2
            else:
                assert bm in (64, 128, 256) and c["GROUP_SIZE_M"] == 8
                assert c["SPLIT_K"] == 1 or tiles < 132, c
                assert c["PERSISTENT"] <= (tiles * c["SPLIT_K"] > 132)
                assert (c["ACCESS"] == "descriptor") <= descriptor_ok
                assert (c["ACCESS"] == "pointer") <= (bk == 64 or not descriptor_ok)
                assert bm >= 128 or M <= 128
                assert bm <= 128 or M >= 256
                assert bm == 64 or M >= 96
                assert bn == 128 or bm == 64 or M >= 256


@pytest.mark.parametrize("nk", LLAMA)
def test_wgmma_candidates_only_where_asked_and_filling_the_sms(nk):
    """wgmma=True (sm90 with Gluon) adds WGMMA_TILES entries (never split or persistent, tiles
    filling >= 3/4 of the SMs) and from M = 512 WS_TILES ones (persistent, unsplit, at least a tile
    an SM), descriptor access, only past the decode sizes, the WS ones again with GROUP_SIZE_M 16 from
    M = 2048; and at M = 33-128 the MID_TILES, plain and transposed (pointer access, unsplit); at
    most 63 candidates a M."""
    n, k = nk
    for M in t.M_GRID:
        plain = t.candidates(M, n, k, num_sms=132, descriptor_ok=True)
        cands = t.candidates(M, n, k, num_sms=132, descriptor_ok=True, wgmma=True)
        extra = [c for c in cands if c.get("WGMMA")]
        mid = [c for c in cands if c not in plain and not c.get("WGMMA")]
        assert [c for c in cands if not c.get("WGMMA") and c not in mid] == plain
        assert len(cands) <= 63, (M, len(cands))
        if 33 <= M <= 128:
            assert [(c["BLOCK_SIZE_M"], c["BLOCK_SIZE_N"], c["BLOCK_SIZE_K"], c["num_stages"], c["ACCESS"],
                     c["SPLIT_K"], c.get("SWAP_AB", False)) for c in mid] == \
                [(64, 64, 128, 6, "pointer", 1, False), (64, 64, 128, 6, "pointer", 1, True)], (M, mid)
        else:
            assert not mid, (M, mid)
        ws = [c for c in extra if c["PERSISTENT"]]
        assert {c["GROUP_SIZE_M"] for c in ws} <= ({8, 16} if M >= 2048 else {8}), M
        assert sum(c["GROUP_SIZE_M"] == 16 for c in ws) == (len(ws) // 2 if M >= 2048 else 0), M
        assert not t.candidates(M, n, k, num_sms=132, descriptor_ok=False, wgmma=True) or \
            not any(c.get("WGMMA") for c in t.candidates(M, n, k, num_sms=132, descriptor_ok=False, wgmma=True))
        for c in extra:
            tiles = -(-M // c["BLOCK_SIZE_M"]) * -(-n // c["BLOCK_SIZE_N"])
            assert (c["SPLIT_K"], c["ACCESS"]) == (1, "descriptor"), c
            if c["PERSISTENT"]:
                assert tiles >= 132 and M >= 512 and c["PINGPONG"] == (c["num_warps"] == 4), c
            else:
                assert 4 * tiles >= 3 * 132 and not c.get("PINGPONG"), c
            assert M > t.SMALL_M
        if M == 1024:
            assert len(extra) >= 5, (n, k, len(extra))
        if M >= 1024:
            assert any(c["PERSISTENT"] and c["PINGPONG"] for c in extra), (n, k, M)
    assert not any(c.get("WGMMA") for c in t.candidates(4096, 4096, 4096, num_sms=132, descriptor_ok=True))


def test_tile_space_times_every_depth_that_fits():
    """3 stages of 128 x 128 x 128 (96 KB: two programs an SM, what int8 wants on sm90) are timed
    beside 4 and 5, at 4 warps and 8; 128 x 256 x 128 stops at 4 (5 x 48 KB is over the budget)."""
    cands = t.candidates(1024, 6144, 4096, num_sms=132, descriptor_ok=True)
    depths = {}
    for c in cands:
        depths.setdefault((c["BLOCK_SIZE_M"], c["BLOCK_SIZE_N"], c["BLOCK_SIZE_K"]), set()).add(c["num_stages"])
    assert depths[(128, 128, 128)] == {3, 4, 5} and depths[(128, 256, 128)] == {3, 4}
    warps = {c["num_warps"] for c in cands if (c["BLOCK_SIZE_M"], c["BLOCK_SIZE_N"], c["BLOCK_SIZE_K"]) == (128, 128, 128)}
    assert warps == {4, 8}


@pytest.mark.parametrize("M", [1, 16, 64, 128, 4096])
def test_one_launch_twins_every_split_candidate(M):
    """one_launch=True (CUDA targets): the same list, then each split-K candidate again with
    ONE_LAUNCH True, nothing else changed; without it no candidate carries the key."""
    heur = t.config(64, 64, 256, 8, 4, 4, split=2)
    plain = t.candidates(M, 4096, 14336, num_sms=132, descriptor_ok=True, heuristic=heur)
    both = t.candidates(M, 4096, 14336, num_sms=132, descriptor_ok=True, heuristic=heur, one_launch=True)
    splits = [c for c in plain if c["SPLIT_K"] > 1]
    assert not any("ONE_LAUNCH" in c for c in plain) and splits
    assert both[:len(plain)] == plain and both[len(plain):] == [dict(c, ONE_LAUNCH=True) for c in splits]
    assert "one-launch" in t.describe(both[-1])


def test_split_tail_twins():
    """split_tail=True: after the list, each unsplit tile config whose tiles overrun a whole wave by
    1 to num_sms / 2 again with SPLIT_TAIL, SPLIT_K = num_sms // rem (<= 8, >= 2 K tiles a part),
    ONE_LAUNCH; never at decode sizes, never where the overrun is 0 or over half a wave."""
    from lmkernels.ops.scaled_mm import check_config
    heur = t.config(64, 64, 128, 8, 4, 4)
    plain = t.candidates(128, 6144, 4096, num_sms=132, descriptor_ok=True, heuristic=heur, normalize=check_config)
    both = t.candidates(128, 6144, 4096, num_sms=132, descriptor_ok=True, heuristic=heur, normalize=check_config,
                        split_tail=True)
    assert both[:len(plain)] == plain and len(both) > len(plain)
    for c in both[len(plain):]:
        base = dict(c, SPLIT_K=1, ONE_LAUNCH=False, SPLIT_TAIL=False)
        assert c["SPLIT_TAIL"] and c["ONE_LAUNCH"] and base in plain, c
        tiles = -(-128 // c["BLOCK_SIZE_M"]) * -(-6144 // c["BLOCK_SIZE_N"])
        rem = tiles % 132
        assert tiles > 132 and 0 < 2 * rem <= 132 and c["SPLIT_K"] == min(132 // rem, 8, 4096 // c["BLOCK_SIZE_K"] // 2)
        assert " tail " in t.describe(c)
    assert {(c["BLOCK_SIZE_M"], c["BLOCK_SIZE_N"], c["SPLIT_K"]) for c in both[len(plain):]} >= {(64, 64, 2)}
    # 64 x 128 tiles: 96 < 132 (no whole wave); decode: never
    assert t.split_tail_twin(t.config(64, 128, 128, 8, 4, 4), 128, 6144, 4096, 132) is None
    # 332 tiles: 68 over, more than half a wave
    assert t.split_tail_twin(t.config(64, 64, 128, 8, 4, 4), 128, 6144 + 64 * 70, 4096, 132) is None
    assert t.candidates(16, 6144, 4096, num_sms=132, descriptor_ok=True, split_tail=True) == t.candidates(
        16, 6144, 4096, num_sms=132, descriptor_ok=True)


def test_splits_fill_the_sms():
    assert t._splits(132, 132) == (1,) and t._splits(500, 132) == (1,)
    assert t._splits(64, 132) == (2, 4)   # 128 programs: 97 % of a wave; 256: two
    assert t._splits(128, 132) == (1, 2)
    assert t._splits(4, 132) == (4, 8)    # capped at 8
    assert t._splits(1, 1) == (1,)


def test_the_narrow_tiles_are_timed_transposed_too():
    """Both dtypes: every candidate under 64 rows and at least 64 wide again with SWAP_AB (wgmma's M
    side is 64 rows; int8 since session 27); tiles of 64 rows are never transposed."""
    for M in (1, 16, 32, 48):
        int8 = t.candidates(M, 4096, 4096, num_sms=132, descriptor_ok=True)
        fp8 = t.candidates(M, 4096, 4096, num_sms=132, descriptor_ok=True, fp8=True)
        for cands in (int8, fp8):
            narrow = [c for c in cands if not c.get("SWAP_AB") and c["BLOCK_SIZE_M"] < 64 <= c["BLOCK_SIZE_N"]]
            swapped = [c for c in cands if c.get("SWAP_AB")]
            assert [dict(c, SWAP_AB=True) for c in narrow] == swapped and (M > 32) == (not swapped), M
        assert [dict(c, FP8_FAST_ACCUM=True) for c in int8] == [dict(c, FP8_FAST_ACCUM=True) for c in fp8], M


def test_transposed_split_tiles_get_one_launch_twins():
    """fp8 with one_launch: the SWAP_AB twins of split-K tiles are timed finished in the launch too
    (they were only timed with a second launch, which loses at decode)."""
    for M in (1, 16):
        cands = t.candidates(M, 4096, 14336, num_sms=132, descriptor_ok=True, fp8=True, one_launch=True)
        swapped_splits = [c for c in cands if c.get("SWAP_AB") and c["SPLIT_K"] > 1 and not c.get("ONE_LAUNCH")]
        assert swapped_splits, M
        for c in swapped_splits:
            assert dict(c, ONE_LAUNCH=True) in cands, c
        assert len({json.dumps(c, sort_keys=True) for c in cands}) == len(cands)


def test_normalize_drops_refused_configs_but_not_the_heuristic():
    def check(cfg):
        if cfg["BLOCK_SIZE_N"] == 128:
            raise ValueError("no")
        return dict(cfg, EXTRA=1)
    cands = t.candidates(1, 4096, 4096, num_sms=132, descriptor_ok=False, heuristic=Fake.heuristic(1, 0, 0, 0),
                         normalize=check)
    assert all(c["BLOCK_SIZE_N"] != 128 and c["EXTRA"] == 1 for c in cands)
    with pytest.raises(ValueError):
        t.candidates(1, 4096, 4096, num_sms=132, descriptor_ok=False, heuristic=t.config(16, 128, 128, 1, 4, 4),
                     normalize=check)


# ---- the tuner --------------------------------------------------------------------------------

def test_picks_the_fastest_and_writes_a_vllm_style_table(tmp_path, monkeypatch):
    fake = Fake()
    res = run(fake, tmp_path)
    path = table_path(tmp_path)
    assert res == {"files": [str(path)], "left": [], "stopped": False}
    data = json.loads(path.read_text())
    assert sorted(data) == ["1", "16", "48", "_meta"]
    for M in (1, 16, 48):
        assert data[str(M)] == expected_winner(M)
    meta = data["_meta"]
    assert meta["schema"] == cs.SCHEMA and meta["op"] == "scaled_mm" and (meta["N"], meta["K"]) == (N, K)
    assert meta["gpu"] == GPU and meta["dtype"] == "int8" and meta["complete"] is True
    assert meta["m_grid"] == [1, 16, 48] and meta["torch"] == torch.__version__ and meta["triton"]
    rec = meta["measured"]["16"]
    assert rec["us"] == round(fake_us(expected_winner(16)), 3) and rec["heuristic_us"] >= rec["us"]
    assert rec["candidates"] >= 10 and rec["failed"] == 0 and rec["rejected"] == 0
    # what the tuner writes is what the op's lookup serves, through the bucket rule
    monkeypatch.setenv(cs.ENV_DIR, str(tmp_path))
    monkeypatch.setattr(cs, "device_name", lambda i: GPU.replace(" ", "_"))
    cs.clear_cache()
    try:  # (the op's validator, when registered, adds its defaults)
        assert expected_winner(16).items() <= cs.lookup("scaled_mm", N, K, "int8", 9, 0).items()
        assert expected_winner(48).items() <= cs.lookup("scaled_mm", N, K, "int8", 4096, 0).items()
    finally:
        cs.clear_cache()


def test_fp8_tunes_with_the_derived_tolerance(tmp_path):
    run(Fake(), tmp_path, ms=(2,), dtype="fp8")
    assert json.loads(table_path(tmp_path, "fp8").read_text())["2"] == expected_winner(2, fp8=True)


def test_resumes_after_an_interruption(tmp_path):
    def stop_at_48(M):
        if M == 48:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run(Fake(on_time=stop_at_48), tmp_path)
    data = json.loads(table_path(tmp_path).read_text())
    assert sorted(data) == ["1", "16", "_meta"] and data["_meta"]["complete"] is False
    assert not [f for f in os.listdir(table_path(tmp_path).parent) if f.startswith(".tmp")]
    again = Fake()
    res = run(again, tmp_path)
    assert set(again.timed) == {48} and res["left"] == []
    data = json.loads(table_path(tmp_path).read_text())
    assert sorted(data) == ["1", "16", "48", "_meta"] and data["_meta"]["complete"] is True
    assert sorted(data["_meta"]["measured"]) == ["1", "16", "48"]
    # a rerun with nothing left times nothing; --force times everything again
    third = Fake()
    assert run(third, tmp_path)["files"] == [] and third.timed == []
    forced = Fake()
    run(forced, tmp_path, force=True)
    assert set(forced.timed) == {1, 16, 48}
    # --force on some Ms re-tunes those and keeps the others, configs and records alike
    before = json.loads(table_path(tmp_path).read_text())
    some = Fake()
    res = run(some, tmp_path, ms=(16,), force=True)
    after = json.loads(table_path(tmp_path).read_text())
    assert set(some.timed) == {16} and res["left"] == []
    assert sorted(after) == ["1", "16", "48", "_meta"] and after["_meta"]["m_grid"] == [1, 16, 48]
    assert after["1"] == before["1"] and after["48"] == before["48"]
    assert after["_meta"]["measured"]["1"] == before["_meta"]["measured"]["1"]


def test_stops_between_ms_when_the_budget_is_spent(tmp_path):
    now = [0.0]
    fake = Fake(on_time=lambda M: now.__setitem__(0, now[0] + 2.0))  # each timing "takes" 2 s
    budget = common.Budget(1.0, clock=lambda: now[0])
    res = run(fake, tmp_path, ms=(1, 2, 4, 8, 16), budget=budget)
    data = json.loads(table_path(tmp_path).read_text())
    done = sorted(int(m) for m in data if m != "_meta")
    assert res["stopped"] and done and len(done) < 5
    assert res["left"] == [(N, K, "int8", [m for m in (1, 2, 4, 8, 16) if m not in done])]
    assert now[0] <= 60.0 + 2.0 * 40  # it stopped between Ms, not long after the minute
    assert data["_meta"]["complete"] is False


def test_first_m_runs_even_when_it_outlasts_the_budget(tmp_path):
    now = [0.0]
    fake = Fake(on_time=lambda M: now.__setitem__(0, now[0] + 100.0))
    res = run(fake, tmp_path, ms=(1, 2), budget=common.Budget(0.5, clock=lambda: now[0]))
    assert res["stopped"] and res["left"] == [(N, K, "int8", [2])]


def test_a_winner_that_fails_the_reference_is_rejected(tmp_path):
    wrong = t.describe(expected_winner(16))
    run(Fake(bad={wrong}), tmp_path, ms=(16,))
    data = json.loads(table_path(tmp_path).read_text())
    assert data["16"] == expected_winner(16, skip={wrong})
    rec = data["_meta"]["measured"]["16"]
    assert rec["rejected"] == 1 and wrong in rec["rejected_why"][0] and "elements outside" in rec["rejected_why"][0]


def test_candidates_that_fail_to_compile_are_skipped(tmp_path):
    broken = t.describe(expected_winner(1))
    run(Fake(broken={broken}), tmp_path, ms=(1,))
    data = json.loads(table_path(tmp_path).read_text())
    assert data["1"] == expected_winner(1, skip={broken}) and data["_meta"]["measured"]["1"]["failed"] == 1


def test_a_heuristic_that_does_not_run_is_fatal(tmp_path):
    with pytest.raises(RuntimeError, match="heuristic config"):
        run(Fake(broken={t.describe(Fake.heuristic(1, N, K, False))}), tmp_path, ms=(1,))


def test_no_candidate_matching_the_reference_is_fatal(tmp_path):
    everything = {t.describe(c) for c in t.candidates(1, N, K, num_sms=8, descriptor_ok=False,
                                                       heuristic=Fake.heuristic(1, N, K, False))}
    with pytest.raises(RuntimeError, match="no candidate matches the reference"):
        run(Fake(bad=everything), tmp_path, ms=(1,))
    assert not table_path(tmp_path).exists()


def test_a_malformed_existing_file_is_refused_unless_forced(tmp_path):
    path = table_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{")
    with pytest.raises(ValueError, match="cannot be resumed.*--force"):
        run(Fake(), tmp_path, ms=(1,))
    run(Fake(), tmp_path, ms=(1,), force=True)
    assert json.loads(path.read_text())["1"] == expected_winner(1)


def test_refine_interleaves_the_finalists_and_takes_medians():
    """The refine visits every finalist once a round (a clock that drifts over the search is shared
    alike), and a finalist's time is the median of its rounds (one slow round does not decide)."""
    calls = []

    def time_one(i, n_calls, reps):
        calls.append(i)
        return {0: 10.0, 1: 9.0, 2: 9.5, 3: 11.0}[i] + (100.0 if len(calls) == 9 else 0.0)

    ranked, best, record = common.rank(4, time_one, lambda msg: None, 32, 4, {}, "test")
    refine = calls[1 + 4:]  # after the probe and the quick pass
    assert refine == [1, 2, 0] * common.REFINE_ROUNDS  # the 3 fastest (the heuristic, 0, among them)
    assert ranked == [1, 2, 0, 3] and best == {1: 9.0, 2: 9.5, 0: 10.0, 3: 11.0}  # call 9 (1's 2nd round) out
    assert record["refine_rounds"] == common.REFINE_ROUNDS


def test_limit_keeps_the_heuristic_and_a_few(tmp_path):
    fake = Fake(limit=2)
    run(fake, tmp_path, ms=(1,))
    # the probe, quick 2, then both in each refine round
    assert len(fake.timed) == 1 + 2 + 2 * common.REFINE_ROUNDS


# ---- the output check -------------------------------------------------------------------------

def _mm(fp8, M=8, n=16, k=256, seed=0):
    return t.operands(M, n, k, fp8, "cpu", seed)


def test_check_output_int8_is_exact_on_gpu_and_two_ulps_interpreted():
    a, b, sa, sb = _mm(False)
    ref = reference(a, b, sa, sb, torch.bfloat16)
    assert t.check_output(ref.clone(), ref, a, b, sa, sb, False, False) is None
    one_ulp = torch.nextafter(ref.float(), torch.full_like(ref.float(), float("inf"))).to(torch.bfloat16)
    bumped = ref.clone()
    bumped[0, 0] = (ref[0, 0].float() + t._ulp(ref[0, 0:1].float(), torch.bfloat16)[0]).to(torch.bfloat16)
    assert "bit-exact" in t.check_output(bumped, ref, a, b, sa, sb, False, False)
    assert t.check_output(bumped, ref, a, b, sa, sb, False, True) is None
    assert one_ulp.shape == ref.shape
    far = ref.clone()
    far[1, 2] = far[1, 2] * 1.1
    assert "outside the tolerance" in t.check_output(far, ref, a, b, sa, sb, False, True)
    nan = ref.clone()
    nan[0, 0] = float("nan")
    assert "non-finite" in t.check_output(nan, ref, a, b, sa, sb, False, True)
    assert "reference" in t.check_output(ref[:, :4], ref, a, b, sa, sb, False, True)


def test_check_output_fp8_tolerance_covers_summation_order_but_not_a_missing_block():
    a, b, sa, sb = _mm(True, k=1024)
    ref = reference(a, b, sa, sb, torch.bfloat16)
    # another summation order: the product sum in float64, rounded once
    other = ((a.double() @ b.double()).float() * sa * sb).to(torch.bfloat16)
    assert t.check_output(other, ref, a, b, sa, sb, True, False) is None
    # one BLOCK_K of 128 products lost: far outside
    partial = reference(a[:, 128:], b[128:], sa, sb, torch.bfloat16)
    assert "outside the tolerance" in t.check_output(partial, ref, a, b, sa, sb, True, False)


# ---- common -----------------------------------------------------------------------------------

def test_write_json_atomic_replaces_whole_files(tmp_path):
    path = tmp_path / "a" / "b.json"
    common.write_json_atomic(str(path), {"x": 1})
    common.write_json_atomic(str(path), {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2} and os.listdir(path.parent) == ["b.json"]
    with pytest.raises(TypeError):
        common.write_json_atomic(str(path), {"x": object()})
    assert json.loads(path.read_text()) == {"x": 2} and os.listdir(path.parent) == ["b.json"]


def test_progress_redraws_on_a_tty_and_throttles_elsewhere():
    class Stream(list):
        def __init__(self, tty):
            super().__init__()
            self.tty = tty

        def isatty(self):
            return self.tty

        def write(self, s):
            self.append(s)

        def flush(self):
            pass
    now = [0.0]
    log = Stream(False)
    p = common.Progress(stream=log, every=30, clock=lambda: now[0])
    for i in range(100):
        p.update(f"step {i}")
        now[0] += 1
    assert log == ["step 0\n", "step 30\n", "step 60\n", "step 90\n"]
    tty = Stream(True)
    p = common.Progress(stream=tty)
    p.update("long status")
    p.update("short")
    p.clear()
    assert tty == ["\rlong status", "\rshort      ", "\r" + " " * 5 + "\r"]


def test_budget():
    now = [0.0]
    b = common.Budget(2.0, clock=lambda: now[0])
    now[0] = 100.0
    assert b.elapsed() == 100.0 and b.left() == 20.0
    assert b.may_start(10.0, first=False) and not b.may_start(30.0, first=False) and b.may_start(30.0, first=True)
    assert common.Budget(None).may_start(1e9, first=False)


@pytest.mark.parametrize("fn, text", [(common.parse_pair, "4096"), (common.parse_pair, "4096,x"),
                                      (common.parse_pair, "0,4096"), (common.parse_pair, "1,2,3"),
                                      (common.parse_int_list, "0,16"), (common.parse_int_list, "a"),
                                      (common.parse_int_list, ""), (common.parse_minutes, "-1"),
                                      (common.parse_minutes, "soon"), (common.parse_count, "-1")])
def test_parsers_refuse_with_the_value(fn, text):
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text).replace("(", r"\(")):
        fn(text)


def test_parsers_accept():
    assert common.parse_pair("4096,14336") == (4096, 14336)
    assert common.parse_int_list("16,1,16,4") == [1, 4, 16]
    assert common.parse_minutes("7.5") == 7.5 and common.parse_count("0") == 0


def test_run_cli_reports_what_is_left_and_exits_3(tmp_path, capsys):
    fake = Fake(on_time=lambda M: None)
    args = argparse.Namespace(nk=[(N, K)], dtype=["int8"], m=[1, 2], out=str(tmp_path), max_minutes=1e-9,
                              force=False, compile_workers=0)
    assert t.run_cli(args, target=fake.target) == 3
    out = capsys.readouterr().out
    assert "budget is spent" in out and f"N={N} K={K} int8: M 2" in out and "Rerun the same command" in out
    args.max_minutes = None
    assert t.run_cli(args, target=Fake().target) == 0
    assert "every table is complete" in capsys.readouterr().out


# ---- compile workers (spawned processes) ------------------------------------------------------

def pool_op(a, b, sa, sb, out_dtype, bias=None, *, config=None):
    """The op a compile worker imports by name ("test_tuning:pool_op")."""
    if config["num_stages"] == 6:
        raise RuntimeError("out of resources: shared memory, required 240000")
    return torch.zeros(a.shape[0], b.shape[1], dtype=out_dtype)


def test_compile_workers_report_failures_from_their_processes():
    target = t.Target(op=pool_op, reference=reference, heuristic=Fake.heuristic, timer=None, device="cpu",
                      compile_workers=2, op_path="test_tuning:pool_op")
    cands = t.candidates(1, N, K, num_sms=8, descriptor_ok=False, heuristic=Fake.heuristic(1, N, K, False))
    try:
        failed = target.warm(cands, 1, N, K, False, t.operands(1, N, K, False, "cpu", 0))
    finally:
        target.close()
    want = {i for i, c in enumerate(cands) if c["num_stages"] == 6}
    assert want and set(failed) == want and all("shared memory" in why for why in failed.values())


# ---- the real op (skips until lmkernels.ops.scaled_mm exists) ----------------------------------

@pytest.mark.parametrize("dtype", ["int8", "fp8"])
def test_tunes_the_real_op_and_its_winner_passes_the_reference(tmp_path, dtype):
    ops = pytest.importorskip("lmkernels.ops.scaled_mm", reason="the scaled_mm op is not written yet")
    ref = pytest.importorskip("lmkernels.reference.scaled_mm", reason="the scaled_mm reference is not written yet")
    from lmkernels.runtime.device import is_interpreter
    on_gpu = torch.cuda.is_available()
    if dtype == "fp8" and on_gpu and torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("fp8 e4m3 needs sm89+")
    dev = 0 if on_gpu else -1
    timed = []

    def timer(cfg, calls, reps):  # runs the real op (compiled or interpreted) once, fake time: the list
        calls[0]()               # repeats one input set's call to fill a graph, 32 interpreted calls on a CPU
        timed.append(cfg)
        return fake_us(cfg)
    target = t.Target(op=ops.scaled_mm, reference=ref.scaled_mm, timer=timer,
                      heuristic=lambda M, N, K, fp8: ops.heuristic_config(M, N, K, fp8, dev),
                      check_config=ops.check_config, device="cuda" if on_gpu else "cpu", gpu=GPU, num_sms=4,
                      interpreter=is_interpreter(), limit=3)
    res = t.tune([(32, 512, dtype)], (1, 40), str(tmp_path), target, progress=quiet(), log=lambda *a: None)
    data = json.loads((tmp_path / "scaled_mm" / cs.file_name(32, 512, GPU, dtype)).read_text())
    assert res["left"] == [] and sorted(data) == ["1", "40", "_meta"] and timed
    for m in ("1", "40"):
        assert ops.check_config(data[m]) == data[m]  # stored normalised: lookups get exactly this
        assert data["_meta"]["measured"][m]["rejected"] == 0
    # the file resumes (it passes the op's validator on reading): a rerun times nothing
    timed.clear()
    assert t.tune([(32, 512, dtype)], (1, 40), str(tmp_path), target, progress=quiet(), log=lambda *a: None)["left"] == []
    assert timed == []


# ---- the shipped tables ------------------------------------------------------------------------

def test_shipped_h100_tables_cover_llama3_8b_and_70b():
    """Issue 5 ships H100 tables for the Llama-3-8B and -70B (TP 1) linear shapes, int8 and fp8: each
    file is there, validates through the store and the op's check_config, holds every M of the
    tuner's default grid, was written by the tuner (its _meta) and keeps fp8 at the op's default
    (fast) accumulation."""
    from lmkernels.bench.scaled_mm import LLAMA3_70B, LLAMA3_8B
    from lmkernels.ops.scaled_mm import OPTIONAL_KEYS, check_config
    for N, K in LLAMA3_8B + LLAMA3_70B:
        for dtype in ("int8", "fp8"):
            path = os.path.join(cs.PACKAGED_DIR, t.OP, cs.file_name(N, K, "NVIDIA H100 80GB HBM3", dtype))
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            table = cs.parse(data, t.OP, path, expect=(N, K, dtype))
            meta = table.meta
            assert sorted(table.ms) == sorted(t.M_GRID) and meta["complete"] and meta["gpu"] == "NVIDIA H100 80GB HBM3"
            assert set(meta["measured"]) == {str(m) for m in t.M_GRID}
            for m in t.M_GRID:
                cfg = check_config(data[str(m)])
                assert cfg["FP8_FAST_ACCUM"] == OPTIONAL_KEYS["FP8_FAST_ACCUM"], (path, m)
