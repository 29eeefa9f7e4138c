"""runtime/config_store: precedence env > packaged > None (one warning), the bucket rule, caching,
and a clear ValueError naming the file for every kind of malformed table. Pure host code: no
kernels run, so nothing here differs between the CPU and a GPU machine."""
import json
import warnings

import pytest

from lmkernels.runtime import config_store as cs

OP = "test_op"  # not a real op: the tests register their own validator without touching scaled_mm's
GPU = "Fake_GPU_80GB"
N, K, DT = 4096, 14336, "int8"
CFG = {"BLOCK_SIZE_M": 16, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 256, "GROUP_SIZE_M": 1, "num_warps": 4, "num_stages": 4}


def meta(**over):
    m = {"schema": cs.SCHEMA, "op": OP, "N": N, "K": K, "dtype": DT, "gpu": GPU.replace("_", " "), "torch": "2.x",
         "triton": "3.x", "date": "2025-01-01T00:00:00+00:00", "complete": True, "measured": {"1": {"us": 10.0}}}
    m.update(over)
    return m


def table(ms=(1, 16, 128), **meta_over):
    return {"_meta": meta(**meta_over), **{str(m): dict(CFG, BLOCK_SIZE_N=m * 8) for m in ms}}


def write(root, data, n=N, k=K, dtype=DT, raw=None):
    path = root / OP / cs.file_name(n, k, GPU, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(raw, bytes):
        path.write_bytes(raw)
    else:
        path.write_text(raw if raw is not None else json.dumps(data))
    return path


@pytest.fixture
def store(tmp_path, monkeypatch):
    """Empty env and packaged roots under tmp_path, device 0 named GPU, clean caches and validators."""
    env, packaged = tmp_path / "env", tmp_path / "packaged"
    monkeypatch.setattr(cs, "PACKAGED_DIR", packaged)
    monkeypatch.delenv(cs.ENV_DIR, raising=False)
    monkeypatch.setattr(cs, "device_name", lambda i: GPU if i >= 0 else "cpu")
    cs.clear_cache()
    yield env, packaged
    cs._validators.pop(OP, None)
    cs.clear_cache()


def test_file_name_is_vllm_style():
    assert cs.file_name(4096, 14336, "NVIDIA H100 80GB HBM3", "fp8") == \
        "N=4096,K=14336,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8.json"


def test_precedence_env_then_packaged_then_none_with_one_warning(store, monkeypatch):
    env, packaged = store
    with pytest.warns(cs.ConfigWarning) as rec:
        assert cs.lookup(OP, N, K, DT, 1, 0) is None
    msg = str(rec[0].message)
    assert cs.file_name(N, K, GPU, DT) in msg and str(packaged / OP) in msg and "lmkernels tune test-op" in msg
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second miss of the same (op, N, K, dtype, GPU) is silent
        assert cs.lookup(OP, N, K, DT, 2, 0) is None
        assert cs.lookup(OP, N, K, DT, 1, 0) is None
    write(packaged, table())
    cs.clear_cache()
    assert cs.lookup(OP, N, K, DT, 1, 0)["BLOCK_SIZE_N"] == 8  # packaged
    write(env, table(ms=(1,)) | {"1": dict(CFG, BLOCK_SIZE_N=999)})
    monkeypatch.setenv(cs.ENV_DIR, str(env))
    cs.clear_cache()
    assert cs.lookup(OP, N, K, DT, 1, 0)["BLOCK_SIZE_N"] == 999  # env wins
    # file by file: a shape only the packaged folder has still comes from there
    write(packaged, table(dtype="fp8"), dtype="fp8")
    assert cs.lookup(OP, N, K, "fp8", 16, 0)["BLOCK_SIZE_N"] == 128


def test_cpu_lookups_do_not_warn(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cs.lookup(OP, N, K, DT, 1, -1) is None


@pytest.mark.parametrize("M, bucket", [(1, 1), (2, 16), (15, 16), (16, 16), (17, 128), (128, 128), (129, 128),
                                       (100000, 128)])
def test_bucket_rule_smallest_tuned_m_at_least_m_else_largest(store, M, bucket):
    write(store[1], table(ms=(128, 1, 16)))  # key order in the file does not matter
    assert cs.lookup(OP, N, K, DT, M, 0)["BLOCK_SIZE_N"] == bucket * 8


def test_single_entry_table_serves_every_m(store):
    write(store[1], table(ms=(64,)))
    assert {cs.lookup(OP, N, K, DT, m, 0)["BLOCK_SIZE_N"] for m in (1, 64, 65, 9999)} == {512}


def test_second_lookup_is_a_cache_hit_without_touching_the_disk(store, monkeypatch):
    path = write(store[1], table())
    first = cs.lookup(OP, N, K, DT, 16, 0)
    path.unlink()
    monkeypatch.setattr(cs, "find", lambda *a: pytest.fail("resolved lookups must not search again"))
    assert cs.lookup(OP, N, K, DT, 16, 0) is first
    assert (OP, N, K, DT, 16, 0) in cs._resolved


def test_table_loaded_once_for_many_m(store, monkeypatch):
    write(store[1], table())
    loads = []
    real = cs.parse
    monkeypatch.setattr(cs, "parse", lambda *a, **k: loads.append(1) or real(*a, **k))
    for m in (1, 2, 3, 16, 17, 500):
        cs.lookup(OP, N, K, DT, m, 0)
    assert len(loads) == 1


def test_clear_cache_rereads(store):
    path = write(store[1], table())
    assert cs.lookup(OP, N, K, DT, 1, 0)["BLOCK_SIZE_N"] == 8
    path.write_text(json.dumps(table() | {"1": dict(CFG, BLOCK_SIZE_N=32)}))
    assert cs.lookup(OP, N, K, DT, 1, 0)["BLOCK_SIZE_N"] == 8  # cached
    cs.clear_cache()
    assert cs.lookup(OP, N, K, DT, 1, 0)["BLOCK_SIZE_N"] == 32


def test_validator_normalises_and_registering_revalidates(store):
    write(store[1], table())
    assert "SPLIT_K" not in cs.lookup(OP, N, K, DT, 1, 0)
    cs.register_validator(OP, lambda cfg: {"SPLIT_K": 1, **cfg})
    assert cs.lookup(OP, N, K, DT, 1, 0)["SPLIT_K"] == 1


def _refuse_big_blocks(cfg):
    if cfg["BLOCK_SIZE_N"] > 4096:
        raise ValueError(f"BLOCK_SIZE_N={cfg['BLOCK_SIZE_N']} is larger than 4096")


MALFORMED = {
    "not json": (None, "{not json", "not valid JSON"),
    "binary": (None, b"\xff\xfe\x00{", "not valid JSON"),
    "top-level list": ([1, 2], None, "must be a JSON object"),
    "no _meta": ({"1": CFG}, None, "no _meta"),
    "_meta not an object": ({"_meta": [1], "1": CFG}, None, "_meta must be an object"),
    "_meta missing a field": ({"_meta": {k: v for k, v in meta().items() if k != "gpu"}, "1": CFG}, None,
                              "_meta has no 'gpu'"),
    "_meta ill-typed": (table(N="4096"), None, "_meta['N'] must be int"),
    "_meta bool as int": (table(schema=True), None, "_meta['schema'] must be int"),
    "_meta complete not bool": (table(complete="yes"), None, "_meta['complete'] must be bool"),
    "wrong schema": (table(schema=99), None, "schema 99"),
    "wrong op": (table(op="other"), None, "_meta op 'other'"),
    "renamed file": (table(K=4096), None, "file name says N=4096 K=14336"),
    "measured keys": (table(measured={"x": {}}), None, "_meta['measured'] must map M strings"),
    "M not an integer": (table() | {"big": CFG}, None, "key 'big' is not an M bucket"),
    "M zero": (table() | {"0": CFG}, None, "key '0' is not an M bucket"),
    "M negative": (table() | {"-4": CFG}, None, "key '-4'"),
    "M float": (table() | {"1.5": CFG}, None, "key '1.5'"),
    "config not a dict": (table() | {"1": [16, 64]}, None, "M=1: the config must be a non-empty object"),
    "config empty": (table() | {"1": {}}, None, "M=1: the config must be a non-empty object"),
    "config value nested": (table() | {"1": dict(CFG, num_warps=[4])}, None, "num_warps=[4]"),
    "no entries": ({"_meta": meta()}, None, "no M entries"),
    "validator refuses": (table() | {"16": dict(CFG, BLOCK_SIZE_N=8192)}, None,
                          "M=16: {'BLOCK_SIZE_M': 16, 'BLOCK_SIZE_N': 8192, 'BLOCK_SIZE_K': 256, 'GROUP_SIZE_M': 1, "
                          "'num_warps': 4, 'num_stages': 4} is refused by the test_op validator: BLOCK_SIZE_N=8192 "
                          "is larger than 4096"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_table_raises_value_error_naming_file_and_problem(store, case):
    data, raw, match = MALFORMED[case]
    cs.register_validator(OP, _refuse_big_blocks)
    path = write(store[1], data, raw=raw)
    with pytest.raises(ValueError) as e:
        cs.lookup(OP, N, K, DT, 1, 0)
    assert f"config table {path}: " in str(e.value) and match in str(e.value), str(e.value)
    with pytest.raises(ValueError):  # not cached as a success: it fails again
        cs.lookup(OP, N, K, DT, 1, 0)


def test_null_values_stand_for_the_ops_default(store):
    write(store[1], table(ms=(1,)) | {"1": dict(CFG, ACCESS=None)})
    assert cs.lookup(OP, N, K, DT, 1, 0)["ACCESS"] is None


def test_env_dir_that_is_empty_string_is_ignored(store, monkeypatch):
    monkeypatch.setenv(cs.ENV_DIR, "")
    assert cs.roots() == [store[1]]


def test_every_packaged_table_is_valid():
    """The shipped tables (lmkernels/configs/<op>/*.json) load, with the op's own validator, under
    the names the lookup would ask for."""
    import re

    import lmkernels.ops  # the ops register their validators on import
    assert lmkernels.ops.__all__
    paths = sorted(cs.PACKAGED_DIR.glob("*/*.json"))
    if not paths:
        pytest.skip(f"no tables shipped under {cs.PACKAGED_DIR} yet")
    for path in paths:
        m = re.fullmatch(r"N=(\d+),K=(\d+),device_name=([^,]+),dtype=(\w+)\.json", path.name)
        assert m, f"{path.name} does not follow N={{N}},K={{K}},device_name={{GPU}},dtype={{dtype}}.json"
        n, k, dtype = int(m[1]), int(m[2]), m[4]
        table = cs.parse(json.loads(path.read_text()), path.parent.name, str(path), expect=(n, k, dtype))
        assert cs.file_name(n, k, table.meta["gpu"], dtype) == path.name
