"""Fingerprints of a Flax model's parameters (``initspec.fingerprints``), shard by shard.

Each parameter is numbered by the layout the description gives it (the portable stream's
counters: a ``Dense`` kernel ``(in, out)`` in the order of the torch weight ``(out, in)``),
and keyed by its canonical path with Flax's leaf names read as torch's (``fc.kernel`` is
``fc.weight``), so a Flax model and its torch twin holding the same values have the same
fingerprint. A sharded ``jax.Array`` contributes each addressable shard once (replicas
skipped by ``replica_id``), from the shard's global indices; nothing is gathered.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from initspec.errors import BackendError
from initspec.fingerprints import Fingerprint, assemble, combine, param_fingerprint, shard_sum
from initspec_jax.traverse import describe_linen, describe_nnx


def _sum(value: Any, info: Any, threads: int) -> int:
    """The sum of one parameter's value: an array on the host, or a ``jax.Array`` shard by
    shard."""
    path = info.path
    if isinstance(value, jax.ShapeDtypeStruct) or isinstance(value, jax.core.Tracer):
        raise BackendError(
            f"parameter {path!r}: an abstract value ({type(value).__name__}) has no values "
            f"to fingerprint"
        )
    if not isinstance(value, jax.Array):
        return shard_sum(np.asarray(value), info.shape, info.layout, path=path, threads=threads)
    if not value.is_fully_addressable:
        raise BackendError(
            f"parameter {path!r}: an array spanning several processes; fingerprint it per "
            f"process with initspec.fingerprints.shard_sum and add the sums "
            f"(initspec.fingerprints.combine), counting each replica once"
        )
    parts = []
    for shard in value.addressable_shards:
        if shard.replica_id != 0:  # the same elements as replica 0
            continue
        data = np.asarray(shard.data)
        parts.append(
            shard_sum(data, info.shape, info.layout, shard.index, path=path, threads=threads)
        )
    return combine(parts)


def fingerprint(
    params_or_module: Any,
    model: Any = None,
    *,
    model_args: tuple[Any, ...] | None = None,
    threads: int = 1,
) -> Fingerprint:
    """The fingerprint of an ``nnx.Module``'s ``nnx.Param`` values, or of a linen parameter
    tree (``model`` and ``model_args`` as for ``apply``: they say which module owns each
    parameter, hence its layout; without them leaf names decide: ``kernel`` in Flax's
    layout, ``embedding`` as a table).

    ``BackendError`` for abstract values (``jax.ShapeDtypeStruct``), non-float dtypes and
    arrays that span several processes."""
    from flax import nnx

    if isinstance(params_or_module, nnx.Module):
        described = describe_nnx(params_or_module)
    else:
        described = describe_linen(params_or_module, model, model_args=model_args)
    out = []
    for param in described:
        info = param.info
        total = _sum(param.value, info, threads)
        out.append(param_fingerprint(info.path, info.dtype, info.shape, info.layout, total))
    return assemble(out)
