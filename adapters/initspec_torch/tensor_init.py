"""``init_`` and ``init_shard_``: one spec on one torch tensor, in place.

Both run the core's single-tensor path (``initspec.engine``): plan the spec against the
tensor's shape, check everything (the tensor, its dtype, overflow, bounds the dtype has no
value in, the shard), and only then draw into the tensor, so a failure modifies nothing.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch

from initspec.backend import Rng, check_rng
from initspec.engine import run_one, single_job, where
from initspec.errors import BackendError
from initspec.layout import LayoutLike
from initspec.plans import Plan
from initspec.specs import PlanContext, SpecBase
from initspec_torch.backend import SEEDED, TorchBackend
from initspec_torch.casting import SUPPORTED_DTYPES, dtype_name
from initspec_torch.sampler import Generator, write_plan

__all__ = ["check_tensor", "init_", "init_shard_", "make_generator", "plan_for", "write_plan"]

T = TypeVar("T", bound=torch.Tensor)
Spec = SpecBase | dict[str, Any] | str


def check_tensor(tensor: object, path: str = "") -> torch.Tensor:
    """The tensor itself if initspec can write it, else ``BackendError`` saying what to pass."""
    if not isinstance(tensor, torch.Tensor):
        raise BackendError(
            f"{where(path)}: expected a torch.Tensor (or nn.Parameter), got "
            f"{type(tensor).__name__}; pass the tensor itself"
        )
    if tensor.dtype not in SUPPORTED_DTYPES:
        allowed = ", ".join(dtype_name(d) for d in SUPPORTED_DTYPES)
        raise BackendError(
            f"{where(path, tuple(tensor.shape))}: dtype {dtype_name(tensor.dtype)} cannot be "
            f"initialized; initspec writes floating tensors only ({allowed}): convert it "
            f"with .float() first or leave it out of the policy"
        )
    return tensor


def plan_for(
    tensor: torch.Tensor,
    spec: Spec,
    layout: LayoutLike = "torch",
    path: str = "",
    context: PlanContext | None = None,
) -> Plan:
    """The plan of ``spec`` for ``tensor``'s shape, checked as ``init_`` checks it (errors
    name the parameter; values that would overflow its dtype or bounds its dtype has no
    value in are a ``BackendError``)."""
    job = single_job(spec, tuple(tensor.shape), layout, 0, path, context)
    run_one(_CheckOnly(), job, tensor)
    return job.plan


class _CheckOnly(TorchBackend):
    """The checks of ``TorchBackend``, writing nothing (``plan_for``)."""

    def placeholder(self, target: torch.Tensor) -> bool:
        return True


def make_generator(
    device: torch.device,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    path: str = "",
) -> Generator:
    """The generator ``init_`` draws from.

    - ``generator`` given: it, if it lives on ``device``'s type (else ``BackendError``);
    - ``seed`` given: a new ``torch.Generator(device)`` seeded with
      ``initspec.derive_seed(seed, path)``, so torch's global RNG state is never touched;
    - neither: ``None``, i.e. torch's default generator, as ``torch.nn.init``.
    """
    from initspec.seeding import derive_seed

    if generator is not None and seed is not None:
        raise BackendError("pass either generator or seed, not both")
    if generator is not None:
        if generator.device.type != device.type:
            raise BackendError(
                f"the generator is on {generator.device} but the tensor is on {device}; "
                f"pass a torch.Generator(device={str(device)!r}) or seed= instead"
            )
        return generator
    if seed is None:
        return None
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, path))
    return gen


def init_(
    tensor: T,
    spec: Spec,
    layout: LayoutLike = "torch",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    path: str = "",
    context: PlanContext | None = None,
    *,
    rng: Rng = "native",
    stream: int = 1,
) -> T:
    """Initialize ``tensor`` in place from ``spec`` and return it.

    ``spec``: a spec, a dict or a JSON string (torch, jax and keras spellings accepted).
    ``layout``: which axes are out / in (``"torch"``: (out, in, *k); ``"torch_transposed"``
    for ConvTranspose weights; ``"embedding"``; or explicit axes). ``generator``: draw from
    it; ``seed``: draw from a fresh generator on the tensor's device seeded with
    ``derive_seed(seed, path)``; neither: torch's default generator, like ``torch.nn.init``.
    ``path`` names the parameter in errors and seeds. ``context``: what the spec needs from
    the owning layer (``PlanContext(weight_fans=...)`` for ``torch_linear_bias``).

    ``rng="portable"``: the counter-based stream ``stream`` (docs/portable-random.md): the
    same values as ``initspec.sample(..., rng="portable")`` and ``initspec_jax`` for the same
    ``seed`` (default 0) and ``path``, on any device, computed in float64 and rounded once; a
    DTensor computes only its local shard, from the shard's global indices. ``generator``
    is not used then.

    Values are drawn on the tensor's own device; float16/bfloat16 are drawn in float32 and
    rounded once; uniform and truncated normal values stay inside their bounds after the
    rounding. A meta tensor is validated and returned unchanged.

    Raises an ``InitSpecError`` (and writes nothing) for a non-tensor, an integer, bool or
    complex tensor, a spec the shape cannot take (``ShapeError``), a generator on another
    device, or values that overflow the dtype (``BackendError``).
    """
    checked = check_tensor(tensor, path)
    check_rng(rng, stream)
    if rng == "portable" and generator is not None:
        raise BackendError(
            "rng='portable' draws from the counter-based stream keyed by (seed, path); "
            "pass seed= instead of generator="
        )
    job = single_job(spec, tuple(checked.shape), layout, seed or 0, path, context, rng, stream)
    gen: Any = SEEDED if seed is not None else generator
    if rng == "native" and not checked.is_meta:
        try:
            make_generator(checked.device, generator, seed, path)  # validates the pair
        except BackendError as exc:
            raise BackendError(f"{where(path, tuple(checked.shape))}: {exc}") from None
    run_one(TorchBackend(gen, atomic=False), job, checked)
    return tensor


def init_shard_(
    local: T,
    spec: Spec,
    global_shape: tuple[int, ...],
    index: tuple[slice, ...],
    layout: LayoutLike = "torch",
    seed: int = 0,
    path: str = "",
    context: PlanContext | None = None,
    *,
    stream: int = 1,
) -> T:
    """Initialize ``local``, the shard ``index`` of a parameter of ``global_shape``, from the
    portable stream: equal to ``init_(full, ..., rng="portable")[index]``.

    The plan (fans included) comes from ``global_shape``; only the shard's elements are
    computed, from their global indices (structural plans build the whole tensor, then
    slice). ``index``: one slice per dimension, positive step, inside ``global_shape``;
    ``local.shape`` must be the shape of that slice. ``BackendError`` otherwise, and nothing
    is written. DTensors need no index: ``init_(dtensor, ..., rng="portable")``.
    """
    checked = check_tensor(local, path)
    job = single_job(spec, tuple(global_shape), layout, seed, path, context, "portable", stream, index)
    try:
        shard = job.block
    except BackendError as exc:
        raise BackendError(f"{where(path, job.plan.shape)}: {exc}") from None
    if tuple(checked.shape) != shard.shape:
        raise BackendError(
            f"{where(path, job.plan.shape)}: the shard {index!r} has shape {shard.shape}, "
            f"the local tensor {tuple(checked.shape)}"
        )
    run_one(TorchBackend(atomic=False), job, checked)
    return local
