"""The error hierarchy: every problem initspec reports is an ``InitSpecError``.

``InitSpecError`` subclasses ``ValueError`` so that code written against
``torch.nn.init`` (which raises ``ValueError``) keeps catching it.
"""

from __future__ import annotations

from typing import Any


def format_location(loc: tuple[str | int, ...]) -> str:
    """JSONPath-like location: ``("rules", 2, "init", "std")`` -> ``$.rules[2].init.std``."""
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class InitSpecError(ValueError):
    """Base class of every error initspec raises."""


class SpecError(InitSpecError):
    """An invalid spec: names the JSON location, the bad value and what is allowed."""

    def __init__(self, loc: tuple[str | int, ...], value: Any, allowed: str) -> None:
        self.loc = loc
        self.value = value
        self.allowed = allowed
        super().__init__(f"{format_location(loc)}: {_short_repr(value)} is invalid: {allowed}")


class PolicyError(SpecError):
    """An invalid policy (its rules, matches, presets or ``extends`` chain)."""


class ShapeError(InitSpecError):
    """A spec cannot be applied to a shape or layout (too few dims, bad axes, ...)."""


class BackendError(InitSpecError):
    """A backend cannot do what was asked (unsupported dtype, non-tensor argument, ...)."""
