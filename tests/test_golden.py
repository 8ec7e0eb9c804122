"""Behaviour pinned across refactors: every digest of tests/golden.py equals the fixture.

A failure lists the cases whose values changed. Regenerate the fixture (``python
tests/golden.py --write``) only for a deliberate change of values, named in the commit.
"""

from __future__ import annotations

import json

import golden
import pytest

pytest.importorskip("torch")
pytest.importorskip("jax")

EXPECTED: dict[str, str] = json.loads(golden.FIXTURE.read_text())


@pytest.mark.parametrize(
    "group", [golden._numpy_cases, golden._torch_cases, golden._jax_cases, golden._apply_cases]
)
def test_digests_unchanged(group) -> None:
    got = dict(group())
    assert got, "no case computed"
    missing = sorted(set(got) - set(EXPECTED))
    changed = sorted(k for k in got if k in EXPECTED and got[k] != EXPECTED[k])
    assert not missing, f"cases with no golden digest: {missing[:10]}"
    assert not changed, f"{len(changed)} case(s) changed values: {changed[:20]}"


def test_portable_stream_equal_across_backends() -> None:
    """The portable stream's promise, on the pinned digests: NumPy, torch and JAX (its
    Flax-layout result transposed back) give the same float32 bytes for every kind, and
    torch and JAX the same bfloat16 bytes."""
    names = sorted(k.split("/", 3)[3] for k in EXPECTED if k.startswith("numpy/portable/float32/"))
    assert len(names) == len(golden.CASES)
    for name in names:
        ref = EXPECTED[f"numpy/portable/float32/{name}"]
        assert EXPECTED[f"torch/portable/float32/{name}"] == ref, name
        assert EXPECTED[f"jax/portable/float32/{name}"] == ref, name
        assert (
            EXPECTED[f"torch/portable/bfloat16/{name}"] == EXPECTED[f"jax/portable/bfloat16/{name}"]
        ), name
