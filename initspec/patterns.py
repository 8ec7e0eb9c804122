"""Policy patterns that match in bounded time: regexes run on RE2, globs on a translation
that cannot backtrack.

- ``regex`` conditions are compiled by RE2 (``google-re2``), a linear-time engine: no
  backtracking at all, so no pattern is catastrophic. RE2 refuses what it cannot do in
  linear time (backreferences, lookahead and lookbehind, atomic groups, possessive repeats);
  initspec also refuses patterns whose compiled program has more than
  ``MAX_REGEX_PROGRAM`` instructions, which bounds a match at about 15 ns per instruction
  and character: a few milliseconds on a 1,000-character path.
- ``path`` globs use ``fnmatch.translate``: the fixed pieces between ``*``s are found
  leftmost with atomic lookaheads, never retried, so a match is O(len(path) * len(glob)).
- ``layer_id`` and ``count:`` patterns (a glob with a captured number or name) are
  translated to RE2 here and capped like regexes.

RE2 syntax differs from Python's ``re`` in a few places, all documented in
``docs/policy.md``: ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII-only; ``\\Z`` is
written ``\\z`` (not needed: a pattern must match the whole path); ``{,n}`` is refused
(Python reads it as ``{0,n}``, RE2 as literal text).
"""

from __future__ import annotations

import fnmatch
import functools
import re
import warnings
from typing import Any

MAX_REGEX_PROGRAM = 400
MAX_POLICY_REGEX_PROGRAM = 100_000  # all regexes of one policy together
MAX_POLICY_REGEXES = 1000  # regex conditions in one policy: at most 256 MiB of RE2 memory
_RE2_MAX_MEM = 256 << 10  # bytes per compiled pattern: program and DFA cache together


try:  # a dependency of initspec; imported here, once, not while a policy is read
    import re2 as _re2_module  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover
    _re2_module = None


def _re2() -> Any:
    if _re2_module is None:  # pragma: no cover - google-re2 is a dependency of initspec
        raise ValueError(
            "regular expressions need the google-re2 package (pip install google-re2), a "
            "dependency of initspec that is not installed"
        )
    return _re2_module


def _options() -> Any:
    re2 = _re2()
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = _RE2_MAX_MEM
    return opts


_NO_BACKTRACKING = "not needed and not supported: RE2 never backtracks"
# (where to look, what to look for, what to say) for a pattern RE2 refused.
_RE2_HINTS = (
    ("msg", "perl operator: (?=", "lookahead is not supported (RE2 syntax)"),
    ("msg", "perl operator: (?!", "lookahead is not supported (RE2 syntax)"),
    ("msg", "perl operator: (?<=", "lookbehind is not supported (RE2 syntax)"),
    ("msg", "perl operator: (?<!", "lookbehind is not supported (RE2 syntax)"),
    ("msg", "perl operator: (?>", f"atomic groups are {_NO_BACKTRACKING}"),
    ("pattern", "(?P=", "backreferences are not supported (RE2 syntax)"),
    ("msg", "perl operator: (?#", "comments are not supported (RE2 syntax)"),
    ("msg", "repetition operator: ++", f"possessive repeats are {_NO_BACKTRACKING}"),
    ("msg", "repetition operator: *+", f"possessive repeats are {_NO_BACKTRACKING}"),
    ("msg", "repetition operator: ?+", f"possessive repeats are {_NO_BACKTRACKING}"),
    ("msg", "}+", f"possessive repeats are {_NO_BACKTRACKING}"),
    (
        "msg",
        "escape sequence: \\Z",
        "\\Z is not supported (and not needed: a pattern matches the whole path)",
    ),
    ("msg", "too large", "too large for RE2; write a simpler pattern"),
    (
        "msg",
        "repetition size",
        "a counted repeat is at most {1000}, nested repeats at most 1000 in all",
    ),
)


def _explain_re2_error(pattern: str, exc: Exception) -> str:
    raw = exc.args[0] if exc.args else ""
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else str(raw)
    for where, needle, hint in _RE2_HINTS:
        if needle in (text if where == "msg" else pattern):
            return f"{hint} ({text})"
    if re.search(r"escape sequence: \\[1-9]", text):
        return f"backreferences are not supported (RE2 syntax) ({text})"
    return f"not a valid regular expression in RE2 syntax ({text})"


def _python_only_syntax(pattern: str) -> str | None:
    """Constructs RE2 accepts with another meaning than Python's ``re``: refused."""
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            elif ch == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                i = end + 2 if end >= 0 else i + 1
                continue
        elif ch == "[":
            in_class = True
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):  # a leading ] is a literal member
                i += 1
            continue
        elif ch == "{" and pattern.startswith("{,", i):
            return "{,n} means {0,n} in Python but literal text in RE2; write {0,n}"
        i += 1
    return None


def _decode(value: bytes | None) -> str:
    if value is None:
        return ""
    try:
        return value.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # a group that ends inside a path's invalid code point
        return value.decode("utf-8", "replace")


class Regex:
    """A compiled policy pattern: ``fullmatch`` and ``match`` (anchored at the start) return
    the named groups as a dict, or None."""

    __slots__ = ("pattern", "size", "_compiled")

    def __init__(self, pattern: str, compiled: Any, size: int) -> None:
        self.pattern = pattern
        self.size = size  # RE2 program instructions
        self._compiled = compiled

    def _groups(self, m: Any) -> dict[str, str] | None:
        if m is None:
            return None
        return {
            (k.decode() if isinstance(k, bytes) else k): _decode(v)
            for k, v in m.groupdict().items()
        }

    def fullmatch(self, text: str) -> dict[str, str] | None:
        return self._groups(self._compiled.fullmatch(text.encode("utf-8", "surrogatepass")))

    def match(self, text: str) -> dict[str, str] | None:
        return self._groups(self._compiled.match(text.encode("utf-8", "surrogatepass")))

    def matches(self, text: str) -> bool:
        return self._compiled.fullmatch(text.encode("utf-8", "surrogatepass")) is not None


@functools.lru_cache(maxsize=1024)
def compile_regex(pattern: str, max_program: int = MAX_REGEX_PROGRAM) -> Regex:
    """A policy regex compiled by RE2, or ``ValueError`` saying why it is refused."""
    if not isinstance(pattern, str):
        raise ValueError("a regular expression is a string")
    why = _python_only_syntax(pattern)
    if why:
        raise ValueError(why)
    re2 = _re2()
    try:
        compiled = re2.compile(pattern.encode("utf-8", "surrogatepass"), _options())
    except re2.error as exc:
        raise ValueError(_explain_re2_error(pattern, exc)) from None
    size = int(compiled.programsize)
    if size > max_program:
        raise ValueError(
            f"too complex: compiles to {size} RE2 instructions, at most {max_program} "
            f"(which bounds a match at a few ms per 1,000 characters); large counted repeats "
            f"such as .{{0,100}} cost most, .* costs little"
        )
    return Regex(pattern, compiled, size)


# Globs -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A glob over a dotted path (``*`` and ``?`` cross dots, as ``fnmatch``)."""
    with warnings.catch_warnings():  # "possible nested set" notes on [[...]]; errors under -W
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile(fnmatch.translate(pattern))


_FNMATCH_WRAPPED = re.compile(r"\A\(\?s:(.*)\)\\[Zz]\Z", re.S)
_NEVER = "[^\\x00-\\x{10ffff}]"


def _class_members(body: str) -> list[tuple[int, int]]:
    """Code point ranges of a Python regex class body as ``fnmatch.translate`` writes it:
    ``\\X`` is the literal X, an unescaped ``-`` between two members a range."""
    tokens: list[tuple[str, bool]] = []  # (character, is a range operator)
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            tokens.append((body[i + 1], False))
            i += 2
            continue
        tokens.append((ch, ch == "-" and bool(tokens) and i + 1 < len(body)))
        i += 1
    out: list[tuple[int, int]] = []
    j = 0
    while j < len(tokens):
        if j + 2 < len(tokens) and tokens[j + 1][1]:
            lo, hi = ord(tokens[j][0]), ord(tokens[j + 2][0])
            if lo <= hi:
                out.append((lo, hi))
            j += 3
        else:
            out.append((ord(tokens[j][0]), ord(tokens[j][0])))
            j += 1
    return out


def _glob_class(segment: str) -> str:
    """The RE2 text of one bracket expression of a glob (``[a-z]``, ``[!abc]``), read the
    way ``fnmatch`` reads it (its quirks included: empty ranges vanish, ``[?-.!]`` is any
    character): from ``fnmatch.translate``'s own output for that bracket alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _FNMATCH_WRAPPED.match(fnmatch.translate(segment))
    inner = m.group(1) if m else ""
    if inner == ".":
        return "(?s:.)"
    if inner == "(?!)":
        return _NEVER
    if not (inner.startswith("[") and inner.endswith("]") and len(inner) > 2):
        raise ValueError(f"glob bracket {segment!r}: unexpected fnmatch translation {inner!r}")
    body = inner[1:-1]
    negate = body.startswith("^")
    members = _class_members(body[1:] if negate else body)
    if not members:
        return "(?s:.)" if negate else _NEVER
    items = "".join(_cp(lo) if lo == hi else f"{_cp(lo)}-{_cp(hi)}" for lo, hi in members)
    return f"[{'^' if negate else ''}{items}]"


def _cp(code: int) -> str:
    return f"\\x{{{code:x}}}"


def glob_to_re2(pattern: str) -> str:
    """The RE2 text of a glob with fnmatch's meaning (``*``, ``?``, ``[...]``, ``[!...]``),
    every literal written as a code point escape so nothing in it is RE2 syntax."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if not out or out[-1] != "(?s:.*)":
                out.append("(?s:.*)")
        elif ch == "?":
            out.append("(?s:.)")
        elif ch == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(_cp(ord("[")))
                continue
            out.append(_glob_class(pattern[i - 1 : j + 1]))
            i = j + 1
        else:
            out.append(_cp(ord(ch)))
    return "".join(out)


MAX_COMPOSED_PROGRAM = MAX_REGEX_PROGRAM


def compile_composed(pattern: str) -> Regex:
    """An RE2 pattern built by initspec from globs (``layer_id``, ``count:``), with the same
    program cap as user regexes, so it matches as fast (``layers.{layer_id}.*`` is about 30
    instructions; a glob built to defeat RE2's DFA, ``*a?a?a?...``, is refused)."""
    return compile_regex(pattern, MAX_COMPOSED_PROGRAM)
