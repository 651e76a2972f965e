"""Short smoke runs of the benchmark scripts against the real stack, so they keep working:
`benchmarks/soak.py` (10 s instead of 10 min) and `benchmarks/serving_bench.py` (one round of
one second per configuration). They need Debian's `wrk`: without it these tests fail (never
skip) with the command that installs it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from synthetic_model import ensure_champion

from mlplatform.commands.serving import wait_for_version
from mlplatform.settings import REPO_ROOT


@pytest.fixture(scope="module")
def served(stack) -> str:
    assert shutil.which("wrk"), "the benchmarks need wrk: apt-get install -y wrk"
    version = str(ensure_champion(stack).version)
    wait_for_version(stack, version, timeout=180)
    return version


def run(script: str, *args: str, timeout: float) -> str:
    """Run a benchmark script with this session's stack settings (they are in os.environ)."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    print(done.stdout[-3000:])
    assert done.returncode == 0, (
        f"{script} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def test_soak_smoke(served):
    out = run(
        "soak.py", "--minutes", "0.2", "--slice-seconds", "4", "--warmup-seconds", "4", timeout=300
    )
    assert "FAIL" not in out
    assert out.count("PASS") == 4, out


def test_serving_bench_smoke(served):
    out = run(
        "serving_bench.py", "--seconds", "1", "--rounds", "1", "--batch-rows", "2000", timeout=400
    )
    assert "median of 1 rounds" in out and "batch from Parquet" in out, out
