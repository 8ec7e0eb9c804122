"""``init_``: materialize one spec on one torch tensor, in place.

Order of work, so that a failure modifies nothing: check the argument and its dtype, parse
the spec, plan it against the tensor's shape, pick the generator, sample into a temporary on
the tensor's device, cast once and check for overflow, and only then copy into the tensor.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import torch

from initspec import portable as portable_ref
from initspec.errors import BackendError, InitSpecError, ShapeError
from initspec.layout import LayoutLike
from initspec.parse import parse
from initspec.plans import Plan, TruncatedNormalPlan, UniformPlan
from initspec.seeding import derive_seed
from initspec.specs import PlanContext, SpecBase
from initspec_torch import portable
from initspec_torch.casting import (
    SUPPORTED_DTYPES,
    cast_once,
    check_fits,
    clip_to_bounds_,
    dtype_inward_bounds,
    dtype_name,
    uniform_inside_,
    work_dtype,
)
from initspec_torch.sampler import ELEMENTWISE, fill_elementwise_, sample_plan

T = TypeVar("T", bound=torch.Tensor)


def _where(path: str, shape: tuple[int, ...] | None = None) -> str:
    """``parameter 'fc.weight' (shape (10, 784))`` for error messages."""
    name = f"parameter {path!r}" if path else "tensor"
    return f"{name} (shape {shape})" if shape is not None else name


def check_tensor(tensor: object, path: str = "") -> torch.Tensor:
    """The tensor itself if initspec can write it, else ``BackendError`` saying what to pass."""
    if not isinstance(tensor, torch.Tensor):
        raise BackendError(
            f"{_where(path)}: expected a torch.Tensor (or nn.Parameter), got "
            f"{type(tensor).__name__}; pass the tensor itself"
        )
    if tensor.dtype not in SUPPORTED_DTYPES:
        allowed = ", ".join(dtype_name(d) for d in SUPPORTED_DTYPES)
        raise BackendError(
            f"{_where(path, tuple(tensor.shape))}: dtype {dtype_name(tensor.dtype)} cannot be "
            f"initialized; initspec writes floating tensors only ({allowed}): convert it "
            f"with .float() first or leave it out of the policy"
        )
    return tensor


def plan_for(
    tensor: torch.Tensor,
    spec: SpecBase | dict[str, Any] | str,
    layout: LayoutLike = "torch",
    path: str = "",
    context: PlanContext | None = None,
) -> Plan:
    """Parse ``spec`` and resolve it against ``tensor``'s shape; errors name the parameter.

    Also rejects, with ``BackendError``, plans whose values can overflow the tensor's dtype
    and bounded plans the dtype has no value for (an interval narrower than its spacing), so
    that nothing can fail once writing starts.
    """
    shape = tuple(tensor.shape)
    parsed = parse(spec)
    try:
        plan = parsed.plan(shape, layout, context)
    except ShapeError as exc:
        raise ShapeError(f"{_where(path, shape)}: {exc}") from None
    except InitSpecError as exc:
        # Missing context (torch_linear_bias without weight_fans, ...): same class, plus where.
        if type(exc) is InitSpecError:
            raise InitSpecError(f"{_where(path, shape)}: {exc}") from None
        raise
    try:
        check_fits(plan, tensor.dtype)
        if isinstance(plan, (UniformPlan, TruncatedNormalPlan)) and tensor.numel():
            dtype_inward_bounds(plan, tensor.dtype)
    except BackendError as exc:
        raise BackendError(f"{_where(path, shape)}: {exc}") from None
    return plan


def make_generator(
    device: torch.device,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    path: str = "",
) -> torch.Generator | None:
    """The generator to draw from.

    - ``generator`` given: it, if it lives on ``device``'s type (else ``BackendError``);
    - ``seed`` given: a new ``torch.Generator(device)`` seeded with
      ``initspec.derive_seed(seed, path)``, so torch's global RNG state is never touched;
    - neither: ``None``, i.e. torch's default generator, as ``torch.nn.init``.
    """
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


def write_plan(tensor: T, plan: Plan, generator: torch.Generator | None) -> T:
    """Sample ``plan`` on ``tensor``'s device, round once to its dtype, write it (no grad).

    The plan has been checked by ``plan_for``, so nothing here can fail on the plan's account.
    A contiguous tensor whose dtype is also the working dtype takes an elementwise plan in
    place; everything else is sampled into a temporary and copied, and ``copy_`` writes by
    logical index, so a channels_last or otherwise strided tensor gets the same values as a
    contiguous one. Meta and empty tensors are returned unchanged: nothing to write.
    """
    if tensor.is_meta or tensor.numel() == 0:
        return tensor
    work = work_dtype(plan, tensor.dtype)
    with torch.no_grad():
        in_place = work == tensor.dtype and tensor.is_contiguous()
        if work == tensor.dtype and isinstance(plan, UniformPlan):
            # strided: drawn contiguous, then copied by logical index (same values)
            out = (
                tensor if in_place else torch.empty(tensor.shape, dtype=work, device=tensor.device)
            )
            uniform_inside_(out, plan, generator)
            if out is not tensor:
                tensor.copy_(out)
        elif in_place and isinstance(plan, ELEMENTWISE):
            clip_to_bounds_(fill_elementwise_(tensor, plan, generator), plan)
        else:
            raw = sample_plan(plan, work, tensor.device, generator)
            tensor.copy_(cast_once(raw, plan, tensor.dtype))
    return tensor


def init_(
    tensor: T,
    spec: SpecBase | dict[str, Any] | str,
    layout: LayoutLike = "torch",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    path: str = "",
    context: PlanContext | None = None,
    *,
    rng: Literal["native", "portable"] = "native",
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
    if rng not in ("native", "portable"):
        raise BackendError(f"rng {rng!r} is not known; allowed: native, portable")
    if rng == "portable":
        portable_ref.check_version(stream)
        if generator is not None:
            raise BackendError(
                "rng='portable' draws from the counter-based stream keyed by (seed, path); "
                "pass seed= instead of generator="
            )
    plan = plan_for(checked, spec, layout, path, context)
    if rng == "portable":
        key = portable_ref.param_key(0 if seed is None else seed, path)
        perm = portable_ref.layout_perm(plan.shape, layout)
        return portable.write_(tensor, plan, key, perm)
    if checked.is_meta:
        # Nothing to write; the spec was still checked against the shape above.
        return tensor
    try:
        gen = make_generator(checked.device, generator, seed, path)
    except BackendError as exc:
        raise BackendError(f"{_where(path, tuple(checked.shape))}: {exc}") from None
    return write_plan(tensor, plan, gen)


def init_shard_(
    local: T,
    spec: SpecBase | dict[str, Any] | str,
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
    portable_ref.check_version(stream)
    whole = torch.empty(tuple(global_shape), dtype=checked.dtype, device="meta")
    plan = plan_for(whole, spec, layout, path, context)
    try:
        shard = portable.block(plan.shape, portable_ref.layout_perm(plan.shape, layout), index)
    except BackendError as exc:
        raise BackendError(f"{_where(path, plan.shape)}: {exc}") from None
    if tuple(checked.shape) != shard.shape:
        raise BackendError(
            f"{_where(path, plan.shape)}: the shard {index!r} has shape {shard.shape}, "
            f"the local tensor {tuple(checked.shape)}"
        )
    key = portable_ref.param_key(seed, path)
    return portable.write_(local, plan, key, portable_ref.layout_perm(plan.shape, layout), index)
