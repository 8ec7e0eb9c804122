"""Placing a sampled array on a sharding, inside or outside ``jax.jit``."""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec, get_abstract_mesh

from initspec import BackendError


def place(x: jax.Array, sharding: Any) -> jax.Array:
    """``x`` with ``sharding`` (a ``Sharding``, or a ``PartitionSpec`` under a mesh context):
    ``jax.sharding.reshard`` when the mesh has explicit axes (what ``jax.random``'s
    ``out_sharding`` does), else ``with_sharding_constraint`` (``reshard`` refuses ``Auto``
    axes)."""
    if isinstance(sharding, NamedSharding):
        axis_types = tuple(sharding.mesh.axis_types)
    elif isinstance(sharding, PartitionSpec):
        axis_types = tuple(get_abstract_mesh().axis_types)
    else:
        axis_types = ()
    try:
        if any(t == AxisType.Explicit for t in axis_types):
            return jax.sharding.reshard(x, sharding)
        return jax.lax.with_sharding_constraint(x, sharding)
    except (TypeError, ValueError) as exc:
        raise BackendError(f"out_sharding {sharding!r} cannot be applied: {exc}") from None
