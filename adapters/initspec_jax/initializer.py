"""``initializer(spec)``: a spec as a ``jax.nn.initializers``-style function.

The returned object is called as ``init(key, shape, dtype=jnp.float32, out_sharding=None)``,
the protocol of ``jax.nn.initializers.Initializer``, so it can be passed to Flax as
``kernel_init=``, ``bias_init=`` or ``embedding_init=``. The plan is computed from the static
shape when the function is called (at trace time under ``jax.jit``); only the key may be a
tracer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding, get_abstract_mesh

from initspec import BackendError, Plan, PlanContext, SpecBase, parse, resolve_layout
from initspec.layout import Layout, LayoutLike
from initspec_jax.checks import check_dtype, check_key, check_shape
from initspec_jax.sampling import sample_plan


def place(x: jax.Array, sharding: Any) -> jax.Array:
    """``x`` with ``sharding``: ``jax.sharding.reshard`` for explicit mesh axes (what
    ``jax.random``'s ``out_sharding`` does), ``with_sharding_constraint`` for a mesh whose axes
    are all ``Auto`` (which ``reshard`` refuses)."""
    mesh = sharding.mesh if isinstance(sharding, NamedSharding) else get_abstract_mesh()
    try:
        if mesh.axis_types and all(t == AxisType.Auto for t in mesh.axis_types):
            return jax.lax.with_sharding_constraint(x, sharding)
        return jax.sharding.reshard(x, sharding)
    except (TypeError, ValueError) as exc:
        raise BackendError(f"out_sharding {sharding!r} cannot be applied: {exc}") from None


@dataclass(frozen=True)
class SpecInitializer:
    """A spec bound to a layout (and optional plan context), callable as a JAX initializer."""

    spec: SpecBase
    layout: Layout
    context: PlanContext | None = None

    def plan(self, shape: Any) -> Plan:
        """The plan this initializer samples for ``shape`` (pure math, no randomness)."""
        return self.spec.plan(check_shape(shape), self.layout, self.context)

    def __call__(
        self,
        key: Any,
        shape: Any,
        dtype: Any = jnp.float32,
        out_sharding: Any = None,
    ) -> jax.Array:
        """Sample the spec for ``shape``; ``dtype=None`` is JAX's default float dtype.

        ``out_sharding`` (a ``NamedSharding``, or a ``PartitionSpec`` under a mesh context)
        places the result, as ``jax.nn.initializers`` accept it (see ``place``). Under
        ``jax.jit(..., out_shardings=...)`` it is not needed: the elementwise primitives are
        generated shard by shard (threefry is partitionable) with the same values.
        """
        plan = self.plan(shape)
        out = sample_plan(plan, check_key(key), check_dtype(dtype))
        if out_sharding is not None:
            out = place(out, out_sharding)
        return out

    def __repr__(self) -> str:
        return (
            f"initspec_jax.initializer({self.spec.model_dump_json()}, "
            f"layout={self.layout.label()!r})"
        )


def initializer(
    spec: SpecBase | dict[str, Any] | str,
    layout: LayoutLike = "flax",
    context: PlanContext | None = None,
) -> SpecInitializer:
    """``init(key, shape, dtype=jnp.float32, out_sharding=None) -> jax.Array`` for ``spec``.

    ``spec``: a spec, its dict or its JSON (torch, jax and keras spellings,
    ``initspec.parse``). ``layout``: which axes of ``shape`` are in / out (default
    ``"flax"``, (*k, in, out), as Flax Dense and Conv kernels and jax's own defaults; use
    ``"embedding"`` for ``Embed``, ``"flax_transposed"`` for ``ConvTranspose`` with
    ``transpose_kernel=True``). ``context``: layer facts some specs need (PlanContext).

    >>> import jax, flax.linen as nn
    >>> dense = nn.Dense(10, kernel_init=initializer({"kind": "kaiming_normal"}))
    """
    return SpecInitializer(parse(spec), resolve_layout(layout), context)
