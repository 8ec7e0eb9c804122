"""``capture``: a PyTorch model's own initialization, recorded while it is built, as a policy.

``capture(build)`` runs ``build()`` (a zero-argument callable that constructs the model the way
its users do, running its own init) on the meta device by default, records every
initialization applied to every parameter (``initspec_torch.capture_record``), and returns the
``Policy`` that reproduces it: applied to the same model, each parameter gets the plan its
recorded init had; applied with ``initspec_jax`` to a Flax twin with the same names, the same
plans. ``capture_report`` returns the ``CaptureReport`` behind it: the policy, per parameter
the recorded calls, the rule and the plan, the skipped parameters with their reasons, and
notes on how the capture ran.

Global RNGs (torch's CPU generator and CUDA's where initialized, NumPy's, Python's) are saved
before each build and restored after it; nothing but the model ``build`` returns is touched,
and that model is discarded.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from initspec.capture import (
    UNINITIALIZED,
    BuildError,
    CaptureReport,
    Drawn,
    Inexpressible,
    ParamRecord,
    Value,
    synthesize,
)
from initspec.errors import InitSpecError
from initspec.policy import Policy
from initspec_torch.capture_record import History, Recorder, Region, _covers
from initspec_torch.describe import describe


def capture(
    build: Callable[[], nn.Module],
    *,
    also: Callable[[], nn.Module] | None = None,
    device: str | None = "meta",
) -> Policy:
    """The policy that reproduces the init ``build()`` applies to its model.

    ``also``: a second build of the architecture at another width (same parameter names):
    literal stds that differ between the two and follow a fan become fan-based specs.
    ``device``: where to build (``"meta"``: no memory is allocated; a build whose init needs
    values, such as ``.item()`` or ``.tolist()``, is run again on the CPU, and the report says
    so); ``None`` builds where ``build`` puts it. ``InitSpecError`` when ``build`` raises,
    returns no ``nn.Module``, or initializes nothing.
    """
    return capture_report(build, also=also, device=device).policy


def capture_report(
    build: Callable[[], nn.Module],
    *,
    also: Callable[[], nn.Module] | None = None,
    device: str | None = "meta",
) -> CaptureReport:
    """``capture``'s policy with its report (``CaptureReport``: ``.policy``, ``.rows()``,
    ``.skipped``, ``.notes``, ``.table()``, ``.rules_text()``, ``.to_json()``)."""
    records, notes = _record(build, device, "build")
    also_records = None
    if also is not None:
        also_records, also_notes = _record(also, device, "also")
        notes += also_notes
    name = getattr(build, "__qualname__", "") or "captured"
    description = "captured by initspec_torch.capture" + (
        f" from {name}" if name != "<lambda>" else ""
    )
    return synthesize(records, also_records, name="captured", description=description, notes=notes)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Save every global RNG (torch CPU, CUDA where initialized, NumPy, Python) and restore
    it on exit, whatever the block does."""
    torch_state = torch.get_rng_state()
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    cuda_states = torch.cuda.get_rng_state_all() if cuda else None
    np = sys.modules.get("numpy")
    np_state = np.random.get_state() if np is not None else None
    py_state = random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        if np is not None and np_state is not None:
            np.random.set_state(np_state)
        random.setstate(py_state)


def _run(build: Callable[[], Any], device: str | None) -> tuple[Any, Recorder]:
    rec = Recorder(meta=device == "meta")
    # Not torch.device("meta") for meta: transformers 5 skips its init_weights under it.
    where = torch.device(device) if device not in (None, "meta") else contextlib.nullcontext()
    with preserved_rng(), where, rec:
        model = build()
    return model, rec


def _record(build: Any, device: str | None, what: str) -> tuple[list[ParamRecord], list[str]]:
    if not callable(build):
        raise BuildError(
            f"capture: {what} must be a zero-argument callable that builds the model, got {type(build).__name__}"
        )
    if device is not None:
        try:
            torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise InitSpecError(
                f"capture: device={device!r} is not a torch device ({exc})"
            ) from None
    notes = []
    try:
        model, rec = _run(build, device)
        notes.append(f"{what}: built on {device or 'the device build chose'}")
    except Exception as exc:
        if device != "meta":
            raise BuildError(f"capture: {what}() raised {type(exc).__name__}: {exc}") from exc
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        try:
            model, rec = _run(build, "cpu")
        except Exception as exc2:
            raise BuildError(f"capture: {what}() raised {type(exc2).__name__}: {exc2}") from exc2
        notes.append(
            f"{what}: the meta build failed ({reason}); built on the CPU, whose init needs values"
        )
    if not isinstance(model, nn.Module):
        raise BuildError(
            f"capture: {what}() returned {type(model).__name__}, not a torch.nn.Module"
        )
    if rec.errors:
        notes.append(
            f"{what}: {len(rec.errors)} problem(s) while recording: {'; '.join(rec.errors[:3])}"
        )
    records = []
    for p in describe(model):
        h = rec.history(p.tensor)
        value, zero_row = _final(h, p.tensor, p.info.context.padding_idx)
        calls = tuple(h.calls) if h is not None else ()
        records.append(ParamRecord(p.info, value, zero_row, calls))
    if not records:
        raise BuildError(f"capture: {what}() returned a {type(model).__name__} with no parameters")
    if all(r.value == UNINITIALIZED or not r.calls for r in records):
        raise BuildError(
            f"capture: {what}() initialized nothing: every parameter of its "
            f"{type(model).__name__} was made by torch.empty and never written, or made "
            f"before build() ran"
        )
    return records, notes


def _rows(region: Region, t: torch.Tensor) -> range | None:
    """The rows (indices along dim 0) of ``t`` that a write to ``region`` of its storage
    covers entirely, or None if it is not a block of whole rows."""
    off, shape, stride = region
    if t.dim() == 0 or t.stride(0) <= 0 or off % t.stride(0):
        return None
    r0 = off // t.stride(0)
    tail_shape, tail_stride = tuple(t.shape[1:]), tuple(t.stride()[1:])
    if shape == tail_shape and stride == tail_stride:
        return range(r0, r0 + 1)
    if len(shape) == t.dim() and shape[1:] == tail_shape and stride[1:] == tail_stride:
        if shape[0] == 1 or stride[0] == t.stride(0):
            return range(r0, r0 + shape[0])
    return None


def _final(h: History | None, t: torch.Tensor, padding_idx: int | None) -> tuple[Value, bool]:
    """The parameter's value after everything recorded on its storage, and whether its
    padding row was zeroed after it."""
    if h is None:
        return Inexpressible("its values were made outside what capture sees"), False
    if not _covers(t):
        return Inexpressible("a view into a larger storage"), False
    rows: dict[int, Value] = {}
    for region, v in h.partial:
        covered = _rows(region, t)
        if covered is None:
            if isinstance(v, Inexpressible):
                return Inexpressible(f"{v.reason}, written into a slice"), False
            return Inexpressible(
                f"a slice of shape {list(region[1])} written apart from the rest"
            ), False
        for r in covered:
            rows[r] = v(rows.get(r, h.base)) if callable(v) else v
    if not rows:
        return h.base, False
    if padding_idx is not None and padding_idx < 0:
        padding_idx += t.shape[0]
    if padding_idx is not None and set(rows) == {padding_idx}:
        zero = rows[padding_idx]
        if isinstance(zero, Drawn) and zero.spec.kind == "zeros":
            return h.base, True
    if len(rows) == t.shape[0]:
        values = list(rows.values())
        if (
            all(v == values[0] for v in values)
            and isinstance(values[0], Drawn)
            and not values[0].spec.fan_based
        ):
            return values[0], False
    shown = sorted(rows)[:5]
    return Inexpressible(
        f"rows {shown}{'...' if len(rows) > 5 else ''} written apart from the rest"
    ), False


__all__ = ["capture", "capture_report", "preserved_rng"]
