"""The command line: info and verify run here (interpreter on a CPU machine); bench refuses without a GPU."""
import subprocess
import sys

import pytest
import torch


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "lmkernels.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_info_names_versions_device_and_modes():
    p = _cli("info")
    assert p.returncode == 0, p.stderr
    for word in ("torch", "triton", "device", "access", "pointer"):
        assert word in p.stdout
    if not torch.cuda.is_available():
        assert "CPU, Triton interpreter" in p.stdout


def test_verify_one_op_passes_and_prints_a_table():
    p = _cli("verify", "--ops", "silu_and_mul")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "| silu_and_mul |" in p.stdout and " 0 failed" in p.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_bench_refuses_without_gpu():
    p = _cli("bench", "norm")
    assert p.returncode != 0 and "needs a GPU" in p.stderr
