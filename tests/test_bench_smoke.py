"""Benchmarks are not tests (no timing is asserted); this runs every scenario at a tiny size,
each in its own process as make bench does, so their code cannot rot."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_every_scenario_runs_at_a_tiny_size(tmp_path: pathlib.Path) -> None:
    res = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--isolate", "--scale", "0.02", "--repeats", "1",
         "--only", "1,2,3,4,5,6,check,fingerprint", "--out", str(tmp_path / "bench.md")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    for n in ("1.", "2.", "3.", "4.", "6."):
        assert f"### {n}" in res.stdout, res.stdout[-2000:]
    assert "| **" in res.stdout
    written = (tmp_path / "bench.md").read_text()
    assert "(a process per scenario)" in written
    for n in ("1.", "2.", "3.", "4.", "5.", "6.", "check:", "fingerprint:"):
        assert f"### {n}" in written, written[-2000:]


@pytest.mark.slow  # the real packages' imports, three RSS processes: a minute or more
def test_the_zoo_scenarios_run_at_a_tiny_size(tmp_path: pathlib.Path) -> None:
    """Scenarios 7 (the zoo), 8 (what all or nothing costs) and 9 (the 7B model, behind
    BENCH_7B=1) at a tiny size."""
    res = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--isolate", "--scale", "0.02", "--repeats", "1",
         "--only", "7,8,9", "--out", str(tmp_path / "bench.md")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "BENCH_7B": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    written = (tmp_path / "bench.md").read_text()
    for n in ("7.", "8.", "9."):
        assert f"### {n}" in written, written[-2000:]
    assert "peak RSS of apply" in written and "| **" in written
