"""The ops' fast paths (a few attribute reads for the common call) run here too, not only on a GPU,
and hand anything unusual to the careful path that explains the problem."""
import pytest
import torch
from helpers import ON_GPU, randn

import lmkernels
from lmkernels import reference as ref
from lmkernels.ops import activation as act_ops
from lmkernels.ops import norm as norm_ops
from lmkernels.runtime import launch


def _forbid(*_a, **_k):
    raise AssertionError("the careful path ran for a call the fast path should take")


def test_common_calls_take_the_fast_path(monkeypatch):
    monkeypatch.setattr(norm_ops, "check_norm", _forbid)
    monkeypatch.setattr(act_ops, "check_gated", _forbid)
    x = randn(3, 64, dtype=torch.bfloat16, seed=1)
    w = randn(64, dtype=torch.bfloat16, seed=2)
    torch.testing.assert_close(lmkernels.rms_norm(x, w), ref.rms_norm(x, w), rtol=2**-7, atol=1e-2)
    r = randn(3, 64, dtype=torch.bfloat16, seed=3)
    lmkernels.fused_add_rms_norm(x.clone(), r.clone(), w)
    g = randn(3, 128, dtype=torch.float16, seed=4)
    out = torch.empty(3, 64, dtype=torch.float16, device=g.device)
    lmkernels.silu_and_mul(g, out=out)
    torch.testing.assert_close(out, ref.silu_and_mul(g), rtol=2**-9, atol=1e-3)


@pytest.mark.parametrize("case", ["3d", "int_eps", "strided_last", "weight_dtype"])
def test_unusual_calls_take_the_careful_path(monkeypatch, case):
    seen = []
    real = norm_ops.check_norm
    monkeypatch.setattr(norm_ops, "check_norm", lambda *a: (seen.append(1), real(*a)))
    x = randn(4, 64, dtype=torch.float32, seed=5)
    w = randn(64, dtype=torch.float32, seed=6)
    if case == "3d":
        lmkernels.rms_norm(x.view(2, 2, 64), w)
    elif case == "int_eps":
        lmkernels.rms_norm(x, w, 1)
    elif case == "strided_last":
        with pytest.raises(ValueError, match="stride"):
            lmkernels.rms_norm(randn(64, 4, seed=7).t(), w)
    else:
        with pytest.raises(TypeError, match="weight.dtype"):
            lmkernels.rms_norm(x, w.half())
    assert seen


@pytest.mark.skipif(not (ON_GPU and launch.FAST_LAUNCH), reason="the launch fast path exists only for compiled kernels on a GPU")
def test_repeat_calls_skip_tritons_launch(monkeypatch):
    """After the first call of a specialisation, calls launch through Launcher.fast: Triton's
    JITFunction.run is never entered again, and the results stay right."""
    x = randn(5, 4096, dtype=torch.bfloat16, seed=8)
    w = randn(4096, dtype=torch.bfloat16, seed=9)
    g = randn(5, 2 * 1024, dtype=torch.bfloat16, seed=10)
    want = (lmkernels.rms_norm(x, w), lmkernels.silu_and_mul(g))
    misses = (norm_ops._launch.misses, act_ops._launch.misses)
    monkeypatch.setattr(norm_ops._rms_norm_kernel, "run", _forbid)
    monkeypatch.setattr(act_ops._gated_act_kernel, "run", _forbid)
    for _ in range(3):
        assert torch.equal(lmkernels.rms_norm(x, w), want[0])
        assert torch.equal(lmkernels.silu_and_mul(g), want[1])
        assert torch.equal(lmkernels.rms_norm(x, w, access="pointer"), want[0])
    assert (norm_ops._launch.misses, act_ops._launch.misses) == misses
