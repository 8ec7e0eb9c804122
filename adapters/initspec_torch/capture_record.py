"""The recorder behind ``initspec_torch.capture``: what a build's init code writes, per tensor storage.

Two hooks run while ``build()`` does:

- a profile function (``sys.setprofile``) sees every call of a ``torch.nn.init`` function,
  whatever name or dict it was reached through (``transformers.initialization`` keeps the
  originals in ``TORCH_INIT_FUNCTIONS``, ``torch.nn.modules.activation`` imported
  ``xavier_uniform_`` by name), and records the call with its arguments as the catalog kind it
  names; the tensor ops inside it are not recorded;
- a ``TorchFunctionMode`` sees the tensor ops: in-place methods (``normal_``, ``uniform_``,
  ``fill_``, ``zero_``, ``copy_``, ``mul_``, ``div_``, ``add_``, ``sub_``, ``clamp_``,
  ``erfinv_``, ``__setitem__``, ... including through ``.data`` and on slices), factories
  (``torch.randn``, ``torch.zeros``, ``torch.empty``, ...) and out-of-place arithmetic on what
  they made (``torch.randn(n, d) * 0.02``).

Everything is keyed by the tensor's storage (``untyped_storage()._cdata``, the address of its
``StorageImpl``): ``.data``, views and slices share their parameter's storage on every device,
meta included (where ``data_ptr`` is 0 for all); ``p.data = t`` and ``nn.Parameter(t)`` make the
parameter's storage ``t``'s, whose history is already recorded. A write covers the whole storage
(it sets or transforms the value) or part of it (kept with its region, matched to the
parameter's rows at the end: an embedding's padding row). A storage created by an op the mode
sees gets a fresh history, so an address reused after a free never inherits a stale one.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from initspec.capture import (
    UNINITIALIZED,
    Drawn,
    Inexpressible,
    Value,
    apply_erfinv,
    clamp,
    const_value,
    constant,
    literal_spec,
    plan_of,
    scale,
    shift,
)
from initspec.errors import InitSpecError
from initspec.parse import parse
from initspec.specs import Constant, Eye, Normal, Ones, TruncatedNormal, Uniform, Zeros

_ELEMENTWISE = (Zeros, Ones, Constant, Normal, Uniform, TruncatedNormal)

Region = tuple[int, tuple[int, ...], tuple[int, ...]]  # storage offset, shape, stride


@dataclass
class History:
    """One storage: the value of the whole, the partial writes after it (region, value or
    transform), and the calls, described, in order."""

    base: Value = UNINITIALIZED
    partial: list[tuple[Region, Value | Callable[[Value], Value]]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)


def _key(t: torch.Tensor) -> int | None:
    try:
        return int(t.untyped_storage()._cdata)
    except (RuntimeError, NotImplementedError, TypeError, AttributeError):
        return None  # a tensor subclass without storage of its own


def _region(t: torch.Tensor) -> Region:
    return (
        int(t.storage_offset()),
        tuple(int(d) for d in t.shape),
        tuple(int(s) for s in t.stride()),
    )


def _covers(t: torch.Tensor) -> bool:
    """Whether ``t`` is every element of its storage, each once."""
    try:
        n = t.untyped_storage().nbytes() // max(t.element_size(), 1)
    except (RuntimeError, NotImplementedError):
        return False
    if t.storage_offset() != 0 or t.numel() != n:
        return False
    span = 1 + sum((d - 1) * abs(s) for d, s in zip(t.shape, t.stride(), strict=True) if d > 0)
    return t.numel() == 0 or span == t.numel()


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float)):
        return float(x)
    return None


def _fmt(args: dict[str, Any]) -> str:
    parts = []
    for k, v in args.items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.6g}")
        elif isinstance(v, (int, str, bool)) or v is None:
            parts.append(f"{k}={v!r}")
    return ", ".join(parts)


# torch.nn.init functions: the catalog kind each names, from its arguments.
_INIT_ARGS: dict[str, tuple[str, dict[str, str]]] = {
    "uniform_": ("uniform", {"a": "low", "b": "high"}),
    "normal_": ("normal", {"mean": "mean", "std": "std"}),
    "trunc_normal_": ("truncated_normal", {"mean": "mean", "std": "std", "a": "low", "b": "high"}),
    "constant_": ("constant", {"val": "value"}),
    "ones_": ("ones", {}),
    "zeros_": ("zeros", {}),
    "eye_": ("eye", {}),
    "dirac_": ("dirac", {"groups": "groups"}),
    "xavier_uniform_": ("xavier_uniform", {"gain": "gain"}),
    "xavier_normal_": ("xavier_normal", {"gain": "gain"}),
    "kaiming_uniform_": (
        "kaiming_uniform",
        {"a": "a", "mode": "mode", "nonlinearity": "nonlinearity"},
    ),
    "kaiming_normal_": (
        "kaiming_normal",
        {"a": "a", "mode": "mode", "nonlinearity": "nonlinearity"},
    ),
    "orthogonal_": ("orthogonal", {"gain": "gain"}),
    "sparse_": ("sparse", {"sparsity": "sparsity", "std": "std"}),
}


def _init_codes() -> dict[types.CodeType, str]:
    out = {}
    for name in _INIT_ARGS:
        fn = getattr(torch.nn.init, name, None)
        code = getattr(fn, "__code__", None)
        if code is not None:
            out[code] = name
    return out


def init_call_value(name: str, args: dict[str, Any], shape: tuple[int, ...]) -> Value:
    """The value ``torch.nn.init.<name>`` with ``args`` gives a tensor of ``shape``."""
    kind, fields = _INIT_ARGS[name]
    spec_fields: dict[str, Any] = {"kind": kind}
    for arg, fld in fields.items():
        if arg in args:
            v = args[arg]
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                return Inexpressible(f"torch.nn.init.{name}({arg}={type(v).__name__})")
            spec_fields[fld] = (
                float(v) if isinstance(v, (int, float)) and fld not in ("groups",) else v
            )
    if kind == "constant":
        return constant(spec_fields.get("value", 0.0))
    degenerate = _degenerate(kind, spec_fields)
    if degenerate is not None:
        return degenerate
    if kind == "sparse" and not isinstance(spec_fields.get("sparsity"), float):
        return Inexpressible(f"torch.nn.init.sparse_ sparsity {spec_fields.get('sparsity')!r}")
    try:
        spec = parse(spec_fields)
    except InitSpecError as exc:
        return Inexpressible(f"torch.nn.init.{name}({_fmt(args)}) is outside the catalog: {exc}")
    return Drawn(spec, 1.0, shape, "torch")


# Tensor methods -------------------------------------------------------------------------

# In-place methods that change no values (metadata, autograd, memory).
_NO_WRITE = {
    "requires_grad_", "share_memory_", "detach_", "retain_grad", "squeeze_", "unsqueeze_",
    "t_", "transpose_", "swapdims_", "swapaxes_", "as_strided_", "resize_", "resize_as_",
    "set_", "record_stream", "_fix_weakref", "_coalesced_", "rename_", "refine_names",
    "align_to",
}  # fmt: skip
# Augmented assignments: the in-place method each is.
_AUGMENTED = {
    "__iadd__": "add_", "__isub__": "sub_", "__imul__": "mul_", "__itruediv__": "div_",
    "__idiv__": "div_", "__ifloordiv__": "floor_divide_", "__ipow__": "pow_",
    "__imod__": "remainder_", "__iand__": "bitwise_and_", "__ior__": "bitwise_or_",
    "__ixor__": "bitwise_xor_", "__ilshift__": "bitwise_left_shift_",
    "__irshift__": "bitwise_right_shift_", "__imatmul__": "matmul_",
}  # fmt: skip
# Out-of-place ops whose result holds the input's values (dtype, device or a copy).
_SAME_VALUES = {
    "to", "clone", "contiguous", "float", "double", "half", "bfloat16", "cpu", "cuda",
    "type_as", "type", "detach", "requires_grad_", "__deepcopy__",
}  # fmt: skip


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _func_name(func: Any) -> str:
    name = getattr(func, "__name__", "") or ""
    if name in ("__get__", "__set__"):
        owner = getattr(getattr(func, "__self__", None), "__name__", "")
        return f"{owner}.{name}"
    return name


# Allocations that ``meta=True`` puts on the meta device. Not ``torch.tensor`` & co.: their
# data is given (small), and transformers 5 reads ``torch.tensor([]).device`` to skip its
# whole ``init_weights`` under a meta device context, which would leave nothing to record.
_META_CONSTRUCTORS = {
    torch.empty, torch.empty_strided, torch.empty_permuted, torch.zeros, torch.ones, torch.full,
    torch.rand, torch.randn, torch.randint, torch.eye,
}  # fmt: skip


class Recorder(TorchFunctionMode):
    """Records, per storage, what the ops seen write (see the module docstring). With
    ``meta``, parameter-sized allocations (``_META_CONSTRUCTORS``) that name no device are
    made on the meta device."""

    def __init__(self, meta: bool = False) -> None:
        super().__init__()
        self.meta = torch.device("meta") if meta else None
        self.storages: dict[int, History] = {}
        self._codes = _init_codes()
        self._inside: Any = None  # the frame of the torch.nn.init call being recorded
        self._pending: tuple[str, dict[str, Any], torch.Tensor] | None = None
        self._previous_profile: Any = None
        self._hook = self._profile  # one bound method, compared by identity
        self._lost_profile = False
        self.errors: list[str] = []

    # The profile hook ------------------------------------------------------------------

    def _profile(self, frame: types.FrameType, event: str, arg: Any) -> None:
        # An exception here would make Python drop the hook silently: report it instead.
        try:
            self._on_event(frame, event, arg)
        except Exception as exc:
            self.errors.append(f"recording a torch.nn.init call: {type(exc).__name__}: {exc}")
        if self._previous_profile is not None:
            try:
                self._previous_profile(frame, event, arg)
            except Exception as exc:
                self.errors.append(f"the profile function set before capture: {exc}")
                self._previous_profile = None

    def _on_event(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call" and self._inside is None:
            name = self._codes.get(frame.f_code)
            if name is not None:
                local = frame.f_locals
                tensor = local.get("tensor")
                if isinstance(tensor, torch.Tensor):
                    args = {k: local[k] for k in _INIT_ARGS[name][1] if k in local}
                    self._inside = frame
                    self._pending = (name, args, tensor)
        elif event == "return" and frame is self._inside:
            self._inside = None
            pending, self._pending = self._pending, None
            if pending is not None and arg is not None:  # None: it raised
                name, args, tensor = pending
                value = init_call_value(name, args, tuple(tensor.shape))
                self._write(tensor, value, f"torch.nn.init.{name}({_fmt(args)})")

    def __enter__(self) -> Recorder:
        self._previous_profile = sys.getprofile()
        sys.setprofile(self._hook)
        super().__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)  # type: ignore[no-untyped-call]
        finally:
            if self._lost_profile or sys.getprofile() is not self._hook:
                self.errors.append(
                    "the build replaced capture's profile function: torch.nn.init calls after "
                    "that were recorded as the tensor ops inside them (literal values)"
                )
            sys.setprofile(self._previous_profile)

    # History -------------------------------------------------------------------------------

    def history(self, t: torch.Tensor) -> History | None:
        key = _key(t)
        return None if key is None else self.storages.get(key)

    def value_of(self, t: torch.Tensor) -> Value:
        """The value of tensor ``t`` as recorded: its storage's, when ``t`` covers it and no
        part was written differently; else inexpressible (saying why)."""
        h = self.history(t)
        if h is None:
            return Inexpressible("values made outside what capture sees")
        if not _covers(t):
            if h.partial:
                return Inexpressible("a slice of a tensor written in parts")
            return _slice_of(h.base)
        if h.partial:
            return Inexpressible("copied from a tensor written in parts")
        return h.base

    def _new(self, t: torch.Tensor, value: Value, call: str) -> None:
        key = _key(t)
        if key is not None:
            self.storages[key] = History(value, [], [call] if call else [])

    def _write(self, t: torch.Tensor, value: Value | Callable[[Value], Value], call: str) -> None:
        key = _key(t)
        if key is None:
            return
        h = self.storages.get(key)
        if h is None:
            h = self.storages[key] = History(Inexpressible("written before capture saw it made"))
        h.calls.append(call)
        if _covers(t):
            if callable(value):
                h.base = value(h.base)
                h.partial = [
                    (r, value(v) if not callable(v) else _compose(v, value)) for r, v in h.partial
                ]
            else:
                h.base, h.partial = value, []
        else:
            h.partial.append((_region(t), value))

    # The mode ----------------------------------------------------------------------------

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if self.meta is not None and func in _META_CONSTRUCTORS and kwargs.get("device") is None:
            kwargs["device"] = self.meta
        out = func(*args, **kwargs)
        if self._inside is None:
            if not self._lost_profile and sys.getprofile() is not self._hook:
                self._lost_profile = True  # the build set its own (for a while, maybe)
            try:
                if getattr(func, "__module__", "") == "torch.nn.init":
                    self._init_via_mode(func.__name__, args, kwargs)
                else:
                    self._observe(_func_name(func), args, kwargs, out)
            except Exception as exc:  # never break the user's build; report it
                self.errors.append(f"{_func_name(func)}: {type(exc).__name__}: {exc}")
        return out

    def _init_via_mode(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A ``torch.nn.init`` function that dispatches through ``__torch_function__``
        (``uniform_``, ``normal_``, ``constant_``, ``kaiming_uniform_``) seen here, not by the
        profile hook (which the build replaced): recorded from its keyword arguments."""
        tensor = kwargs.get("tensor", args[0] if args else None)
        if name in _INIT_ARGS and isinstance(tensor, torch.Tensor):
            given = {k: kwargs[k] for k in _INIT_ARGS[name][1] if k in kwargs}
            value = init_call_value(name, given, tuple(tensor.shape))
            self._write(tensor, value, f"torch.nn.init.{name}({_fmt(given)})")

    def _observe(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        target = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if "." in name:
            return  # an attribute (.data, .shape, .grad_fn): values unchanged; p.data = t
            # makes p's storage t's, whose history is t's
        if "out" in kwargs and isinstance(kwargs["out"], torch.Tensor):
            value = self._result(name, args[1:] if target is not None else args, kwargs, None, out)
            self._write(kwargs["out"], value, f"torch.{name}(out=...)")
            return
        if name == "__setitem__" and target is not None and len(args) >= 3:
            region = target[args[1]]
            if _key(region) != _key(target):  # advanced indexing: t[mask] is a copy
                self._write(
                    target, _opaque("an assignment through a tensor index"), "[tensor] = ..."
                )
                return
            src = args[2]
            num = _num(src)
            value = (
                constant(num)
                if num is not None
                else self.value_of(src)
                if isinstance(src, torch.Tensor)
                else Inexpressible("assigned from a Python sequence")
            )
            self._write(
                region, value, f"[{_index_text(args[1])}] = {num if num is not None else 'tensor'}"
            )
            return
        if name in _AUGMENTED and target is not None:  # x *= c
            name = _AUGMENTED[name]
        if (
            target is not None
            and name.endswith("_")
            and not name.startswith("_")
            and name not in _NO_WRITE
        ):
            self._inplace(name, target, args[1:], kwargs)
            return
        if isinstance(out, torch.Tensor):
            key = _key(out)
            if key is None or any(isinstance(a, torch.Tensor) and _key(a) == key for a in args):
                return  # a view or an alias: same storage, same history
            value = self._result(name, args, kwargs, target, out)
            self._new(out, value, _call_text(name, args, kwargs))

    def _inplace(
        self, name: str, t: torch.Tensor, rest: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        call = f".{name}({_args_text(rest, kwargs)})"
        if name == "normal_":
            mean, std = (
                _num(_arg(rest, kwargs, 0, "mean", 0.0)),
                _num(_arg(rest, kwargs, 1, "std", 1.0)),
            )
            value: Value | Callable[[Value], Value] = (
                _drawn("normal", mean=mean, std=std)
                if mean is not None and std is not None
                else Inexpressible("normal_ with tensor arguments")
            )
        elif name == "uniform_":
            lo, hi = (
                _num(_arg(rest, kwargs, 0, "from", 0.0)),
                _num(_arg(rest, kwargs, 1, "to", 1.0)),
            )
            value = (
                _drawn("uniform", low=lo, high=hi)
                if lo is not None and hi is not None
                else Inexpressible("uniform_ with tensor arguments")
            )
        elif name == "fill_":
            v = _arg(rest, kwargs, 0, "value", None)
            num = _num(v)
            if num is None and isinstance(v, torch.Tensor):
                value = (
                    self.value_of(v)
                    if const_value(self.value_of(v)) is not None
                    else Inexpressible("fill_ with a computed tensor")
                )
            else:
                value = (
                    constant(num)
                    if num is not None
                    else Inexpressible("fill_ with an unknown value")
                )
        elif name == "zero_":
            value = constant(0.0)
        elif name == "copy_":
            src = _arg(rest, kwargs, 0, "src", None)
            value = (
                self.value_of(src)
                if isinstance(src, torch.Tensor)
                else Inexpressible("copy_ of a non-tensor")
            )
            if isinstance(value, Drawn) and value.global_rng:
                call += " [a global-RNG draw]"
        elif name in ("mul_", "div_", "add_", "sub_"):
            other = _arg(rest, kwargs, 0, "other", None)
            c = _num(other)
            if c is None and isinstance(other, torch.Tensor):
                c = const_value(self.value_of(other)) if other.dim() == 0 else None
            if c is None:
                value = _opaque(f"{name} by a tensor")
            elif name == "mul_":
                value = lambda v, c=c: scale(v, c)  # noqa: E731
            elif name == "div_":
                value = (lambda v, c=c: scale(v, 1.0 / c)) if c != 0 else _opaque("div_ by 0")
            else:
                alpha = _num(kwargs.get("alpha", 1.0)) or 1.0
                sign = 1.0 if name == "add_" else -1.0
                value = lambda v, c=c * alpha * sign: shift(v, c)  # noqa: E731
        elif name in ("clamp_", "clip_", "clamp_min_", "clamp_max_"):
            if name == "clamp_min_":
                lo, hi = _num(_arg(rest, kwargs, 0, "min", None)), None
            elif name == "clamp_max_":
                lo, hi = None, _num(_arg(rest, kwargs, 0, "max", None))
            else:
                lo, hi = (
                    _num(_arg(rest, kwargs, 0, "min", None)),
                    _num(_arg(rest, kwargs, 1, "max", None)),
                )
            value = lambda v, lo=lo, hi=hi: clamp(v, lo, hi)  # noqa: E731
        elif name == "erfinv_":
            value = apply_erfinv
        elif name == "neg_":
            value = lambda v: scale(v, -1.0)  # noqa: E731
        elif name in (
            "bernoulli_",
            "exponential_",
            "cauchy_",
            "log_normal_",
            "geometric_",
            "random_",
        ):
            value = _opaque(f"{name} draws a distribution outside the catalog")
        else:
            value = _opaque(f"{name} (outside what capture interprets)")
        self._write(t, value, call)

    def _result(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        target: torch.Tensor | None,
        out: torch.Tensor,
    ) -> Value:
        """The value of a new tensor made by op ``name``."""
        shape = tuple(out.shape)
        if name in ("randn", "randn_like"):
            return Drawn(Normal(), 1.0, shape, "torch", global_rng=True)
        if name in ("rand", "rand_like"):
            return Drawn(Uniform(), 1.0, shape, "torch", global_rng=True)
        if name == "normal" and not any(isinstance(a, torch.Tensor) for a in args[:2]):
            mean, std = (
                _num(_arg(args, kwargs, 0, "mean", 0.0)),
                _num(_arg(args, kwargs, 1, "std", 1.0)),
            )
            if mean is not None and std is not None and std > 0:
                return Drawn(Normal(mean=mean, std=std), 1.0, shape, "torch", global_rng=True)
        if name in ("zeros", "zeros_like", "new_zeros"):
            return constant(0.0)
        if name in ("ones", "ones_like", "new_ones"):
            return constant(1.0)
        if name in ("full", "full_like", "new_full"):
            fill = _num(
                _arg(
                    args,
                    kwargs,
                    2 if name == "full_like" or name == "new_full" else 1,
                    "fill_value",
                    None,
                )
            )
            if name == "full_like":
                fill = _num(_arg(args, kwargs, 1, "fill_value", None))
            return (
                constant(fill)
                if fill is not None
                else Inexpressible(f"{name} with a computed value")
            )
        if name in ("tensor", "as_tensor", "scalar_tensor", "asarray") and args:
            data = _num(args[0])
            if data is None and isinstance(args[0], (list, tuple)) and args[0]:
                nums = [_num(x) for x in args[0]]
                data = nums[0] if all(n is not None and n == nums[0] for n in nums) else None
            if data is not None:
                return constant(data)
            return Inexpressible(f"values given as data (torch.{name})")
        if name in ("empty", "empty_like", "new_empty", "empty_strided"):
            return UNINITIALIZED
        if name == "eye" and out.dim() == 2:
            return Drawn(Eye(), 1.0, shape, "torch")
        if target is not None and name in _SAME_VALUES:
            return self.value_of(target)
        if name == "pad" and target is not None and len(args) > 1:
            # HF's tie step: bias.data = pad(bias.data, (0, n), "constant", 0), n often 0.
            widths = [int(w) for w in args[1]] if isinstance(args[1], (list, tuple)) else None
            mode = _arg(args, kwargs, 2, "mode", "constant")
            fill = _num(_arg(args, kwargs, 3, "value", None)) or 0.0
            v = self.value_of(target)
            if widths is not None and not any(widths):
                return v
            if mode == "constant" and const_value(v) == fill:
                return v
        if target is not None or (
            args
            and isinstance(args[0], (int, float))
            and len(args) > 1
            and isinstance(args[1], torch.Tensor)
        ):
            tensor, other = (
                (target, args[1] if len(args) > 1 else None)
                if target is not None
                else (args[1], args[0])
            )
            c = _num(other)
            if c is not None and isinstance(tensor, torch.Tensor):
                v = self.value_of(tensor)
                if name in ("mul", "__mul__", "__rmul__", "multiply"):
                    return scale(v, c)
                if (
                    name in ("div", "__truediv__", "true_divide", "divide")
                    and c != 0
                    and target is tensor
                ):
                    return scale(v, 1.0 / c)
                if name in ("add", "__add__", "__radd__"):
                    return shift(v, c * (_num(kwargs.get("alpha", 1.0)) or 1.0))
                if name in ("sub", "__sub__") and target is tensor:
                    return shift(v, -c)
                if name == "__rsub__":
                    return shift(scale(v, -1.0), c)
            if name in ("neg", "__neg__"):
                return scale(self.value_of(target), -1.0) if target is not None else _computed(name)
        inputs = [a for a in args if isinstance(a, torch.Tensor)]
        for a in args:  # torch.cat([...]), torch.stack([...])
            if isinstance(a, (list, tuple)):
                inputs += [x for x in a if isinstance(x, torch.Tensor)]
        return _computed(name, *(self.value_of(a) for a in inputs))


def _slice_of(v: Value) -> Value:
    """The value of part of a tensor whose whole has value ``v``: the same for a constant or
    an elementwise distribution; a fan-based draw as its plan on the whole tensor, written
    literally (the slice's own fans are not the ones it was drawn with); a structural one
    (orthogonal, eye, dirac, sparse) has no catalog value on a part."""
    if isinstance(v, Inexpressible):
        return v
    if isinstance(v.spec, _ELEMENTWISE):
        return v
    try:
        plan = plan_of(v, v.shape, v.layout)
    except InitSpecError:
        plan = None
    spec = literal_spec(plan) if plan is not None else None
    if spec is None:
        return Inexpressible(f"a slice of {v.describe()}")
    return Drawn(spec, 1.0, (), "torch", v.global_rng)


def _compose(
    first: Callable[[Value], Value], then: Callable[[Value], Value]
) -> Callable[[Value], Value]:
    return lambda v: then(first(v))


def _opaque(reason: str) -> Callable[[Value], Value]:
    return lambda v: Inexpressible(reason)


def _degenerate(kind: str, fields: dict[str, Any]) -> Value | None:
    """normal with std 0 (its mean) or uniform on [a, a] (a): a constant, which the
    catalog's normal and uniform (std > 0, low < high) do not take."""
    if kind == "normal" and fields.get("std") == 0.0:
        return constant(float(fields.get("mean", 0.0)))
    if kind == "uniform" and "low" in fields and fields.get("low") == fields.get("high"):
        return constant(float(fields["low"]))
    return None


def _drawn(kind: str, **fields: float | None) -> Value:
    degenerate = _degenerate(kind, dict(fields))
    if degenerate is not None:
        return degenerate
    try:
        return Drawn(parse({"kind": kind, **fields}))
    except InitSpecError as exc:
        return Inexpressible(f"{kind}_({_fmt(dict(fields))}) is outside the catalog: {exc}")


def _computed(name: str, *inputs: Value) -> Value:
    """A tensor computed by op ``name`` from ``inputs``: inexpressible, saying which ops made it."""
    ops: list[str] = []
    for v in inputs:
        head, sep, listed = (
            v.reason.partition("values computed by ")
            if isinstance(v, Inexpressible)
            else ("", "", "")
        )
        if sep:
            ops += [o for o in listed.split(", ") if o not in ops]
    if name not in ops:
        ops.append(name)
    if len(ops) > 6:
        ops = [*ops[:5], "..."]
    table = "sinusoidal table: " if {"sin", "cos"} & set(ops) else ""
    return Inexpressible(f"{table}values computed by " + ", ".join(ops))


def _index_text(index: Any) -> str:
    if isinstance(index, tuple):
        return ", ".join(_index_text(i) for i in index)
    if isinstance(index, slice):
        return f"{'' if index.start is None else index.start}:{'' if index.stop is None else index.stop}"
    if isinstance(index, int):
        return str(index)
    return type(index).__name__


def _args_text(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = []
    for a in args:
        n = _num(a)
        parts.append(
            f"{n:.6g}"
            if n is not None
            else "tensor"
            if isinstance(a, torch.Tensor)
            else type(a).__name__
        )
    for k, a in kwargs.items():
        n = _num(a)
        if n is not None:
            parts.append(f"{k}={n:.6g}")
    return ", ".join(parts)


def _call_text(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if name in ("randn", "rand", "randn_like", "rand_like", "normal"):
        return f"torch.{name} (global RNG)"
    return f"torch.{name}"


__all__ = ["History", "Recorder", "init_call_value"]
