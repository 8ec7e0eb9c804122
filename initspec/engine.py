"""The one orchestration every backend runs, for a whole model and for one tensor.

resolve every parameter (``initspec.resolve``) -> every check, for every parameter, before
anything is written (dtype fit and inward bounds from the plan alone, writability from the
backend, the padding row and the shard inside the tensor) -> one ``Job`` per tensor ->
the writes, in place with Ctrl-C deferred (or with backups), on one thread or several
where the backend allows -> the report. Adapters supply
a ``Backend`` (``initspec.backend``): how their tensors are read, checked, written (and
restored, when backed up).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from initspec.backend import Backend, Job, Rng, check_atomic, check_rng
from initspec.errors import BackendError, InitSpecError, PartialWriteError, ShapeError
from initspec.interrupts import deferred_interrupts
from initspec.layout import LayoutLike
from initspec.numeric import FLOAT_DTYPES, check_fits
from initspec.pathmap import PathMap, map_paths
from initspec.policy import PolicyLike
from initspec.progress import ProgressLike, check_progress, log_resolution, progress_tick
from initspec.resolve import ParamInfo, Resolution, ResolutionError, resolve_all
from initspec.seeding import derive_seed
from initspec.specs import PlanContext, SpecBase

T = TypeVar("T")


def where(path: str, shape: tuple[int, ...] | None = None) -> str:
    """``parameter 'fc.weight' (shape (10, 784))`` (or ``tensor``) for error messages."""
    name = f"parameter {path!r}" if path else "tensor"
    return f"{name} (shape {shape})" if shape is not None else name


def single_job(
    spec: SpecBase | dict[str, Any] | str,
    shape: tuple[int, ...],
    layout: LayoutLike,
    seed: int,
    path: str = "",
    context: PlanContext | None = None,
    rng: Rng = "native",
    stream: int = 1,
    index: tuple[slice, ...] | None = None,
) -> Job:
    """The job of one tensor (``initspec.sample``, ``init_``, ``initializer``): the spec
    planned against ``shape`` (errors name the tensor), its seed ``derive_seed(seed, path)``.
    ``index`` (a shard of the tensor) needs the portable stream."""
    from initspec.parse import parse

    check_rng(rng, stream)
    if index is not None and rng != "portable":
        raise BackendError(
            "index (a shard) needs rng='portable': the native stream is not shardable"
        )
    parsed = parse(spec)
    try:
        plan = parsed.plan(shape, layout, context)
    except ShapeError as exc:
        raise ShapeError(f"{where(path, tuple(shape))}: {exc}") from None
    except InitSpecError as exc:
        if type(exc) is InitSpecError:  # missing context: same class, plus where
            raise InitSpecError(f"{where(path, tuple(shape))}: {exc}") from None
        raise
    return Job(path, plan, layout, derive_seed(seed, path), rng, stream, index)


def problem(job: Job, dtype: str, backend: Backend[T], target: T) -> str | None:
    """Why ``job`` cannot be written into ``target``, decided before anything is drawn."""
    if dtype not in FLOAT_DTYPES:
        return (
            f"dtype {dtype} cannot be initialized; initspec writes floating tensors only "
            f"({', '.join(FLOAT_DTYPES)})"
        )
    try:
        check_fits(job.plan, dtype)
        if job.index is not None:
            job.block  # noqa: B018 - validates the shard against the shape
    except BackendError as exc:
        return str(exc)
    if job.index is not None and job.rng != "portable":
        return "a shard (path_map with a GlobalShard) needs rng='portable'"
    rows = job.plan.shape[0] if job.plan.shape else 0
    if job.zero_row is not None and not -rows <= job.zero_row < rows:
        return f"the padding row {job.zero_row} lies outside the {rows} rows"
    return backend.unwritable(target, job)


def run_one(backend: Backend[T], job: Job, target: T) -> None:
    """Check and write one tensor: ``BackendError`` naming it, and nothing written, if it
    cannot be; a placeholder (meta tensor) is checked and left as it is."""
    found = problem(job, backend.dtype(target), backend, target)
    if found is not None:
        raise BackendError(f"{where(job.path, job.plan.shape)}: {found}")
    if not backend.placeholder(target):
        backend.write(target, job)


def jobs(resolution: Resolution, rng: Rng = "native", stream: int = 1) -> list[Job]:
    """One job per parameter the resolution initializes, or, for a rule with blocks or
    slices, one per block and slice after the parameter's own (``initspec.blocks``), each
    with the parameter's shard (``ParamInfo.shard``) as its ``index``."""
    out = []
    for rp in resolution.to_sample():
        info = rp.info
        if rp.plan is not None:
            out.append(
                Job(info.path, rp.plan, info.layout, rp.seed, rng, stream, info.shard, rp.zero_row)
            )
        for b in rp.blocks:
            out.append(
                Job(info.path, b.plan, b.layout, b.seed, rng, stream, info.shard, region=b.region)
            )
    return out


def run_policy(
    backend: Backend[T],
    policy: PolicyLike,
    params: Sequence[ParamInfo],
    targets: Mapping[str, T],
    seed: int | None = None,
    *,
    rng: Rng = "native",
    stream: int = 1,
    write: bool = True,
    strict: bool | None = None,
    path_map: PathMap | None = None,
    progress: ProgressLike = None,
) -> Resolution:
    """Apply ``policy`` to described parameters (``targets``: the backend's target of each
    canonical path), all or nothing; ``write=False`` stops after the checks (``explain``).
    ``strict``: rules matching nothing and kept parameters are errors (``resolve``).
    ``path_map``: local names (and shards) of a part of a model mapped to the whole
    model's (``initspec.pathmap``), before anything is resolved.
    ``progress``: a bar or a callback while writing (``initspec.progress``).

    Raises one ``ResolutionError`` listing every parameter that cannot be handled, before
    anything is written, then writes as ``backend.atomic`` says (``write_all``).
    """
    check_rng(rng, stream)
    check_progress(progress)
    params, targets = map_paths(list(params), targets, path_map)
    # The resolution's problems and the checks' below, in one ResolutionError.
    resolution, problems = resolve_all(policy, params, seed, strict)
    todo = jobs(resolution, rng, stream)
    by_path = {rp.info.path: rp for rp in resolution.to_sample()}
    for job in todo:
        target = targets[job.path]
        found = problem(job, backend.dtype(target), backend, target)
        if found is not None:
            rp = by_path[job.path]
            assert rp.rule is not None and rp.rule_index is not None
            info = rp.info
            part = f"block {job.region.name!r}: " if job.region is not None else ""
            problems.append(
                f"{info.path} (shape {info.shape}, {info.kind}/{info.role}): "
                f"rule {rp.rule.label(rp.rule_index)}: {part}{found}"
            )
    if problems:
        raise ResolutionError(problems)
    work = []
    for job in todo:
        target = targets[job.path]
        if backend.placeholder(target):
            by_path[job.path].status = "meta"
        else:
            work.append((job, target))
    log_resolution(resolution, write)
    if write:
        with progress_tick(work, progress) as tick:  # initspec.progress
            resolution.backed_up = write_all(backend, work, tick)
    return resolution


def write_all(
    backend: Backend[T],
    work: Sequence[tuple[Job, T]],
    tick: Callable[[Job], None] | None = None,
) -> list[str]:
    """Write every job after the checks; returns ``"path: why"`` for each target backed up.
    ``tick(job)``, on the calling thread, after each job is written (``initspec.progress``).

    ``backend.atomic`` says how (``initspec.backend.Atomic``):

    - ``True``: in place, with SIGINT deferred until every write is done
      (``initspec.interrupts``): the checks (``problem``) have found everything a write can
      refuse, so the writes complete and a Ctrl-C raises ``KeyboardInterrupt`` right after
      them. A target the backend cannot vouch for (``backend.backup_reason``: a custom
      tensor subclass whose writes may fail) is backed up and written first, before any
      target without a backup, so its failure is undone before anything else is touched.
      A failure no check can foresee in a write without a backup (out of memory, a device
      error) cannot be undone: ``PartialWriteError`` names what holds new values.
    - ``"backup"``: every target is backed up first (``snapshot``, one copy of each
      parameter written, until the end), interrupts deferred likewise.
    - ``False``: in place, nothing deferred, nothing backed up.

    The targets written in place are spread over ``backend.threads(work)`` threads (each
    target's jobs in order on one of them; the calling thread waits, ticks and takes
    Ctrl-C); a backend allows more than one only where a job's values do not depend on
    the order or the thread it is written in, so the values are the same either way.

    If a write fails, the others stop at their next job; every target backed up so far,
    the failing one included, gets its snapshot back, in reverse order; a restore that
    fails does not stop the others. The error raised: the write's own when every target
    written is restored, else a ``PartialWriteError`` naming the targets left with new or
    partly written values (an interrupt or exit that is no ``Exception`` is raised as it
    is, with that list as a note).
    """
    mode = check_atomic(backend.atomic)
    reasons = [
        None if mode is False else "atomic='backup'" if mode == "backup"
        else backend.backup_reason(target)
        for _, target in work
    ]  # fmt: skip
    backed = [(job, target) for (job, target), why in zip(work, reasons, strict=True) if why]
    in_place = [(job, target) for (job, target), why in zip(work, reasons, strict=True) if not why]
    threads = max(1, min(backend.threads(in_place), len(in_place))) if in_place else 1
    writes = _Writes(backend, tick or (lambda job: None))
    if mode is False:
        writes.in_place(in_place, threads)
        return []
    with deferred_interrupts():
        writes.run(backed, in_place, threads)
    return [f"{job.path}: {why}" for (job, _), why in zip(work, reasons, strict=True) if why]


class _Writes(Generic[T]):
    """One write phase: backups first, in order on the calling thread, then the in-place
    targets, on ``threads`` threads; what was written is kept for the error (``done``)."""

    def __init__(self, backend: Backend[T], tick: Callable[[Job], None]) -> None:
        self.backend, self.tick = backend, tick
        self.done: list[_Written[T]] = []

    def run(self, backed: Sequence[tuple[Job, T]], in_place: Sequence[tuple[Job, T]],
            threads: int) -> None:  # fmt: skip
        try:
            for job, target in backed:
                self._write(job, target, self.done, backup=True)
            self.in_place(in_place, threads)
        except BaseException as exc:
            self._undo(exc)

    def _write(self, job: Job, target: T, done: list[_Written[T]], backup: bool = False) -> None:
        """Back ``target`` up if asked, record the write in ``done``, then write."""
        entry = _Written(job, target, backup, self.backend.snapshot(target) if backup else None)
        done.append(entry)
        self.backend.write(target, job)
        entry.finished = True

    def in_place(self, work: Sequence[tuple[Job, T]], threads: int) -> None:
        if threads <= 1:
            for job, target in work:
                self._write(job, target, self.done)
                self.tick(job)
            return
        finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        stop = threading.Event()

        def worker(part: list[tuple[Job, T]], done: list[_Written[T]]) -> None:
            try:
                for job, target in part:
                    if stop.is_set():
                        return
                    self._write(job, target, done)
                    finished.put(job)
            except BaseException as exc:  # noqa: BLE001 - raised on the calling thread
                stop.set()
                finished.put(_Failed(exc))
            finally:
                finished.put(None)

        parts = _spread(work, threads)
        records: list[list[_Written[T]]] = [[] for _ in parts]
        workers = [
            threading.Thread(target=worker, args=(part, rec), name=f"initspec-write-{i}")
            for i, (part, rec) in enumerate(zip(parts, records, strict=True))
        ]
        failure: BaseException | None = None
        try:
            for w in workers:
                w.start()
            running = len(workers)
            while running:
                item = finished.get()
                if item is None:
                    running -= 1
                elif isinstance(item, _Failed):
                    failure = failure or item.exc
                else:
                    self.tick(item)
        finally:  # also a Ctrl-C here (atomic=False) or a tick that raised: stop, then join
            stop.set()
            for w in workers:
                if w.ident is not None:  # started
                    w.join()
            for rec in records:
                self.done.extend(rec)
        if failure is not None:
            raise failure

    def _undo(self, exc: BaseException) -> None:
        failed = []
        for entry in reversed(self.done):
            if not entry.backup:
                continue
            try:
                self.backend.restore(entry.target, entry.snapshot)
            except Exception as err:  # noqa: BLE001 - go on restoring the others
                failed.append(f"{entry.job.path}: not restored ({type(err).__name__}: {err})")
        failed.extend(
            f"{entry.job.path}: "
            + ("written in place" if entry.finished
               else "its write failed (it may hold part of the new values)")
            for entry in self.done
            if not entry.backup
        )  # fmt: skip
        if not failed:
            raise exc
        more = f"\n  ... and {len(failed) - 50} more" if len(failed) > 50 else ""
        text = (
            f"writing failed ({type(exc).__name__}: {exc}) after the checks; "
            f"{len(failed)} parameter(s) do not hold their previous values:\n  "
            + "\n  ".join(failed[:50])
            + more
        )
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: kept as they are
            add_note = getattr(exc, "add_note", None)  # Python 3.11+; 3.10: __notes__ only
            if add_note is not None:
                add_note(text)
            else:
                exc.__notes__ = [*getattr(exc, "__notes__", []), text]  # type: ignore[attr-defined]
            raise exc
        raise PartialWriteError(text) from exc


@dataclass
class _Written(Generic[T]):
    """A job written or being written: backed up (with the backend's ``snapshot``, which
    may be None: a block of a parameter already copied) or in place; ``finished`` once
    its write returned."""

    job: Job
    target: T
    backup: bool = False
    snapshot: Any = None
    finished: bool = False


@dataclass(frozen=True)
class _Failed:
    exc: BaseException


def _spread(work: Sequence[tuple[Job, T]], threads: int) -> list[list[tuple[Job, T]]]:
    """``work`` in ``threads`` parts of about equal elements (largest target first, each to
    the lightest part), every job of one target in one part, in their order."""
    groups: dict[int, list[tuple[Job, T]]] = {}
    for job, target in work:
        groups.setdefault(id(target), []).append((job, target))
    sizes = {key: sum(job.plan.numel for job, _ in g) for key, g in groups.items()}
    parts: list[list[tuple[Job, T]]] = [[] for _ in range(min(threads, len(groups)))]
    load = [0] * len(parts)
    for key in sorted(groups, key=lambda k: -sizes[k]):
        i = load.index(min(load))
        parts[i].extend(groups[key])
        load[i] += sizes[key]
    return parts
