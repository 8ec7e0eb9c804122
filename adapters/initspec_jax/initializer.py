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

from initspec.backend import Rng, check_rng
from initspec.engine import single_job
from initspec.layout import Layout, LayoutLike, resolve_layout
from initspec.parse import parse
from initspec.plans import Plan
from initspec.seeding import derive_seed
from initspec.specs import PlanContext, SpecBase
from initspec_jax import portable
from initspec_jax.checks import check_dtype, check_key, check_shape
from initspec_jax.sampling import sample_plan


@dataclass(frozen=True)
class SpecInitializer:
    """A spec bound to a layout (and optional plan context), callable as a JAX initializer."""

    spec: SpecBase
    layout: Layout
    context: PlanContext | None = None
    rng: Rng = "native"
    seed: int = 0
    path: str = ""
    stream: int = 1

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

        ``rng="portable"``: the values of the portable stream for ``(seed, path)``; ``key`` is
        not used (it may be anything, e.g. the key Flax passes).
        """
        job = single_job(
            self.spec, check_shape(shape), self.layout, self.seed, self.path, self.context,
            self.rng, self.stream,
        )  # fmt: skip
        if self.rng == "portable":
            return portable.sample(
                job.plan, job.key, job.perm, dtype, sharding=out_sharding, stream=self.stream
            )
        return sample_plan(job.plan, check_key(key), check_dtype(dtype), out_sharding)

    def __repr__(self) -> str:
        portable_args = (
            f", rng='portable', seed={self.seed}, path={self.path!r}"
            if self.rng == "portable"
            else ""
        )
        return (
            f"initspec_jax.initializer({self.spec.model_dump_json()}, "
            f"layout={self.layout.label()!r}{portable_args})"
        )


def initializer(
    spec: SpecBase | dict[str, Any] | str,
    layout: LayoutLike = "flax",
    context: PlanContext | None = None,
    *,
    rng: Rng = "native",
    seed: int = 0,
    path: str = "",
    stream: int = 1,
) -> SpecInitializer:
    """``init(key, shape, dtype=jnp.float32, out_sharding=None) -> jax.Array`` for ``spec``.

    ``spec``: a spec, its dict or its JSON (torch, jax and keras spellings,
    ``initspec.parse``). ``layout``: which axes of ``shape`` are in / out (default
    ``"flax"``, (*k, in, out), as Flax Dense and Conv kernels and jax's own defaults; use
    ``"embedding"`` for ``Embed``, ``"flax_transposed"`` for ``ConvTranspose`` with
    ``transpose_kernel=True``). ``context``: layer facts some specs need (PlanContext).

    ``rng="portable"``: draw from the counter-based stream ``stream`` keyed by ``(seed,
    path)`` (docs/portable-random.md) instead of the key the initializer is called with:
    the same values as ``initspec.sample`` and ``initspec_torch.init_`` with
    ``rng="portable"`` and the same seed and path, in any layout (the elements are indexed
    in the layout's canonical order) and under any sharding.

    ```python
    import flax.linen as nn
    dense = nn.Dense(10, kernel_init=initializer({"kind": "kaiming_normal"}))
    ```
    """
    check_rng(rng, stream)
    derive_seed(seed, path)  # validates the seed
    return SpecInitializer(parse(spec), resolve_layout(layout), context, rng, seed, path, stream)
