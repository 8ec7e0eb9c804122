"""`make demo` runs the main job: the policy on a torch model and its Flax port."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_demo_ports_the_policy_with_the_same_rules_and_plans() -> None:
    res = subprocess.run(
        [sys.executable, "examples/demo.py"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert "10/10 parameters: same rule and same plan in torch and flax" in res.stdout
    assert "== the same policy on the Flax (nnx) port" in res.stdout
    assert "tf_trunc_normal_2sigma" in res.stdout
