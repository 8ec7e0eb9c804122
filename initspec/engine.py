"""The one orchestration every backend runs, for a whole model and for one tensor.

resolve every parameter (``initspec.resolve``) -> every check, for every parameter, before
anything is written (dtype fit and inward bounds from the plan alone, writability from the
backend, the padding row and the shard inside the tensor) -> one ``Job`` per tensor ->
all-or-nothing writes -> the report. Adapters supply a ``Backend`` (``initspec.backend``):
how their tensors are read, checked, written and restored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from initspec.backend import Backend, Job, Rng, check_rng
from initspec.errors import BackendError, InitSpecError, ShapeError
from initspec.layout import LayoutLike
from initspec.numeric import FLOAT_DTYPES, check_fits
from initspec.pathmap import PathMap, map_paths
from initspec.policy import PolicyLike
from initspec.progress import ProgressLike, check_progress, log_resolution, progress_backend
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
    return backend.unwritable(target)


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
    anything is written; if a write fails, every parameter written gets its values back
    (``write_all``).
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
        with progress_backend(backend, work, progress) as reporting:  # initspec.progress
            write_all(reporting, work)
    return resolution


def write_all(backend: Backend[T], work: Sequence[tuple[Job, T]]) -> None:
    """Write every job, all or nothing: if a write fails (an exception, a
    KeyboardInterrupt), every target written so far, the failing one included, gets its
    snapshot back, in reverse order; a restore that fails does not stop the others, and
    then an ``InitSpecError`` names every target that could not be restored."""
    done: list[tuple[Job, T, Any]] = []
    try:
        for job, target in work:
            done.append((job, target, backend.snapshot(target)))
            backend.write(target, job)
    except BaseException as exc:
        failed = []
        for job, target, snap in reversed(done):
            try:
                backend.restore(target, snap)
            except Exception as err:  # noqa: BLE001 - go on restoring the others
                failed.append(f"{job.path}: {type(err).__name__}: {err}")
        if failed:
            raise InitSpecError(
                f"writing failed ({type(exc).__name__}: {exc}) and {len(failed)} "
                f"parameter(s) could not be restored to their previous values:\n  "
                + "\n  ".join(failed)
            ) from exc
        raise
