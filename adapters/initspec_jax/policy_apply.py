"""``apply`` (Flax linen parameter trees) and ``apply_nnx`` (nnx modules), all or nothing.

The core's orchestration (``initspec.engine.run_policy``) on Flax's description of the
parameters (``initspec_jax.traverse``, ``initspec_jax.describe``) and JAX's backend: each
parameter drawn from its own key, threefry2x32 with key words ``(s >> 32, s & 0xFFFFFFFF)``
for ``s = derive_seed(seed, canonical path)`` (the key of the portable stream too), with
the dtype and sharding of the value it replaces; with ``rng="portable"``, the portable
stream's values for that key (``initspec_jax.portable``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from initspec.backend import Atomic, Job, Rng, check_atomic, draw
from initspec.engine import run_policy
from initspec.numeric import FLOAT_DTYPES
from initspec.pathmap import PathMap
from initspec.policy import PolicyLike
from initspec.progress import ProgressLike
from initspec.resolve import Report, Resolution, resolve
from initspec_jax import portable
from initspec_jax.checks import check_dtype, stored_dtype
from initspec_jax.sampling import JaxNative
from initspec_jax.traverse import (
    FlaxParam,
    Path,
    describe_linen,
    describe_nnx,
    split_collections,
    walk,
)


def typed_key(seed64: int) -> jax.Array:
    """The typed threefry2x32 key of a parameter from its 64-bit ``derive_seed`` value."""
    return jax.random.wrap_key_data(jnp.asarray(param_key_data(seed64)), impl="threefry2x32")


def param_key_data(seed64: int) -> np.ndarray:
    """The two uint32 words of the threefry2x32 key of a parameter's 64-bit seed (built
    from the words directly: ``jax.random.key(s)`` keeps only the low 32 bits of ``s``
    unless x64 is on, and refuses ``s >= 2**63``)."""
    return np.array([seed64 >> 32, seed64 & 0xFFFFFFFF], dtype=np.uint32)


def _multi_device(value: Any) -> Any:
    """The sharding of ``value`` when it spans several devices, else None."""
    sharding = getattr(value, "sharding", None)
    return sharding if sharding is not None and len(sharding.device_set) > 1 else None


def _abstract(value: Any) -> jax.ShapeDtypeStruct:
    """What ``sample_like`` needs of ``value``: its shape, dtype and sharding."""
    return jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=getattr(value, "sharding", None))


def _zero_row(values: jax.Array, row: int) -> jax.Array:
    return values.at[row].set(0)


def sample_like(job: Job, like: Any) -> jax.Array:
    """The values of ``job`` with the dtype and sharding of ``like`` (an array or a
    ``jax.ShapeDtypeStruct``).

    Programs are compiled per kind of primitive, shape, dtype and sharding, not per
    parameter: the layers of a deep model share them, whatever their std. A parameter spread
    over several devices is sampled under its sharding, each device computing only its
    shard; one on a single non-default device is moved there.
    """
    sharding = _multi_device(like)
    target = check_dtype(like.dtype)
    if job.rng == "portable":
        with jax.enable_x64(True):
            sampler: Any = portable.JaxPortable(
                job.key, job.perm, stored_dtype(target), job.index, sharding
            )
            out = draw(job, sampler, _zero_row)
    else:
        out = draw(job, JaxNative(param_key_data(job.seed), target, sharding), _zero_row)
    single = getattr(like, "sharding", None)
    if sharding is None and single is not None and single != out.sharding:
        out = jax.device_put(out, single)
    return out


def _indexed_shape(shape: tuple[int, ...], where: tuple[slice | int, ...]) -> tuple[int, ...]:
    """The shape of ``x[where]`` for an array of ``shape`` (an int index drops its axis)."""
    return tuple(
        len(range(*w.indices(n))) for w, n in zip(where, shape, strict=True) if isinstance(w, slice)
    )


class _Backend:
    """Flax parameters for the engine: a target is ``(path, value)``; new values are
    collected in ``new`` (linen: functional, nothing of the caller's is written, so
    nothing to protect: ``atomic=False``) or assigned to the nnx variable (``apply_nnx``,
    ``atomic`` as given). A backup is the old array itself (JAX arrays are immutable): no
    copy, but it stays alive until the end."""

    def __init__(
        self, variables: Mapping[str, Any] | None = None, atomic: Atomic = False
    ) -> None:
        self.new: dict[str, jax.Array] = {}
        self.variables = variables
        self.atomic = check_atomic(atomic)

    def backup_reason(self, target: tuple[str, Any]) -> str | None:
        if self.variables is None:
            return None
        from flax import nnx

        cls = type(self.variables[target[0]])
        if cls is nnx.Param:
            return None
        return f"a {cls.__module__}.{cls.__qualname__} (an nnx.Param subclass initspec cannot vouch for)"

    def dtype(self, target: tuple[str, Any]) -> str:
        name = str(np.dtype(target[1].dtype).name)
        return str(stored_dtype(name).name) if name in FLOAT_DTYPES else name

    def unwritable(self, target: tuple[str, Any], job: Job) -> str | None:
        return None

    def placeholder(self, target: tuple[str, Any]) -> bool:
        return False

    def snapshot(self, target: tuple[str, Any]) -> Any:
        if self.variables is None:
            return None  # linen writes into ``new`` only
        return self.variables[target[0]].get_value()  # immutable: its own backup

    def write(self, target: tuple[str, Any], job: Job) -> None:
        value = sample_like(job, target[1]) if job.region is None else self._block(target, job)
        self.new[target[0]] = value
        if self.variables is not None:
            self.variables[target[0]].set_value(value)

    def _block(self, target: tuple[str, Any], job: Job) -> jax.Array:
        """The parameter with one block (``job.region``) written: the block's part in the
        local value (the shard ``job.index`` of the parameter, or all of it) drawn from the
        block's key and global indices, set into the value written so far (or the old
        value; zeros for a ``ShapeDtypeStruct``), placed on the old value's sharding."""
        assert job.region is not None
        path, like = target
        current = self.new.get(path, like)
        if not isinstance(current, jax.Array):
            current = jnp.zeros(like.shape, like.dtype)
        placed = job.region.locate(job.index)
        if placed is None:
            return current
        where, inside = placed
        part = jax.ShapeDtypeStruct(_indexed_shape(current.shape, where), like.dtype)
        values = sample_like(replace(job, index=inside, region=None), part)
        out = current.at[where].set(values)
        sharding = getattr(like, "sharding", None)
        return out if sharding is None else jax.device_put(out, sharding)

    def restore(self, target: tuple[str, Any], snapshot: Any) -> None:
        if self.variables is not None:
            self.variables[target[0]].set_value(snapshot)

    def threads(self, work: Sequence[tuple[Job, tuple[str, Any]]]) -> int:
        return 1  # JAX dispatches asynchronously and runs each draw on its own threads


def resolve_params(
    policy: PolicyLike, params: list[FlaxParam], seed: int | None = None
) -> Resolution:
    """Resolve ``policy`` for described parameters without sampling anything: the report
    of what ``apply`` / ``apply_nnx`` would do (``resolution.report()``)."""
    return resolve(policy, [p.info for p in params], seed)


def _run(
    policy: PolicyLike,
    described: list[FlaxParam],
    seed: int | None,
    backend: _Backend,
    rng: Rng,
    stream: int,
    write: bool = True,
    strict: bool | None = None,
    path_map: PathMap | None = None,
    progress: ProgressLike = None,
) -> Resolution:
    targets = {p.info.path: (p.info.path, p.value) for p in described}
    infos = [p.info for p in described]
    return run_policy(
        backend,
        policy,
        infos,
        targets,
        seed,
        rng=rng,
        stream=stream,
        write=write,
        strict=strict,
        path_map=path_map,
        progress=progress,
    )


# linen -----------------------------------------------------------------------------------


def _rebox(old: Any, new: jax.Array) -> Any:
    from flax.core import meta

    return old.replace_boxed(new) if isinstance(old, meta.AxisMetadata) else new


def _rebuild(tree: Mapping[str, Any], new: Mapping[Path, Any], prefix: Path = ()) -> Any:
    """A copy of ``tree`` with the leaves at the paths of ``new`` replaced (FrozenDicts stay
    frozen); untouched subtrees keep their leaves."""
    from flax.core import FrozenDict

    out = {}
    for name, value in tree.items():
        path = (*prefix, name)
        if isinstance(value, Mapping):
            out[name] = _rebuild(value, new, path)
        else:
            out[name] = new.get(path, value)
    return FrozenDict(out) if isinstance(tree, FrozenDict) else out


def apply(
    policy: PolicyLike,
    params: Any,
    seed: int | None = None,
    model: Any = None,
    *,
    model_args: tuple[Any, ...] | None = None,
    rng: Rng = "native",
    stream: int = 1,
    strict: bool | None = None,
    path_map: PathMap | None = None,
    progress: ProgressLike = None,
) -> tuple[Any, Report]:
    """Initialize a Flax linen parameter tree from ``policy``: ``(new_params, report)``.

    ``params``: what ``model.init`` returns (``{"params": ..., "batch_stats": ...}``: only
    the ``params`` collection is initialized, the others are kept) or the params collection
    itself; leaves may be arrays, ``jax.ShapeDtypeStruct`` (from ``jax.eval_shape``, to
    materialize a model directly on its sharding) or boxed (``nn.Partitioned``). The input
    is left untouched; the result has its structure, dtypes and shardings.

    ``policy``: a ``Policy``, dict, JSON string, file or preset name (``"flax-defaults"``,
    ``"torch-defaults"``). ``seed``: ``None`` takes the policy's seed, else 0.
    ``model``: the linen module, for kinds and layouts from module types (DenseGeneral axes,
    ConvTranspose ``transpose_kernel``, attention); ``model_args``: example inputs for
    ``model.init``, needed to see compact submodules (see ``linen_modules``).
    ``rng="portable"``: every parameter from the portable stream ``stream``
    (docs/portable-random.md), keyed by (seed, canonical path): the same values as NumPy and
    torch for the same seed and path, whatever the sharding.

    ``path_map``: the tree is a part of a larger model (a pipeline stage, an expert
    shard): local canonical paths mapped to the model's (``initspec.pathmap``), as in
    ``initspec_torch.apply``.

    Raises an ``InitSpecError`` naming every parameter that cannot be handled; nothing is
    sampled then. ``progress``: a tqdm bar or a callback ``progress(done, total, path)``
    while sampling, as for ``initspec_torch.apply`` (``initspec.progress``). All or
    nothing by construction: the input is never written, so a failure
    or a Ctrl-C while sampling returns nothing and leaves it as it was (no interrupt is
    deferred: there is nothing to protect).
    """
    described = describe_linen(params, model, model_args=model_args)
    backend = _Backend()
    resolution = _run(
        policy, described, seed, backend, rng, stream, strict=strict, path_map=path_map,
        progress=progress,
    )
    new = backend.new
    tree, has_collections = split_collections(params)
    boxed = dict(walk(tree))
    replaced = {}
    for p in described:
        if p.info.path in new:
            replaced[p.path] = _rebox(boxed[p.path], new[p.info.path])
    out_tree = _rebuild(tree, replaced)
    if has_collections:
        out_tree = _rebuild_collections(params, out_tree)
    return out_tree, resolution.report()


def _rebuild_collections(variables: Mapping[str, Any], new_params: Any) -> Any:
    from flax.core import FrozenDict

    out = {name: (new_params if name == "params" else value) for name, value in variables.items()}
    return FrozenDict(out) if isinstance(variables, FrozenDict) else out


# nnx -------------------------------------------------------------------------------------


def apply_nnx(
    policy: PolicyLike,
    module: Any,
    seed: int | None = None,
    *,
    rng: Rng = "native",
    stream: int = 1,
    strict: bool | None = None,
    path_map: PathMap | None = None,
    progress: ProgressLike = None,
    atomic: Atomic = True,
) -> Report:
    """Initialize an ``nnx.Module``'s ``nnx.Param`` variables in place from ``policy``.

    Kinds and layouts come from the owning modules' types (``initspec_jax.describe``); a
    variable reachable under several paths is initialized once, under the first path
    ``nnx.iter_graph`` gives. Values keep their dtype and sharding. Raises an
    ``InitSpecError`` naming every parameter that cannot be handled, and then writes nothing.
    Then, with ``atomic=True`` (default), the variables are assigned one by one, each old
    array released as its variable gets the new one (no second copy of the model), with a
    Ctrl-C deferred until every one is assigned (then ``KeyboardInterrupt``; see
    ``initspec_torch.apply``); a variable of an ``nnx.Param`` subclass is assigned first,
    its old array kept until the end, so that a failing assignment is undone; what no
    check can foresee (out of memory while sampling) raises a ``PartialWriteError`` naming
    the variables already assigned. ``atomic="backup"``: every old array kept until the
    end (the model twice in memory), and any failure gives every variable its old value
    back. ``atomic=False``: assigned as sampled, nothing deferred. ``rng="portable"``:
    the portable stream ``stream``, as in ``apply``; ``path_map`` and ``progress`` as in
    ``apply``.
    """
    # The old arrays held by the variables only (the description keeps their shape, dtype
    # and sharding), so that each is released as its variable is assigned.
    described = [replace(p, value=_abstract(p.value)) for p in describe_nnx(module)]
    backend = _Backend({p.info.path: p.variable for p in described}, atomic)
    return _run(
        policy, described, seed, backend, rng, stream, strict=strict, path_map=path_map,
        progress=progress,
    ).report()
