"""Test helpers for users' CI: ``assert_initialized_like(model, policy)``.

A test that fails when a model's init drifts from its declared policy::

    import initspec.testing

    def test_gpt2_init_follows_the_preset():
        model = GPT2LMHeadModel(GPT2Config(n_layer=4))
        initspec.testing.assert_initialized_like(model, "gpt2")

It raises ``initspec.checker.InitCheckError`` (an ``AssertionError``), whose message is the
table of the parameters that do not match, with the evidence (``std x2.0000``, the test
that failed and its Holm-adjusted p-value). The model may be a torch ``nn.Module`` or state
dict, a Flax ``nnx.Module`` or linen parameter tree (``model=`` the linen module), or a
mapping of names to NumPy arrays; the adapter for it is imported by name only when such a
model is given, so this module (and the core) never import torch or JAX themselves.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

from initspec.checker import CheckReport, check
from initspec.policy import PolicyLike


def _framework(model: Any) -> str:
    """``torch``, ``jax`` or ``numpy``: which check describes ``model``."""
    mro = [c.__module__ for c in type(model).__mro__]
    if any(m == "torch" or m.startswith("torch.") for m in mro):
        return "torch"
    if any(m == "flax" or m.startswith(("flax.", "jax", "jaxlib")) for m in mro):
        return "jax"
    if isinstance(model, Mapping):
        leaves = list(_leaves(model))
        if leaves and "torch" in sys.modules and all(
            type(v).__module__.startswith("torch") for v in leaves
        ):
            return "torch"
        if any(type(v).__module__.startswith(("jax", "jaxlib", "flax")) for v in leaves):
            return "jax"
    return "numpy"


def _leaves(tree: Mapping[Any, Any]) -> Any:
    for value in tree.values():
        if isinstance(value, Mapping):
            yield from _leaves(value)
        else:
            yield value


def check_model(model: Any, policy: PolicyLike, /, **kwargs: Any) -> CheckReport:
    """``check`` of any supported model through its framework's adapter (module docstring)."""
    framework = _framework(model)
    if framework == "numpy":
        return check(model, policy, **kwargs)
    adapter = importlib.import_module("initspec_torch" if framework == "torch" else "initspec_jax")
    report: CheckReport = adapter.check(model, policy, **kwargs)
    return report


def assert_initialized_like(model: Any, policy: PolicyLike, /, **kwargs: Any) -> CheckReport:
    """Fail (``InitCheckError``, an ``AssertionError``) unless every parameter of ``model``
    looks initialized as ``policy`` says; return the report when it does. ``kwargs`` go to
    the check: ``alpha`` (default 1e-4: the chance that a correct model fails), ``strict``,
    ``model=`` (a linen module), ``layout``."""
    __tracebackhide__ = True  # pytest: the failure points at the caller's line
    report = check_model(model, policy, **kwargs)
    report.assert_ok()
    return report
