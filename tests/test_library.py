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
    }


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
