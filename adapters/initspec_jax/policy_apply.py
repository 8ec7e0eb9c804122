"""``apply`` (Flax linen parameter trees) and ``apply_nnx`` (nnx modules), all or nothing.

1. find and describe every parameter (``initspec_jax.traverse``, ``initspec_jax.describe``);
2. resolve the policy for all of them (``initspec.resolve``: rule, spec, plan, seed) and
   check that each plan fits its parameter's dtype (``initspec.numeric.check_fits``):
   any problem raises one ``InitSpecError`` listing every parameter concerned, before a
   single array is produced;
3. sample each parameter from its own key: threefry2x32 with key words
   ``(s >> 32, s & 0xFFFFFFFF)`` for ``s = derive_seed(seed, canonical path)`` (the key of
   the portable stream too), on the parameter's own sharding when it has one; with
   ``rng="portable"``, the portable stream's values for that key (``initspec_jax.portable``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import jax
import numpy as np

from initspec import portable as portable_ref
from initspec.errors import BackendError, InitSpecError
from initspec.layout import LayoutLike
from initspec.numeric import check_fits
from initspec.plans import Plan
from initspec.resolve import Report, Resolution, ResolutionError, resolve
from initspec_jax import portable
from initspec_jax.checks import check_dtype, stored_dtype
from initspec_jax.sampling import sample_plan
from initspec_jax.traverse import (
    FlaxParam,
    Path,
    describe_linen,
    describe_nnx,
    split_collections,
    walk,
)


def param_key(seed64: int) -> jax.Array:
    """The threefry2x32 key of a parameter from its 64-bit ``derive_seed`` value.

    Built from the key words directly: ``jax.random.key(s)`` keeps only the low 32 bits of
    ``s`` unless x64 is on, and refuses ``s >= 2**63``.
    """
    return jax.random.wrap_key_data(param_key_data(seed64), impl="threefry2x32")


def param_key_data(seed64: int) -> np.ndarray:
    """The two uint32 words of ``param_key(seed64)``."""
    return np.array([seed64 >> 32, seed64 & 0xFFFFFFFF], dtype=np.uint32)


def _multi_device(value: Any) -> Any:
    """The sharding of ``value`` when it spans several devices, else None."""
    sharding = getattr(value, "sharding", None)
    return sharding if sharding is not None and len(sharding.device_set) > 1 else None


Rng = Literal["native", "portable"]


def _check_rng(rng: str, stream: int) -> None:
    if rng not in ("native", "portable"):
        raise BackendError(f"rng {rng!r} is not known; allowed: native, portable")
    if rng == "portable":
        portable_ref.check_version(stream)


def sample_like(
    plan: Plan,
    seed64: int,
    like: Any,
    rng: Rng = "native",
    layout: LayoutLike = "flax",
    stream: int = 1,
) -> jax.Array:
    """Sample ``plan`` with the parameter's key and the dtype and sharding of ``like``.

    ``rng="portable"``: the portable stream ``stream`` with key words ``(seed64 >> 32,
    seed64 & 0xFFFFFFFF)`` (``initspec.portable.param_key``), elements indexed in
    ``layout``'s canonical order.

    Programs are compiled per kind of primitive, shape, dtype and sharding, not per
    parameter: the layers of a deep model share them, whatever their std. A parameter spread
    over several devices is sampled under its sharding, each device computing only its
    shard; one on a single non-default device is moved there.
    """
    sharding = _multi_device(like)
    if rng == "portable":
        key = (seed64 >> 32, seed64 & 0xFFFFFFFF)
        perm = portable_ref.layout_perm(plan.shape, layout)
        out = portable.sample(
            plan, key, perm, np.dtype(like.dtype), sharding=sharding, stream=stream
        )
    else:
        out = sample_plan(plan, param_key_data(seed64), np.dtype(like.dtype), sharding)
    single = getattr(like, "sharding", None)
    if sharding is None and single is not None and single != out.sharding:
        out = jax.device_put(out, single)
    return out


def _check_and_sample(
    resolution: Resolution, values: Mapping[str, Any], rng: Rng = "native", stream: int = 1
) -> dict[str, jax.Array]:
    """New arrays for every parameter to initialize, or one ``ResolutionError`` (nothing is
    sampled) naming each parameter whose plan its dtype cannot hold."""
    problems: list[str] = []
    for rp in resolution.to_sample():
        assert rp.plan is not None and rp.rule is not None and rp.rule_index is not None
        try:
            dtype = check_dtype(values[rp.info.path].dtype)
            check_fits(rp.plan, stored_dtype(dtype).name)
        except InitSpecError as exc:
            info = rp.info
            problems.append(
                f"{info.path} (shape {info.shape}, {info.kind}/{info.role}): "
                f"rule {rp.rule.label(rp.rule_index)}: {exc}"
            )
    if problems:
        raise ResolutionError(problems)
    out = {}
    for rp in resolution.to_sample():
        assert rp.plan is not None
        out[rp.info.path] = sample_like(
            rp.plan, rp.seed, values[rp.info.path], rng, rp.info.layout, stream
        )
    return out


def resolve_params(policy: Any, params: list[FlaxParam], seed: int | None = None) -> Resolution:
    """Resolve ``policy`` for described parameters without sampling anything: the report
    of what ``apply`` / ``apply_nnx`` would do (``resolution.report()``)."""
    return resolve(policy, [p.info for p in params], seed)


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
    policy: Any,
    params: Any,
    seed: int | None = None,
    model: Any = None,
    *,
    model_args: tuple[Any, ...] | None = None,
    rng: Rng = "native",
    stream: int = 1,
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

    Raises an ``InitSpecError`` naming every parameter that cannot be handled; nothing is
    sampled then.
    """
    _check_rng(rng, stream)
    described = describe_linen(params, model, model_args=model_args)
    resolution = resolve_params(policy, described, seed)
    new = _check_and_sample(resolution, {p.info.path: p.value for p in described}, rng, stream)
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
    policy: Any,
    module: Any,
    seed: int | None = None,
    *,
    rng: Rng = "native",
    stream: int = 1,
) -> Report:
    """Initialize an ``nnx.Module``'s ``nnx.Param`` variables in place from ``policy``.

    Kinds and layouts come from the owning modules' types (``initspec_jax.describe``); a
    variable reachable under several paths is initialized once, under the first path
    ``nnx.iter_graph`` gives. Values keep their dtype and sharding. Raises an
    ``InitSpecError`` naming every parameter that cannot be handled, and then writes nothing;
    otherwise all new values are computed before the first is assigned. ``rng="portable"``:
    the portable stream ``stream``, as in ``apply``.
    """
    _check_rng(rng, stream)
    described = describe_nnx(module)
    resolution = resolve_params(policy, described, seed)
    new = _check_and_sample(resolution, {p.info.path: p.value for p in described}, rng, stream)
    for p in described:
        if p.info.path in new:
            p.variable.set_value(new[p.info.path])
    return resolution.report()
