"""Benchmarks are not tests (no timing is asserted); this runs every scenario at a tiny size
so their code cannot rot."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_every_scenario_runs_at_a_tiny_size() -> None:
    res = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--scale", "0.02", "--repeats", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    for n in ("1.", "2.", "3.", "4.", "6."):
        assert f"### {n}" in res.stdout, res.stdout[-2000:]
    assert "| **" in res.stdout
