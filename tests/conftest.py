"""Shared fixtures: one smoke-profile reproduce per test session, in a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def smoke_env(tmp: Path) -> dict:
    return {**os.environ, "SSMAX_RESULTS_DIR": str(tmp / "results"), "SSMAX_CHECKPOINT_DIR": str(tmp / "ckpt")}


def ssmax_cli(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ssmax", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory) -> Path:
    """`python -m ssmax reproduce --profile smoke` once, into a temporary results folder (with
    the committed benchmark table beside it, which the appendix reads)."""
    tmp = tmp_path_factory.mktemp("smoke")
    t0 = time.perf_counter()
    proc = ssmax_cli(["reproduce", "--profile", "smoke"], smoke_env(tmp), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"smoke reproduce: {time.perf_counter() - t0:.1f} s")
    bench = REPO / "data" / "results" / "bench"
    if bench.is_dir():
        shutil.copytree(bench, tmp / "results" / "bench")
    return tmp


@pytest.fixture
def results_dir(smoke_results, monkeypatch) -> Path:
    """Point the package (and any kernel started from this process) at the smoke results."""
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(smoke_results / "results"))
    monkeypatch.setenv("SSMAX_CHECKPOINT_DIR", str(smoke_results / "ckpt"))
    return smoke_results / "results"
