"""Deferring Ctrl-C (SIGINT) while parameters are being written, so that an interrupt cannot
leave a model half initialized.

``with deferred_interrupts(): ...``: inside the block a SIGINT is recorded instead of
raising ``KeyboardInterrupt``; when the block ends, the handler that was there before is put
back and, if a SIGINT arrived, it is delivered again (``signal.raise_signal``) to that
handler: with Python's default handler, ``KeyboardInterrupt`` is raised right after the
block, the writes complete.

Threads: CPython runs signal handlers in the main thread only, and only the main thread may
install one. So the block installs its handler in the main thread; in any other thread it
installs nothing and needs nothing (a SIGINT never raises ``KeyboardInterrupt`` in a thread
other than the main one, so it cannot interrupt writes made there). Blocks nest (an ``apply``
inside an ``apply``, or one per thread while the main thread is in one too): a depth counter
under a lock installs the handler on the outermost main-thread block only and redelivers
when that one ends. If the current handler was not installed from Python
(``signal.getsignal`` returns None) it cannot be put back, so nothing is installed and a
SIGINT behaves as it would without the block.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_lock = threading.Lock()
_depth = 0  # main-thread blocks open (only the main thread counts: only it installs)
_previous: Any = None  # the handler the outermost block replaced
_pending = 0  # SIGINTs recorded since it was installed


def _record(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending += 1  # runs in the main thread, between bytecodes: no lock needed (nor allowed)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Record SIGINT during the block and deliver it to the previous handler afterwards."""
    global _depth, _previous, _pending
    if threading.current_thread() is not threading.main_thread():
        yield  # no SIGINT handler runs here: nothing to defer
        return
    with _lock:
        installed = False
        if _depth == 0:
            current = signal.getsignal(signal.SIGINT)
            if current is not None:  # a handler installed from C cannot be restored
                _previous, _pending = current, 0
                signal.signal(signal.SIGINT, _record)
                installed = True
        elif signal.getsignal(signal.SIGINT) is _record:
            installed = True  # nested: the outermost block redelivers
        _depth += installed
    try:
        yield
    finally:
        if installed:
            with _lock:
                _depth -= 1
                outermost = _depth == 0
                if outermost:
                    signal.signal(signal.SIGINT, _previous)
                    pending, _pending, _previous = _pending, 0, None
            if outermost and pending:
                signal.raise_signal(signal.SIGINT)  # once: what the previous handler gets


def deferring() -> bool:
    """Whether a SIGINT arriving now would be deferred (the main thread is in a block)."""
    return signal.getsignal(signal.SIGINT) is _record
