"""The seam between the core and a framework: what an adapter author implements.

A backend implements two small protocols, once per framework:

- ``Sampler``: one method per plan primitive (``initspec.plans``), returning the values in
  the target dtype. Each backend has one for its native stream and one for the portable
  stream; ``plan.draw(sampler)`` is the only dispatch over plan types. The portable
  stream's structural plans (orthogonal, identity, dirac, sparse) need the whole tensor in
  float64 anyway, so the core builds them once (``initspec.portable.structural64``) and
  a backend only converts the array (``initspec.portable.PortableStructural``).
- ``Backend``: how a framework tensor is read, checked, written and (when backed up)
  restored. Everything else, resolving a policy, every check before the first write, one
  ``Job`` per tensor, the write loop (in place with Ctrl-C deferred, or with backups) and
  the report, is the core's (``initspec.engine``).

The rest of what an adapter author uses is re-exported here: the plans, ``ParamInfo`` (a
parameter described in neutral terms), ``resolve`` and its ``Resolution``, layouts, the
per-parameter seed, the dtype checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from initspec.blocks import Region
from initspec.errors import BackendError, InitSpecError
from initspec.layout import Layout, LayoutLike, resolve_layout
from initspec.numeric import FLOAT_DTYPES, check_fits, inward_bounds
from initspec.plans import (
    ConstantPlan,
    DiracPlan,
    IdentityPlan,
    NormalPlan,
    OrthogonalPlan,
    Plan,
    SparsePlan,
    TruncatedNormalPlan,
    UniformPlan,
)
from initspec.portable import PortableStructural
from initspec.resolve import ParamInfo, Resolution, ResolvedParam, resolve
from initspec.seeding import derive_seed
from initspec.stream import Block, block, check_version, layout_perm, split_key

__all__ = [
    "FLOAT_DTYPES",
    "Atomic",
    "Backend",
    "Block",
    "ConstantPlan",
    "DiracPlan",
    "IdentityPlan",
    "Job",
    "Layout",
    "LayoutLike",
    "MODULE_KINDS",
    "NormalPlan",
    "OrthogonalPlan",
    "ParamInfo",
    "Plan",
    "PortableStructural",
    "Resolution",
    "ResolvedParam",
    "Rng",
    "Sampler",
    "SparsePlan",
    "TruncatedNormalPlan",
    "UniformPlan",
    "check_atomic",
    "check_fits",
    "check_rng",
    "derive_seed",
    "draw",
    "inward_bounds",
    "module_registration",
    "resolve",
    "resolve_layout",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
TargetT = TypeVar("TargetT", contravariant=True)

Rng = Literal["native", "portable"]
"""``"native"``: the framework's own generator; ``"portable"``: the counter-based stream
shared by NumPy, torch and JAX (docs/portable-random.md)."""
RNGS: tuple[Rng, ...] = ("native", "portable")

Atomic = bool | Literal["backup"]
"""How the engine writes (``initspec.engine.write_all``): ``True`` in place after every
check, Ctrl-C deferred, a backup only of targets the backend cannot vouch for; ``"backup"``
a backup of every target; ``False`` in place, nothing deferred."""


def check_atomic(atomic: object) -> Atomic:
    """``atomic`` itself if it is one of ``True``, ``False``, ``"backup"``."""
    if atomic is True or atomic is False or atomic == "backup":
        return atomic
    raise BackendError(f"atomic {atomic!r} is not allowed; allowed: True, False, 'backup'")


def check_rng(rng: object, stream: object = 1) -> Rng:
    """``rng`` itself if it names a stream (and ``stream`` a known portable version)."""
    if rng not in RNGS:
        raise BackendError(f"rng {rng!r} is not known; allowed: {', '.join(RNGS)}")
    if rng == "portable":
        check_version(stream)
    return "portable" if rng == "portable" else "native"


class Sampler(Protocol[T_co]):
    """One stream of one backend: a method per plan primitive, each returning the plan's
    values in the target dtype (rounded once from the work dtype, bounded plans clipped to
    the dtype's values inside their bounds)."""

    def constant(self, plan: ConstantPlan) -> T_co: ...
    def uniform(self, plan: UniformPlan) -> T_co: ...
    def normal(self, plan: NormalPlan) -> T_co: ...
    def truncated_normal(self, plan: TruncatedNormalPlan) -> T_co: ...
    def orthogonal(self, plan: OrthogonalPlan) -> T_co: ...
    def identity(self, plan: IdentityPlan) -> T_co: ...
    def dirac(self, plan: DiracPlan) -> T_co: ...
    def sparse(self, plan: SparsePlan) -> T_co: ...


@dataclass(frozen=True)
class Job:
    """One tensor to write: its plan and everything its stream needs.

    ``seed``: the parameter's 64-bit seed, ``derive_seed(run seed, path)``: a native
    generator is seeded with it; the portable stream's Threefry key is its two words
    (``key``), and the element counters run in the layout's canonical order (``perm``),
    over the whole tensor or the shard ``index``. ``zero_row``: a row set to zero after
    sampling (an embedding's padding row).

    ``region``: the job writes one block of the parameter (``initspec.blocks.Region``),
    ``plan`` is the block's; ``index`` is then the shard of the whole parameter the target
    holds, and ``region.locate(index)`` says which part of the target and of the block.
    """

    path: str
    plan: Plan
    layout: LayoutLike
    seed: int
    rng: Rng = "native"
    stream: int = 1
    index: tuple[slice, ...] | None = None
    zero_row: int | None = None
    region: Region | None = None

    @property
    def key(self) -> tuple[int, int]:
        return split_key(self.seed)

    @property
    def perm(self) -> tuple[int, ...]:
        return layout_perm(self.plan.shape, self.layout)

    @property
    def block(self) -> Block:
        """The counters of what the job draws: the shard ``index`` of the plan, or, for a
        block, the part of it in the shard (empty if the shard holds none)."""
        if self.region is None:
            return block(self.plan.shape, self.perm, self.index)
        placed = self.region.locate(self.index)
        if placed is None:
            return block(self.plan.shape, self.perm, tuple(slice(0, 0) for _ in self.plan.shape))
        return block(self.plan.shape, self.perm, placed[1])

    @property
    def shape(self) -> tuple[int, ...]:
        """The (global) shape of the parameter the job writes into."""
        return self.region.shape if self.region is not None else self.plan.shape


class Backend(Protocol[TargetT]):
    """How the core reads, checks and writes one framework's tensors (``initspec.engine``).

    ``target`` is whatever the adapter writes into: a torch tensor, a Flax leaf, an nnx
    variable. The engine calls ``dtype`` and ``unwritable`` for every job before the first
    write, then writes as ``atomic`` says: per job ``write`` (on ``threads`` threads), and
    for a target it backs up ``snapshot`` before and, if a later write fails, ``restore``.
    """

    atomic: Atomic
    """``True``, ``"backup"`` or ``False`` (``initspec.backend.Atomic``)."""

    def dtype(self, target: TargetT) -> str:
        """The target's dtype name (``float32``, ``bfloat16``, ...; anything else refused)."""
        ...

    def unwritable(self, target: TargetT, job: Job) -> str | None:
        """Why ``job`` cannot be written into ``target``, or None (what the backend alone
        knows: a read-only or lazy tensor, a block of a tensor sharded in a way the job's
        stream cannot follow)."""
        ...

    def placeholder(self, target: TargetT) -> bool:
        """Whether ``target`` holds no values to write (a meta tensor): checked, not written."""
        ...

    def backup_reason(self, target: TargetT) -> str | None:
        """Why ``target`` is backed up even under ``atomic=True`` (a write the backend
        cannot vouch for, e.g. into a custom tensor subclass), or None: written in place."""
        ...

    def snapshot(self, target: TargetT) -> Any:
        """What ``restore`` needs to give ``target`` its values back (None: nothing)."""
        ...

    def write(self, target: TargetT, job: Job) -> None:
        """Draw ``job`` (``job.plan.draw(sampler)``, zero its row) and store it in ``target``."""
        ...

    def restore(self, target: TargetT, snapshot: Any) -> None:
        """Give ``target`` the values ``snapshot`` holds."""
        ...

    def threads(self, work: Sequence[tuple[Job, TargetT]]) -> int:
        """How many threads may write ``work`` (the targets written in place) at once; 1:
        in order, on the calling thread. More only where a job's values do not depend on
        the order or the thread it is written in (a generator of its own per job) and the
        writes release the GIL: the engine then spreads the targets over that many
        threads, each target's jobs in order on one (``initspec.engine.write_all``)."""
        ...


MODULE_KINDS = ("linear", "conv", "conv_transpose", "embedding", "norm", "attention", "rnn", "other")
"""The neutral vocabulary of module kinds adapters describe parameters with."""


def module_registration(
    cls: type | str, kind: str, layout: LayoutLike | None
) -> tuple[str, tuple[str, LayoutLike | None]]:
    """``(class name, (kind, layout))`` for an adapter's ``register_module``, checked:
    ``BackendError`` for something that is not a class or a name, an unknown kind or an
    unknown layout."""
    name = cls if isinstance(cls, str) else getattr(cls, "__name__", None)
    if not isinstance(name, str) or not name:
        raise BackendError(f"register_module: expected a class or a class name, got {cls!r}")
    if kind not in MODULE_KINDS:
        raise BackendError(
            f"register_module({name!r}): kind {kind!r} is not one of {', '.join(MODULE_KINDS)}"
        )
    if layout is not None:
        try:
            resolve_layout(layout)
        except InitSpecError as exc:
            raise BackendError(f"register_module({name!r}): {exc}") from None
    return name, (kind, layout)


def draw(job: Job, sampler: Sampler[T], zero_row: Callable[[T, int], T]) -> T:
    """The values of ``job`` from ``sampler``; ``zero_row(values, row)`` zeroes its padding
    row (the one post-step a job may have; every backend says how), returning the values."""
    values = job.plan.draw(sampler)
    if job.zero_row is not None:
        values = zero_row(values, job.zero_row)
    return values
