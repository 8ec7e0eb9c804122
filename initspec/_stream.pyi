"""Type stub of the compiled kernel initspec/_stream.c (optional; see initspec.portable)."""

from typing import Any

STREAM_VERSION: int

def fill(
    out: Any,
    kind: int,
    k0: int,
    k1: int,
    offset: int,
    shape: tuple[int, ...],
    mults: tuple[int, ...],
    start: int,
    stop: int,
    params: tuple[float, ...],
) -> None: ...
def ndtri(p: float) -> float: ...
def fingerprint_sum(
    values: Any,
    offset: int,
    shape: tuple[int, ...],
    mults: tuple[int, ...],
    start: int,
    stop: int,
) -> int: ...
