"""Static check: no undefined names or unused imports anywhere in the package, tests or benchmarks.

GPU-only branches are not all reached by the CPU suite; pyflakes still reads them (a NameError in
the GPU fast path once got as far as the H100)."""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_pyflakes_clean():
    pytest.importorskip("pyflakes", reason="pyflakes is installed by the README's test command")
    p = subprocess.run([sys.executable, "-m", "pyflakes", "lmkernels", "tests", "benchmarks"],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
