"""The error hierarchy: every problem initspec reports is an ``InitSpecError``.

``InitSpecError`` subclasses ``ValueError`` so that code written against
``torch.nn.init`` (which raises ``ValueError``) keeps catching it.
"""

from __future__ import annotations

import difflib
import reprlib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

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


def suggest(value: Any, allowed: Iterable[str]) -> str | None:
    """The allowed name closest to ``value`` (``difflib``'s ratio of at least 0.6: one or
    two letters off in a kind, field, preset or enum value), else None."""
    if not isinstance(value, str) or not value or len(value) > 200:
        return None
    choices = [a for a in allowed if isinstance(a, str)]
    if value in choices:
        return None
    folded = {c.lower().replace("-", "_"): c for c in choices}
    key = value.lower().replace("-", "_")
    if key in folded:  # only the case or a dash differs
        return folded[key]
    close = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.6)
    return folded[close[0]] if close else None


@dataclass(frozen=True)
class Problem:
    """One problem of a spec or policy: where (``loc``, a JSON location), the bad value,
    what is allowed, and the allowed name closest to the value, if one is close."""

    loc: tuple[str | int, ...]
    value: Any
    allowed: str
    suggestion: str | None = None

    @property
    def location(self) -> str:
        return format_location(self.loc)

    def __str__(self) -> str:
        hint = f" (did you mean {printable(repr(self.suggestion))}?)" if self.suggestion else ""
        return f"{self.location}: {_short_repr(self.value)} is invalid: {printable(self.allowed)}{hint}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the location as text and as a list, the value (its short ``repr``
        unless it is a JSON scalar), what is allowed, the suggestion."""
        json_scalar = value_is_json_scalar(self.value)
        return {
            "location": self.location,
            "loc": list(self.loc),
            "value": self.value if json_scalar else _short_repr(self.value),
            "allowed": self.allowed,
            "suggestion": self.suggestion,
        }


def value_is_json_scalar(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, str):
        return len(value) <= 200
    if isinstance(value, int):
        return abs(value) < 2**63
    return isinstance(value, float) and value == value and abs(value) != float("inf")


class InitSpecError(ValueError):
    """Base class of every error initspec raises."""


class SpecError(InitSpecError):
    """An invalid spec: names the JSON location, the bad value and what is allowed.

    ``problems`` lists every problem found (one ``Problem`` each, in the order found);
    ``loc``, ``value``, ``allowed`` and ``suggestion`` are the first one's."""

    def __init__(
        self,
        loc: tuple[str | int, ...],
        value: Any,
        allowed: str,
        *,
        suggestion: str | None = None,
        problems: Sequence[Problem] | None = None,
    ) -> None:
        first = Problem(loc, value, allowed, suggestion)
        self.problems: list[Problem] = list(problems) if problems else [first]
        first = self.problems[0]
        self.loc, self.value, self.allowed = first.loc, first.value, first.allowed
        self.suggestion = first.suggestion
        if len(self.problems) == 1:
            text = str(first)
        else:
            text = f"{len(self.problems)} problems:\n  " + "\n  ".join(map(str, self.problems))
        super().__init__(text)

    @classmethod
    def of(cls: type[_E], problems: Sequence[Problem]) -> _E:
        """One error listing ``problems`` (at least one)."""
        first = problems[0]
        return cls(first.loc, first.value, first.allowed, problems=problems)


_E = TypeVar("_E", bound=SpecError)


class PolicyError(SpecError):
    """An invalid policy (its rules, matches, presets or ``extends`` chain)."""


class LoadError(PolicyError):
    """A policy or spec source that cannot be read or parsed: missing, a directory, a FIFO
    or device, unreadable, too large, not UTF-8 text, not JSON within the loader's limits
    (``initspec.jsonload``), a name that is neither a preset nor a file. The message names
    the source, never its content. The CLI exits with 2 for it (the command could not run),
    with 1 for a document that parses but is invalid."""


class MissingExtraError(ImportError):
    """A framework or package a function needs is not installed; the message names the
    extra that installs it (``pip install 'initspec[torch]'``), or the package."""

    def __init__(self, what: str, module: str, extra: str | None) -> None:
        self.module, self.extra = module, extra
        install = f"pip install 'initspec[{extra}]'" if extra else f"pip install {module}"
        super().__init__(f"{what} needs {module}, which is not installed: {install}")
        self.name = module


def require(module: str, extra: str, what: str) -> Any:
    """``import module``, or a ``MissingExtraError`` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == module.split(".")[0]:
            raise MissingExtraError(what, module.split(".")[0], extra) from None
        raise


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
