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
    return {
        "rms_norm": (x, w, 1e-6, None),
        "rms_norm_out": (torch.empty_like(x), x, w, 1e-6, None),
        "fused_add_rms_norm": (x.clone(), r.clone(), w, 1e-6, None),
        "silu_and_mul": (g, None),
        "silu_and_mul_out": (torch.empty(3, H, dtype=g.dtype, device=DEVICE), g, None),
        "swiglustep_and_mul": (g, 7.0, None),
        "swiglustep_and_mul_out": (torch.empty(3, H, dtype=g.dtype, device=DEVICE), g, 7.0, None),
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
