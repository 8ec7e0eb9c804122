"""Reading untrusted JSON: files, text and nested values, within fixed limits.

- a file is opened without blocking and read only if it is a regular file (not a FIFO, a
  device such as ``/dev/zero``, a socket or a directory), at most ``MAX_BYTES``;
- text must be UTF-8 JSON of at most ``MAX_BYTES`` characters; ``NaN`` and ``Infinity``
  read as numbers and are refused by the models that hold numbers, with their location;
- an object may not repeat a key (JSON readers disagree about which one wins);
- values nest at most ``MAX_DEPTH`` levels; integers have at most ``MAX_INT_DIGITS`` digits.

Errors name the source (a file's name, or the text given) and never a file's content. Every
refusal here is a ``LoadError`` (the CLI's exit status 2: the source could not be read as
JSON), apart from ``check_depth`` on values built in Python.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from typing import Any

from initspec.errors import LoadError, SpecError

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_INT_DIGITS = 100
_MAX_NAME_SHOWN = 200


def shown_name(path: str | os.PathLike[str]) -> str:
    """A file name as errors show it: at most 200 characters."""
    try:
        text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    except Exception:  # a PathLike whose __fspath__ fails
        text = f"<{type(path).__name__}>"
    return text if len(text) <= _MAX_NAME_SHOWN else text[:_MAX_NAME_SHOWN] + "..."


def read_file(path: str | os.PathLike[str], what: str = "policy") -> str:
    """The UTF-8 text of a regular file of at most ``MAX_BYTES``.

    Raises ``LoadError`` when the file cannot be read (missing, a directory, a FIFO or
    device, no permission, a name too long) or what it holds is not acceptable (too
    large, not UTF-8).
    """
    error_cls = LoadError
    name = shown_name(path)
    flags = os.O_RDONLY
    for extra in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"):
        flags |= getattr(os, extra, 0)
    try:
        fd = os.open(os.fspath(path), flags)
    except Exception as exc:  # OSError; ValueError (a NUL); anything a PathLike raises
        if isinstance(exc, OSError):
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            if exc.errno == errno.EISDIR:
                reason = "it is a directory"
            elif exc.errno == errno.ENOENT:
                reason = "the file does not exist"
        else:
            reason = "not a usable file name"
        raise LoadError((), name, f"cannot read this {what} file: {reason}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise LoadError(
                (),
                name,
                f"cannot read this {what} file: {kind} (a FIFO, device or socket is refused)",
            )
        if info.st_size > MAX_BYTES:
            raise error_cls(
                (), name, f"{what} file of {info.st_size} bytes; at most {MAX_BYTES} (4 MiB)"
            )
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise LoadError((), name, f"cannot read this {what} file: {reason}") from None
    finally:
        os.close(fd)
    if total > MAX_BYTES:
        raise error_cls((), name, f"{what} file of more than {MAX_BYTES} bytes (4 MiB)")
    data = b"".join(chunks)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error_cls(
            (), name, f"{what} file is not UTF-8 text (byte {exc.start} cannot be decoded)"
        ) from None


class _TooManyDigits(Exception):
    pass


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS + 1:
        raise _TooManyDigits(text)
    return int(text)


def loads(text: str, source: Any = None, what: str = "document") -> Any:
    """Parse JSON ``text`` within the limits above, or raise ``LoadError``. ``source``: what
    errors name as the bad value (a file name); None names the text itself."""
    error_cls = LoadError
    shown = text if source is None else source
    if len(text) > MAX_BYTES:
        raise error_cls((), shown, f"a {what} of {len(text)} characters; at most {MAX_BYTES}")
    repeated: list[tuple[dict[str, Any], str]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    repeated.append((obj, key))
                    break
                seen.add(key)
        return obj

    try:
        value = json.loads(text, object_pairs_hook=pairs_hook, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise error_cls(
            (), shown, f"must be valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise error_cls((), shown, f"JSON nested more than {MAX_DEPTH} levels deep") from None
    except _TooManyDigits:
        raise error_cls(
            (), shown, f"a JSON integer has more than {MAX_INT_DIGITS} digits"
        ) from None
    except ValueError as exc:  # anything else the decoder refuses
        raise error_cls((), shown, f"must be valid JSON ({exc})") from None
    if repeated:
        obj, key = repeated[0]
        loc = _location_of(value, obj)
        raise error_cls(
            (*loc, key),
            key,
            "duplicate key: each key may appear once in an object "
            "(JSON readers disagree about which one wins)",
        )
    check_depth(value, error_cls)
    return value


def _location_of(root: Any, target: Any) -> tuple[str | int, ...]:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if node is target:
            return loc
        if isinstance(node, dict):
            stack.extend((v, (*loc, k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*loc, i)) for i, v in enumerate(node))
    return ()


def check_depth(value: Any, error_cls: type[SpecError], limit: int = MAX_DEPTH) -> None:
    """Refuse lists and dicts (or tuples) nested more than ``limit`` levels, without
    recursion: the error names the location where the limit is crossed. Each container is
    visited once (a Python value may share one, or contain itself)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    seen: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if isinstance(node, dict):
            children: Any = node.items()
        elif isinstance(node, (list, tuple)):
            children = enumerate(node)
        else:
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(loc) >= limit:
            raise error_cls(loc[:limit], "...", f"nested more than {limit} levels deep")
        stack.extend((v, (*loc, k if isinstance(k, (str, int)) else str(k))) for k, v in children)
