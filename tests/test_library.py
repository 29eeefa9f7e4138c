"""torch.library registration: opcheck, torch.compile(fullgraph=True), fake tensors, CUDA graphs."""
import pytest
import torch
from helpers import DEVICE, ON_GPU, randn
from torch._subclasses.fake_tensor import FakeTensorMode

import lmkernels
from lmkernels import reference as ref
from lmkernels.library import OPS

H = 64


def _op_args():
    x = randn(3, H, dtype=torch.bfloat16, seed=1)
    r = randn(3, H, dtype=torch.bfloat16, seed=2)
    w = randn(H, dtype=torch.bfloat16, seed=3)
    g = randn(3, 2 * H, dtype=torch.float16, seed=4)
    pos = torch.tensor([0, 5, 2], dtype=torch.int64, device=DEVICE)
    cache = randn(8, 32, dtype=torch.float32, seed=5)
    qkv = randn(3, 4 * H, dtype=torch.bfloat16, seed=6)  # q: 2 heads of 64, k: 1 head, as column slices
    logits = randn(3, 111, dtype=torch.float32, seed=7)
    seqs = randn(7, 3, 8, dtype=torch.bfloat16, seed=8)  # 3 sequences of 3, 0, 4 tokens
    seq_lens = torch.tensor([3, 0, 4], device=DEVICE)
    return {
        "rms_norm": (x, w, 1e-6, None),
        "rms_norm_out": (torch.empty_like(x), x, w, 1e-6, None),
        "fused_add_rms_norm": (x.clone(), r.clone(), w, 1e-6, None),
        "silu_and_mul": (g, None),
        "silu_and_mul_out": (torch.empty(3, H, dtype=g.dtype, device=DEVICE), g, None),
        "swiglustep_and_mul": (g, 7.0, None),
        "swiglustep_and_mul_out": (torch.empty(3, H, dtype=g.dtype, device=DEVICE), g, 7.0, None),
        "rotary_embedding": (pos, qkv[:, :2 * H], qkv[:, 2 * H:3 * H], H, cache, True, None),
        "mrope": (torch.stack([pos, pos.flip(0), pos]), qkv[:, :2 * H].clone(), None, cache, [4, 6, 6], H, None,
                  True, False, None),
        "token_logprobs": (logits, torch.tensor([[0, 110], [5, 5], [1, 2]], device=DEVICE), None),
        "token_ranks": (logits, torch.tensor([3, 110, 0], device=DEVICE), None),
        "merge_attn_states": (torch.empty(3, 2, H, dtype=torch.bfloat16, device=DEVICE),  # T 3, 2 heads of 64
                              randn(3, 2, H, dtype=torch.bfloat16, seed=11), randn(2, 3, seed=12),
                              randn(3, 2, H, dtype=torch.bfloat16, seed=13), randn(2, 3, seed=14),
                              torch.empty(2, 3, device=DEVICE), None),
        "correct_attn_out": (randn(3, 2, H, dtype=torch.bfloat16, seed=15), randn(3, 3, 2, seed=16), 1, True, None),
        "pack_seq": (seqs, seq_lens, float("-inf"), 4, None),
        "unpack_seq": (ref.pack_seq(seqs, seq_lens, 0.0, max_len=4), seq_lens, 7, None),
        "reshape_and_cache_flash": _kv_cache_args(),
        # ll_gemm: 3 rows, K 67 (odd), N 5, bf16 bias, fp32 out (a router's call); tests/test_small_gemm.py has fp8
        "ll_gemm": (randn(3, 67, dtype=torch.bfloat16, seed=17), randn(5, 67, dtype=torch.bfloat16, seed=18),
                    randn(5, dtype=torch.bfloat16, seed=19), torch.float32, None, None, None, None),
        # scaled_mm: int8 (opcheck's schema check has no fp8 mul on the CPU), b = w.t(), per-token x
        # per-channel scales, a bias; tests/test_scaled_mm.py has a config and split-K
        "scaled_mm": (torch.randint(-128, 128, (3, H), dtype=torch.int8, device=DEVICE),
                      torch.randint(-128, 128, (40, H), dtype=torch.int8, device=DEVICE).t(),
                      randn(3, 1, seed=20).abs(), randn(1, 40, seed=21).abs(), torch.bfloat16, randn(40, seed=22),
                      None, None),
    }


def _kv_cache_args(kv="fp8", cache_dtype=torch.uint8):
    """key, value: slices of a [3, 3, 2, 64] qkv; HND caches of 4 blocks of 8; one skipped slot; per-head scales."""
    qkv = randn(3, 3, 2, H, dtype=torch.bfloat16, seed=11)
    cache = torch.zeros(4, 2, 8, H, dtype=cache_dtype, device=DEVICE).transpose(1, 2)
    scale = torch.tensor([0.5, 3.0], device=DEVICE)
    return (qkv[:, 1], qkv[:, 2], cache, cache.clone(), torch.tensor([5, -1, 17], device=DEVICE), kv, scale, scale,
            None)


@pytest.mark.parametrize("name", OPS)
def test_opcheck(name):
    op = getattr(torch.ops.lmkernels, name).default
    torch.library.opcheck(op, _op_args()[name])


def _block(x, r, w, g):
    x, r = lmkernels.fused_add_rms_norm(x, r, w, 1e-6)
    y = lmkernels.rms_norm(x, w, 1e-5)
    return y, r, lmkernels.silu_and_mul(g), lmkernels.swiglustep_and_mul(g, 3.0)


def test_torch_compile_fullgraph_matches_eager():
    w = randn(H, dtype=torch.bfloat16, seed=3)
    inputs = [randn(4, H, dtype=torch.bfloat16, seed=s) for s in (1, 2)] + [w, randn(4, 2 * H, dtype=torch.bfloat16, seed=4)]
    eager_in = [t.clone() for t in inputs]
    compiled = torch.compile(_block, fullgraph=True)
    got = compiled(*inputs)
    want = _block(*eager_in)
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    assert torch.equal(inputs[0], eager_in[0]) and torch.equal(inputs[1], eager_in[1])  # mutations kept


def _decode_step(pos, qkv, cache, logits, ids):
    lmkernels.rotary_embedding(pos, qkv[:, :2 * H], qkv[:, 2 * H:3 * H], H, cache)
    lmkernels.mrope(torch.stack([pos, pos, pos]), qkv[:, 3 * H:], None, cache, [4, 6, 6], H)
    return lmkernels.token_logprobs(logits, ids[:, None]), lmkernels.token_ranks(logits, ids)


def test_torch_compile_fullgraph_rotary_and_sampling():
    pos = torch.tensor([0, 5, 2, 7], dtype=torch.int64, device=DEVICE)
    cache = randn(8, 32, dtype=torch.float32, seed=5)
    qkv = randn(4, 4 * H, dtype=torch.bfloat16, seed=6)
    logits = randn(4, 1000, dtype=torch.bfloat16, seed=7)
    ids = torch.tensor([0, 999, 5, 17], device=DEVICE)
    qkv_eager = qkv.clone()
    got = torch.compile(_decode_step, fullgraph=True)(pos, qkv, cache, logits, ids)
    want = _decode_step(pos, qkv_eager, cache, logits, ids)
    assert torch.equal(qkv, qkv_eager)  # the in-place rotations happened under compile too
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_fake_tensors_give_shapes_without_running():
    with FakeTensorMode():
        x = torch.empty(5, 7, H, dtype=torch.bfloat16, device=DEVICE)
        y = lmkernels.rms_norm(x, torch.empty(H, dtype=torch.bfloat16, device=DEVICE))
        z = lmkernels.silu_and_mul(x)
        assert y.shape == (5, 7, H) and z.shape == (5, 7, H // 2) and z.dtype == torch.bfloat16
        with pytest.raises(ValueError, match="weight.shape"):
            lmkernels.rms_norm(x, torch.empty(H + 1, dtype=torch.bfloat16, device=DEVICE))


@pytest.mark.parametrize("name", ["pack_seq", "unpack_seq"])
def test_opcheck_data_dependent_sizes(name):
    """pack_seq without max_len and unpack_seq without num_tokens: sizes from the data (unbacked)."""
    args = _op_args()[name]
    torch.library.opcheck(getattr(torch.ops.lmkernels, name).default, args[:-2] + (None, None))


def _pack_roundtrip(x, lengths):
    p = lmkernels.pack_seq(x, lengths, 0.0, max_len=5)
    return p, lmkernels.unpack_seq(p * 2, lengths, num_tokens=x.shape[0]), lmkernels.pack_seq(x, lengths, -1.0) + 1


def test_torch_compile_fullgraph_packing():
    x = randn(9, 2, 8, dtype=torch.bfloat16, seed=9)
    lengths = torch.tensor([4, 0, 5], device=DEVICE)
    got = torch.compile(_pack_roundtrip, fullgraph=True)(x, lengths)
    want = _pack_roundtrip(x, lengths)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_fake_tensors_packing_sizes():
    from torch.fx.experimental.symbolic_shapes import ShapeEnv
    with FakeTensorMode(shape_env=ShapeEnv()):
        x = torch.empty(7, 3, 8, dtype=torch.bfloat16, device=DEVICE)
        lengths = torch.empty(3, dtype=torch.int64, device=DEVICE)
        assert lmkernels.pack_seq(x, lengths, max_len=5).shape == (3, 5, 3, 8)
        p = lmkernels.pack_seq(x, lengths)
        assert p.shape[0] == 3 and isinstance(p.shape[1], torch.SymInt) and p.shape[2:] == (3, 8)
        assert lmkernels.unpack_seq(torch.empty(3, 5, 4, device=DEVICE), lengths, num_tokens=6).shape == (6, 4)
        with pytest.raises(ValueError, match=r"max_len=-1"):
            lmkernels.pack_seq(x, lengths, max_len=-1)


def _kv_cache_step(key, value, kc, vc, k8, v8, slots, scale):
    lmkernels.reshape_and_cache_flash(key, value, kc, vc, slots)
    lmkernels.reshape_and_cache_flash(key, value, k8, v8, slots, "fp8", scale, scale)
    return kc[:, :2].float() * 2  # read after the in-place write


def test_torch_compile_fullgraph_kv_cache():
    args = _kv_cache_args("auto", torch.bfloat16)
    k8, v8 = _kv_cache_args()[2:4]
    inputs = [*args[:4], k8, v8, args[4], args[6]]
    eager = [t.clone() for t in inputs]
    got = torch.compile(_kv_cache_step, fullgraph=True)(*inputs)
    want = _kv_cache_step(*eager)
    assert torch.equal(got, want)
    for a, b in zip(inputs[2:6], eager[2:6]):  # the caches were written under compile too
        assert torch.equal(a.view(torch.uint8), b.view(torch.uint8))


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a GPU")
def test_kv_cache_in_cuda_graph():
    """Captured once, replayed with new key/value data and new slots."""
    key, value, kc, vc, slots = _kv_cache_args("auto", torch.bfloat16)[:5]
    args8 = _kv_cache_args()
    k8, v8, scale = args8[2], args8[3], args8[6]
    key, value = key.contiguous(), value.contiguous()
    caches = [kc, vc, k8, v8]
    _kv_cache_step(key, value, kc, vc, k8, v8, slots, scale)  # compile outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        _kv_cache_step(key, value, kc, vc, k8, v8, slots, scale)
    for seed in (12, 13):
        key.copy_(randn(*key.shape, dtype=key.dtype, seed=seed))
        value.copy_(randn(*value.shape, dtype=value.dtype, seed=seed + 1))
        slots.copy_(torch.randperm(32, device=DEVICE)[:3])
        want = [c.clone() for c in caches]
        for c in caches:
            c.view(torch.uint8).fill_(0xFF)
        for w in want:
            w.view(torch.uint8).fill_(0xFF)
        graph.replay()
        torch.cuda.synchronize()
        _kv_cache_step(key, value, *want, slots, scale)
        for c, w in zip(caches, want):
            assert torch.equal(c.view(torch.uint8), w.view(torch.uint8))


def _cp_step(out, p, pl, s, sl, olse, o2, lses):
    lmkernels.merge_attn_states(out, p, pl, s, sl, olse)
    o2, lse = lmkernels.correct_attn_out(o2, lses, 1)
    return out * 2, olse + 1, o2 + 0, lse


def _cp_inputs(seed):
    return [randn(5, 3, H, dtype=torch.bfloat16, seed=seed), randn(3, 5, seed=seed + 1),
            randn(5, 3, H, dtype=torch.bfloat16, seed=seed + 2), randn(3, 5, seed=seed + 3),
            randn(4, 3, 80, dtype=torch.float16, seed=seed + 4), randn(3, 4, 3, seed=seed + 5) * 3]


def test_torch_compile_fullgraph_context_parallel():
    p, pl, s, sl, o2, lses = _cp_inputs(20)
    bufs = [torch.empty(5, 3, H, dtype=torch.bfloat16, device=DEVICE), torch.empty(3, 5, device=DEVICE)]
    o2_eager = o2.clone()
    got = torch.compile(_cp_step, fullgraph=True)(bufs[0], p, pl, s, sl, bufs[1], o2, lses)
    want = _cp_step(torch.empty_like(bufs[0]), p, pl, s, sl, torch.empty_like(bufs[1]), o2_eager, lses)
    assert torch.equal(o2, o2_eager), "the in-place correction happened under compile too"
    assert all(torch.equal(a, b) for a, b in zip(got, want))


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a GPU")
def test_context_parallel_in_cuda_graph():
    inputs = _cp_inputs(30)
    for access in ("pointer", "descriptor"):
        out, olse = torch.empty(5, 3, H, dtype=torch.bfloat16, device=DEVICE), torch.empty(3, 5, device=DEVICE)
        o2 = inputs[4].clone()

        def step():
            lmkernels.merge_attn_states(out, *inputs[:4], olse, access=access)
            return lmkernels.correct_attn_out(o2, inputs[5], 1, access=access)[1]
        step()  # compile outside the capture
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            lse = step()
        for seed in (40, 50):
            new = _cp_inputs(seed)
            for t, n in zip(inputs, new):
                t.copy_(n)
            o2.copy_(new[4])
            out.fill_(float("nan"))
            graph.replay()
            torch.cuda.synchronize()
            want_out, want_olse = torch.empty_like(out), torch.empty_like(olse)
            lmkernels.merge_attn_states(want_out, *new[:4], want_olse)
            want_o2, want_lse = lmkernels.correct_attn_out(new[4].clone(), new[5], 1)
            assert torch.equal(out, want_out) and torch.equal(olse, want_olse)
            assert torch.equal(o2, want_o2) and torch.equal(lse, want_lse)


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a GPU")
def test_cuda_graph_capture_and_replay_with_new_data():
    x = randn(16, 4096, dtype=torch.bfloat16, seed=5)
    w = randn(4096, dtype=torch.bfloat16, seed=7)
    g = randn(16, 2 * 4096, dtype=torch.bfloat16, seed=8)
    y, a, s = torch.empty_like(x), torch.empty(16, 4096, dtype=torch.bfloat16, device=DEVICE), torch.empty_like(x)
    for access in ("pointer", "descriptor"):
        def step():
            lmkernels.rms_norm(x, w, out=y, access=access)
            lmkernels.silu_and_mul(g, out=a, access=access)
            lmkernels.swiglustep_and_mul(g, 7.0, out=s, access=access)
        step()  # compile outside the capture
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        for seed in (10, 11):
            x.copy_(randn(16, 4096, dtype=torch.bfloat16, seed=seed))
            g.copy_(randn(16, 8192, dtype=torch.bfloat16, seed=seed + 1))
            y.fill_(float("nan"))
            graph.replay()
            torch.cuda.synchronize()
            assert torch.equal(y, lmkernels.rms_norm(x, w))
            assert torch.equal(a, ref.silu_and_mul(g))
            assert torch.equal(s, lmkernels.swiglustep_and_mul(g, 7.0))


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a GPU")
def test_fused_add_in_cuda_graph():
    x0 = randn(8, 1024, dtype=torch.bfloat16, seed=9)
    r0 = randn(8, 1024, dtype=torch.bfloat16, seed=10)
    w = randn(1024, dtype=torch.bfloat16, seed=11)
    x, r = x0.clone(), r0.clone()
    lmkernels.fused_add_rms_norm(x, r, w)
    x.copy_(x0), r.copy_(r0)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        lmkernels.fused_add_rms_norm(x, r, w)
    graph.replay()
    xe, re_ = x0.clone(), r0.clone()
    lmkernels.fused_add_rms_norm(xe, re_, w)
    assert torch.equal(x, xe) and torch.equal(r, re_)


@pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a GPU")
def test_rotary_and_sampling_in_cuda_graph():
    pos = torch.tensor([0, 5, 2, 7], dtype=torch.int64, device=DEVICE)
    cache = randn(8, 32, dtype=torch.float32, seed=5)
    qkv0 = randn(4, 4 * H, dtype=torch.bfloat16, seed=6)
    logits = randn(4, 151936, dtype=torch.bfloat16, seed=7)
    ids = torch.tensor([0, 151935, 5, 17], device=DEVICE)
    qkv = qkv0.clone()
    _decode_step(pos, qkv, cache, logits, ids)  # compile outside the capture
    qkv.copy_(qkv0)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = _decode_step(pos, qkv, cache, logits, ids)
    for seed in (8, 9):
        qkv.copy_(qkv0)
        logits.copy_(randn(4, 151936, dtype=torch.bfloat16, seed=seed))
        graph.replay()
        torch.cuda.synchronize()
        qkv_eager = qkv0.clone()
        want = _decode_step(pos, qkv_eager, cache, logits, ids)
        assert torch.equal(qkv, qkv_eager)
        assert torch.equal(out[0], want[0]) and torch.equal(out[1], want[1])
