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

from initspec import Plan, PlanContext, SpecBase, parse, resolve_layout
from initspec.layout import Layout, LayoutLike
from initspec_jax.checks import check_dtype, check_key, check_shape
from initspec_jax.sampling import sample_plan


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
        places the result, as ``jax.nn.initializers`` accept it
        (``initspec_jax.sharding.place``). Under
        ``jax.jit(..., out_shardings=...)`` it is not needed: the elementwise primitives are
        generated shard by shard (threefry is partitionable) with the same values.
        """
        plan = self.plan(shape)
        return sample_plan(plan, check_key(key), check_dtype(dtype), out_sharding)

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
