"""``initspec.interrupts.deferred_interrupts``: SIGINT recorded during the block, the
previous handler back afterwards and called once if a SIGINT arrived; nested blocks; blocks
in other threads; a body that raises."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from initspec.interrupts import deferred_interrupts, deferring


def sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def counting() -> Iterator[list[int]]:
    """A custom SIGINT handler counting its calls, the original one put back after."""
    calls: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    original = signal.signal(signal.SIGINT, handler)
    try:
        yield calls
    finally:
        signal.signal(signal.SIGINT, original)


def test_a_sigint_in_the_block_reaches_the_previous_handler_once_after_it(
    counting: list[int],
) -> None:
    previous = signal.getsignal(signal.SIGINT)
    seen_inside = []
    with deferred_interrupts():
        assert deferring()
        sigint()
        sigint()  # two Ctrl-C: the previous handler hears of one
        seen_inside.append(len(counting))
    assert seen_inside == [0] and counting == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is previous and not deferring()


def test_no_sigint_no_call(counting: list[int]) -> None:
    with deferred_interrupts():
        pass
    assert counting == []


def test_default_handler_raises_keyboard_interrupt_after_the_block() -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            sigint()
            done.append("rest of the block")
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nested_blocks_deliver_once_when_the_outermost_ends(counting: list[int]) -> None:
    with deferred_interrupts():
        with deferred_interrupts():
            sigint()
        assert counting == [] and deferring()
    assert counting == [signal.SIGINT]


def test_a_body_that_raises_still_restores_and_delivers(counting: list[int]) -> None:
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError, match="body"):
        with deferred_interrupts():
            sigint()
            raise RuntimeError("body")
    assert counting == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is previous


def test_an_ignored_sigint_stays_ignored() -> None:
    original = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupts():
            sigint()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, original)


def test_a_worker_thread_installs_nothing(counting: list[int]) -> None:
    """Only the main thread may install a handler (and only it runs them): a block in a
    worker changes nothing, while the main thread's own block still defers."""
    seen: list[Any] = []

    def work() -> None:
        with deferred_interrupts():
            seen.append(signal.getsignal(signal.SIGINT))

    handler = signal.getsignal(signal.SIGINT)
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [handler]
    with deferred_interrupts():
        t = threading.Thread(target=work)
        t.start()
        t.join()
        sigint()
        assert deferring() and counting == []
    assert counting == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is handler
