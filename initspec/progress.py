"""Progress and logging for ``apply``: what it decided, and how far the writing is.

``progress`` (the ``progress=`` option of ``initspec_torch.apply``, ``initspec_jax.apply``
and ``apply_nnx``):

- ``None`` (default): a tqdm bar on stderr when tqdm is installed and the apply writes at
  least ``PROGRESS_THRESHOLD`` elements (10**8: a 100M-parameter model, several seconds
  on a CPU; a 7B model takes minutes), else nothing;
- ``True``: a tqdm bar whatever the size (``MissingExtraError`` before anything is
  written when tqdm is not installed); ``False``: never;
- a callable ``progress(done, total, path)``: called after each tensor is written, with
  the elements written so far, the elements to write in all and the canonical path of
  the tensor just written; always on the thread that called ``apply``, one call at a
  time, also when the tensors are written on several threads (then in the order they
  finish).

The bar counts elements, one tensor at a time (JAX dispatches asynchronously: a tensor
counts when its sampling is dispatched).

Logging: the logger ``"initspec"`` (no handler of its own: configure ``logging`` to see
it) says at INFO what an apply or explain decided (policy, seed, how many parameters each
status got, elements to write) and at DEBUG each parameter's rule and plan.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from initspec.backend import Job
from initspec.errors import InitSpecError, MissingExtraError, printable

if TYPE_CHECKING:
    from initspec.resolve import Resolution

PROGRESS_THRESHOLD = 10**8
"""Elements an apply writes from which ``progress=None`` shows a bar (when tqdm is installed)."""

ProgressCallback = Callable[[int, int, str], None]
ProgressLike = bool | ProgressCallback | None
"""``progress=``: None (a bar for long applies), True, False or ``callback(done, total, path)``."""

logger = logging.getLogger("initspec")


def check_progress(progress: Any) -> None:
    """Refuse a ``progress=`` that is none of the accepted values, and ``True`` without
    tqdm, before anything is resolved or written."""
    if progress is None or isinstance(progress, bool) or callable(progress):
        if progress is True:
            _tqdm()
        return
    raise InitSpecError(
        f"progress={printable(repr(progress)[:60])}: allowed: None (a bar for applies of "
        f"{PROGRESS_THRESHOLD:.0e}+ elements), True, False or a callable (done, total, path)"
    )


def _tqdm() -> Any:
    try:
        auto = importlib.import_module("tqdm.auto")
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "tqdm":
            raise
        raise MissingExtraError("progress=True", "tqdm", None) from None
    return auto.tqdm


@contextmanager
def progress_tick(
    work: Sequence[tuple[Job, Any]], progress: ProgressLike
) -> Iterator[Callable[[Job], None] | None]:
    """What ``engine.write_all`` calls after each written job (on the calling thread) to
    report it to ``progress`` (see the module docstring), or None; a bar is closed when
    the writing ends, however it ends."""
    total = sum(math.prod(job.plan.shape) for job, _ in work)
    show_bar = progress is True or (progress is None and total >= PROGRESS_THRESHOLD)
    if progress is False or not work or (progress is None and not show_bar):
        yield None
        return
    done = 0
    if callable(progress) and not isinstance(progress, bool):
        callback = progress

        def tick(job: Job) -> None:
            nonlocal done
            done += math.prod(job.plan.shape)
            callback(done, total, job.path)

        yield tick
        return
    try:
        tqdm = _tqdm()
    except MissingExtraError:
        if progress is True:
            raise
        yield None  # the default, without tqdm: no bar
        return
    bar = tqdm(total=total, unit="param", unit_scale=True, desc="initspec apply", leave=False)
    try:

        def tick_bar(job: Job) -> None:
            bar.update(math.prod(job.plan.shape))
            bar.set_postfix_str(printable(job.path)[-40:], refresh=False)

        yield tick_bar
    finally:
        bar.close()


def log_resolution(resolution: Resolution, write: bool) -> None:
    """What an apply (``write``) or explain decided, on the ``initspec`` logger."""
    if not logger.isEnabledFor(logging.INFO):
        return
    counts: dict[str, int] = {}
    elements = 0
    for p in resolution.params:
        counts[p.status] = counts.get(p.status, 0) + 1
        if p.status == "init":
            elements += math.prod(p.info.shape)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    logger.info(
        "%s policy %r, seed %d: %d parameters (%s); %d elements to write",
        "apply" if write else "explain",
        printable(resolution.policy.name),
        resolution.seed,
        len(resolution.params),
        summary or "none",
        elements,
    )
    if not logger.isEnabledFor(logging.DEBUG):
        return
    for p in resolution.params:
        rule = (
            p.rule.label(p.rule_index) if p.rule is not None and p.rule_index is not None else "-"
        )
        what = p.plan.describe() if p.plan is not None else p.status
        logger.debug(
            "%s %s: %s rule %s: %s",
            printable(p.info.path),
            p.info.shape,
            p.status,
            printable(rule),
            printable(what),
        )
