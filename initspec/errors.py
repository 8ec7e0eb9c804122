"""The error hierarchy: every problem initspec reports is an ``InitSpecError``.

``InitSpecError`` subclasses ``ValueError`` so that code written against
``torch.nn.init`` (which raises ``ValueError``) keeps catching it.
"""

from __future__ import annotations

import reprlib
import unicodedata
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 78
_REPR.maxother = 78
_REPR.maxlong = 40


def format_location(loc: tuple[str | int, ...]) -> str:
    """JSONPath-like location: ``("rules", 2, "init", "std")`` -> ``$.rules[2].init.std``."""
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{printable(str(part))}"
    return out


def _short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for any value: a 5,000-deep list, an int of
    10,000 digits or an object whose ``__repr__`` fails give a short text, never an error."""
    try:
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
            text = f"<int of about {int(value.bit_length() * 0.30103) + 1} digits>"
        elif isinstance(value, (str, bytes, int, float, bool, type(None))):
            text = repr(value[: limit * 2] if isinstance(value, (str, bytes)) else value)
        else:
            text = _REPR.repr(value)
    except Exception:  # a user object whose repr raises
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (ESC, CR, LF, ...), format
    characters (bidi overrides), surrogates, private-use and unassigned code points and
    line/paragraph separators become ``\\xNN`` / ``\\uNNNN`` escapes; nothing else changes."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() and unicodedata.category(ch) not in ("Zl", "Zp"):
            out.append(ch)
            continue
        code = ord(ch)
        if code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


class InitSpecError(ValueError):
    """Base class of every error initspec raises."""


class SpecError(InitSpecError):
    """An invalid spec: names the JSON location, the bad value and what is allowed."""

    def __init__(self, loc: tuple[str | int, ...], value: Any, allowed: str) -> None:
        self.loc = loc
        self.value = value
        self.allowed = allowed
        super().__init__(
            f"{format_location(loc)}: {_short_repr(value)} is invalid: {printable(allowed)}"
        )


class PolicyError(SpecError):
    """An invalid policy (its rules, matches, presets or ``extends`` chain)."""


class LoadError(PolicyError):
    """A policy or spec source that cannot be read: missing, a directory, a FIFO or device,
    unreadable, too large, not UTF-8 text. The message names the source, never its content."""


class ShapeError(InitSpecError):
    """A spec cannot be applied to a shape or layout (too few dims, bad axes, ...)."""


class BackendError(InitSpecError):
    """A backend cannot do what was asked (unsupported dtype, non-tensor argument, ...)."""


class PartialWriteError(BackendError):
    """A write failed after every check had passed (out of memory, a device error, a
    tensor subclass that refused it) and some parameters written in place could not be
    given their previous values back: the message names each of them; the cause chain
    holds the failure. ``atomic="backup"`` avoids it at the price of a copy."""


class InitSpecWarning(UserWarning):
    """Something a policy did not do that the user should hear of: a rule that matched no
    parameter, a parameter no rule matched (kept as it was). ``strict=True`` (or the
    policy's ``"strict": true``, or the CLI's ``--strict``) makes them errors."""
