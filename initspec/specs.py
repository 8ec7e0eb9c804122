"""The spec catalog: one pydantic model per initializer kind, discriminated by ``"kind"``.

A spec is framework-free and shape-free; ``spec.plan(shape, layout)`` resolves it. Every
field has a default (torch's where torch has the function, else jax's or keras's), so
``{"kind": "normal"}`` is valid, and the canonical JSON form writes every field.

Where frameworks give one name different meanings the catalog keeps distinct kinds:
``xavier_normal`` / ``kaiming_normal`` are torch's (untruncated normal), ``glorot_normal`` /
``he_normal`` / ``lecun_normal`` are jax's and keras's (normal truncated at 2 sigma, std
divided by 0.87962566103423978 so the std after truncation is the target).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from initspec.errors import InitSpecError, ShapeError, SpecError
from initspec.gain import calculate_gain
from initspec.layout import LayoutLike, canonical_perm, fans, resolve_axes
from initspec.plans import (
    ConstantPlan,
    DiracPlan,
    IdentityPlan,
    NormalPlan,
    OrthogonalPlan,
    Plan,
    SparsePlan,
    TruncatedNormalPlan,
    UniformPlan,
)

# Std of N(0, 1) truncated to (-2, 2): sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)), as jax and keras.
TRUNC_STD_2SIGMA = 0.87962566103423978

Shape = tuple[int, ...]
# Spec numbers are bounded so that every variance (a square) stays a finite float64: no
# initializer needs a value beyond 1e150, and an overflow in a plan's moments would
# otherwise surface as a bare OverflowError.
MAX_MAGNITUDE = 1e150
Finite = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
Positive = Annotated[float, Field(gt=0, le=MAX_MAGNITUDE)]
Mode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
TorchMode = Literal["fan_in", "fan_out"]
Distribution = Literal["normal", "truncated_normal", "uniform"]
Nonlinearity = Literal[
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]


@dataclass(frozen=True)
class PlanContext:
    """What a spec may need from the layer that owns the parameter; adapters fill it in.

    ``weight_fans``: (fan_in, fan_out) of the layer's weight, for ``torch_linear_bias``.
    ``hidden_size``: the RNN's hidden size, for ``torch_rnn``.
    ``padding_idx``: an embedding's padding row, zeroed by rules with ``zero_padding_row``.
    """

    weight_fans: tuple[int, int] | None = None
    hidden_size: int | None = None
    padding_idx: int | None = None


def _shape(shape: Shape) -> Shape:
    try:
        out = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ShapeError(f"shape must be a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in out):
        raise ShapeError(f"shape {out} has a negative dimension")
    return out


def fan_for(mode: str, fan_in: int, fan_out: int) -> float:
    """The fan a mode selects; 0 (only possible for an empty shape) is clamped to 1."""
    if mode == "fan_in":
        n: float = fan_in
    elif mode == "fan_out":
        n = fan_out
    elif mode == "fan_avg":
        n = (fan_in + fan_out) / 2.0
    else:
        n = math.sqrt(fan_in * fan_out)
    return n if n > 0 else 1.0


def scaled_plan(distribution: str, std: float, shape: Shape, fan: tuple[int, int]) -> Plan:
    """A zero-mean plan with exactly ``std``: normal, uniform(+-sqrt(3) std), or 2-sigma TN."""
    if distribution == "normal":
        return NormalPlan(shape, 0.0, std, fans=fan)
    if distribution == "uniform":
        bound = math.sqrt(3.0) * std
        return UniformPlan(shape, -bound, bound, fans=fan)
    sigma = std / TRUNC_STD_2SIGMA
    return TruncatedNormalPlan(shape, 0.0, sigma, -2.0 * sigma, 2.0 * sigma, fans=fan)


def _high_above_low(cls: type, high: float, info: ValidationInfo) -> float:
    low = info.data.get("low")
    if low is not None and not low < high:
        raise ValueError(f"must be > low ({low})")
    return high


class SpecBase(BaseModel):
    """Common configuration: frozen, no unknown fields, strict types, finite numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    fan_based: ClassVar[bool] = False
    # Declared here so that ``kind`` comes first in the canonical JSON; each kind narrows it.
    kind: str

    def plan(
        self, shape: Shape, layout: LayoutLike = "torch", context: PlanContext | None = None
    ) -> Plan:
        """Resolve against a concrete shape and layout (see ``initspec.plans``)."""
        shape = _shape(shape)
        try:
            return self._plan(shape, layout, context or PlanContext())
        except ShapeError as exc:
            raise ShapeError(f"{self.kind_name()}: {exc}") from None

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        raise NotImplementedError

    def to_keras(self) -> dict[str, Any]:
        """The Keras 3 initializer config with exactly these semantics (see ``initspec.keras``)."""
        from initspec.keras import to_keras

        return to_keras(self)

    def kind_name(self) -> str:
        return str(self.kind)


# Constants ------------------------------------------------------------------------------


class Zeros(SpecBase):
    """All zeros (``torch.nn.init.zeros_``, ``jax.nn.initializers.zeros``)."""

    kind: Literal["zeros"] = "zeros"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return ConstantPlan(shape, 0.0)


class Ones(SpecBase):
    """All ones (``torch.nn.init.ones_``, ``jax.nn.initializers.ones``)."""

    kind: Literal["ones"] = "ones"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return ConstantPlan(shape, 1.0)


class Constant(SpecBase):
    """Every element ``value`` (``torch.nn.init.constant_``; keras ``Constant`` default 0)."""

    kind: Literal["constant"] = "constant"
    value: Finite = 0.0

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return ConstantPlan(shape, self.value)


# Plain distributions --------------------------------------------------------------------


class Uniform(SpecBase):
    """U[low, high) (``torch.nn.init.uniform_(a=0, b=1)``). jax's ``uniform(scale)`` is U[0, scale)."""

    kind: Literal["uniform"] = "uniform"
    low: Finite = 0.0
    high: Finite = 1.0

    _order = field_validator("high")(_high_above_low)

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return UniformPlan(shape, self.low, self.high)


class Normal(SpecBase):
    """N(mean, std**2), untruncated (``torch.nn.init.normal_(mean=0, std=1)``)."""

    kind: Literal["normal"] = "normal"
    mean: Finite = 0.0
    std: Positive = 1.0

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return NormalPlan(shape, self.mean, self.std)


class TruncatedNormal(SpecBase):
    """N(mean, std**2) restricted to [low, high], with no variance correction.

    ``bounds="absolute"`` (default): low and high are values, as torch's ``trunc_normal_``
    (a=-2, b=2; with std=0.02 that is +-100 sigma, in effect untruncated).
    ``bounds="std"``: the cut-offs are ``mean + low*std`` and ``mean + high*std``, as jax's
    ``truncated_normal(lower, upper)``, keras ``TruncatedNormal`` and timm ``trunc_normal_tf_``.
    The resulting std is smaller than ``std`` (0.8796 std for +-2 sigma).
    """

    kind: Literal["truncated_normal"] = "truncated_normal"
    mean: Finite = 0.0
    std: Positive = 1.0
    low: Finite = -2.0
    high: Finite = 2.0
    bounds: Literal["absolute", "std"] = "absolute"

    _order = field_validator("high")(_high_above_low)

    def absolute_bounds(self) -> tuple[float, float]:
        if self.bounds == "absolute":
            return self.low, self.high
        return self.mean + self.low * self.std, self.mean + self.high * self.std

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        low, high = self.absolute_bounds()
        return TruncatedNormalPlan(shape, self.mean, self.std, low, high)


# Fan-based: jax / keras semantics -------------------------------------------------------


class _FanBased(SpecBase):
    fan_based: ClassVar[bool] = True

    def _fans(self, shape: Shape, layout: LayoutLike) -> tuple[int, int]:
        return fans(shape, layout)


class VarianceScaling(_FanBased):
    """``jax.nn.initializers.variance_scaling``: var = scale / n.

    n is fan_in, fan_out, (fan_in + fan_out) / 2 or sqrt(fan_in * fan_out). ``normal`` is
    untruncated; ``truncated_normal`` is cut at +-2 sigma with sigma = sqrt(var) / 0.8796...
    (so the std after truncation is sqrt(var)); ``uniform`` is U(+-sqrt(3 var)). Keras's
    ``"normal"`` means truncated: read Keras configs with ``from_keras``.
    """

    kind: Literal["variance_scaling"] = "variance_scaling"
    scale: Positive = 1.0
    mode: Mode = "fan_in"
    distribution: Distribution = "truncated_normal"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        fi, fo = self._fans(shape, layout)
        std = math.sqrt(self.scale / fan_for(self.mode, fi, fo))
        return scaled_plan(self.distribution, std, shape, (fi, fo))


class FanTruncatedNormal(_FanBased):
    """N(0, scale / fan) cut at +-cutoff std, with no variance correction by default.

    torchtitan's output layer: ``trunc_normal_(w, std=dim**-0.5, a=-3*std, b=3*std)`` is
    ``{"kind": "fan_truncated_normal", "mode": "fan_in", "cutoff": 3}``. With
    ``correct_variance`` the std is divided by the truncated std first, so the std after
    truncation is sqrt(scale / fan) (cutoff 2 is then jax's ``variance_scaling``).
    """

    kind: Literal["fan_truncated_normal"] = "fan_truncated_normal"
    scale: Positive = 1.0
    mode: Mode = "fan_in"
    cutoff: Positive = 2.0
    correct_variance: bool = False

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        fi, fo = self._fans(shape, layout)
        std = math.sqrt(self.scale / fan_for(self.mode, fi, fo))
        unit = TruncatedNormalPlan((), 0.0, 1.0, -self.cutoff, self.cutoff)
        sigma = std / unit.std if self.correct_variance else std
        c = self.cutoff * sigma
        return TruncatedNormalPlan(shape, 0.0, sigma, -c, c, fans=(fi, fo))


class _NamedScaling(_FanBased):
    """A fixed ``variance_scaling`` (jax / keras named initializers)."""

    _scale: ClassVar[float]
    _mode: ClassVar[str]
    _distribution: ClassVar[str]

    def as_variance_scaling(self) -> VarianceScaling:
        return VarianceScaling.model_validate(
            {"scale": self._scale, "mode": self._mode, "distribution": self._distribution}
        )

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return self.as_variance_scaling()._plan(shape, layout, context)


class GlorotUniform(_NamedScaling):
    """jax ``glorot_uniform`` / keras ``GlorotUniform``: U(+-sqrt(6 / (fan_in + fan_out)))."""

    kind: Literal["glorot_uniform"] = "glorot_uniform"
    _scale, _mode, _distribution = 1.0, "fan_avg", "uniform"


class GlorotNormal(_NamedScaling):
    """jax ``glorot_normal`` / keras ``GlorotNormal``: 2-sigma TN with std sqrt(2 / (fan_in + fan_out))."""

    kind: Literal["glorot_normal"] = "glorot_normal"
    _scale, _mode, _distribution = 1.0, "fan_avg", "truncated_normal"


class HeUniform(_NamedScaling):
    """jax ``he_uniform`` / keras ``HeUniform``: U(+-sqrt(6 / fan_in))."""

    kind: Literal["he_uniform"] = "he_uniform"
    _scale, _mode, _distribution = 2.0, "fan_in", "uniform"


class HeNormal(_NamedScaling):
    """jax ``he_normal`` / keras ``HeNormal``: 2-sigma TN with std sqrt(2 / fan_in)."""

    kind: Literal["he_normal"] = "he_normal"
    _scale, _mode, _distribution = 2.0, "fan_in", "truncated_normal"


class LecunUniform(_NamedScaling):
    """jax ``lecun_uniform`` / keras ``LecunUniform``: U(+-sqrt(3 / fan_in))."""

    kind: Literal["lecun_uniform"] = "lecun_uniform"
    _scale, _mode, _distribution = 1.0, "fan_in", "uniform"


class LecunNormal(_NamedScaling):
    """jax ``lecun_normal`` (Flax's default kernel init): 2-sigma TN with std 1 / sqrt(fan_in)."""

    kind: Literal["lecun_normal"] = "lecun_normal"
    _scale, _mode, _distribution = 1.0, "fan_in", "truncated_normal"


# Fan-based: torch semantics -------------------------------------------------------------


class XavierUniform(_FanBased):
    """``torch.nn.init.xavier_uniform_``: bound = gain * sqrt(6 / (fan_in + fan_out))."""

    kind: Literal["xavier_uniform"] = "xavier_uniform"
    gain: Positive = 1.0

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        fi, fo = self._fans(shape, layout)
        std = self.gain * math.sqrt(2.0 / float(max(fi + fo, 1)))
        bound = math.sqrt(3.0) * std
        return UniformPlan(shape, -bound, bound, fans=(fi, fo))


class XavierNormal(_FanBased):
    """``torch.nn.init.xavier_normal_``: N(0, gain**2 * 2 / (fan_in + fan_out)), untruncated."""

    kind: Literal["xavier_normal"] = "xavier_normal"
    gain: Positive = 1.0

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        fi, fo = self._fans(shape, layout)
        std = self.gain * math.sqrt(2.0 / float(max(fi + fo, 1)))
        return NormalPlan(shape, 0.0, std, fans=(fi, fo))


class _Kaiming(_FanBased):
    a: Finite = 0.0
    mode: TorchMode = "fan_in"
    nonlinearity: Nonlinearity = "leaky_relu"

    def _std(self, shape: Shape, layout: LayoutLike) -> tuple[float, tuple[int, int]]:
        fi, fo = self._fans(shape, layout)
        gain = calculate_gain(self.nonlinearity, self.a)
        return gain / math.sqrt(fan_for(self.mode, fi, fo)), (fi, fo)


class KaimingUniform(_Kaiming):
    """``torch.nn.init.kaiming_uniform_``: bound = sqrt(3) * calculate_gain(nonlinearity, a) / sqrt(fan)."""

    kind: Literal["kaiming_uniform"] = "kaiming_uniform"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        std, f = self._std(shape, layout)
        bound = math.sqrt(3.0) * std
        return UniformPlan(shape, -bound, bound, fans=f)


class KaimingNormal(_Kaiming):
    """``torch.nn.init.kaiming_normal_``: N(0, (calculate_gain(nonlinearity, a) / sqrt(fan))**2), untruncated."""

    kind: Literal["kaiming_normal"] = "kaiming_normal"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        std, f = self._std(shape, layout)
        return NormalPlan(shape, 0.0, std, fans=f)


class TorchLinearWeight(_FanBased):
    """PyTorch's Linear/Conv ``reset_parameters``: ``kaiming_uniform_(w, a=sqrt(5))``.

    gain = sqrt(2 / (1 + 5)) = sqrt(1/3), bound = sqrt(3) * gain / sqrt(fan) = 1 / sqrt(fan).
    ConvTranspose weights, read with the ``torch_transposed`` layout, use ``mode="fan_out"``
    to reproduce torch (which reads their dim 1, the output channels, as fan_in).
    """

    kind: Literal["torch_linear_weight"] = "torch_linear_weight"
    mode: TorchMode = "fan_in"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return KaimingUniform(a=math.sqrt(5.0), mode=self.mode)._plan(shape, layout, context)


class TorchLinearBias(SpecBase):
    """PyTorch's Linear/Conv bias: U(+-1 / sqrt(fan)) with the fan of the layer's *weight*.

    bound = 0 when that fan is 0, as torch. Needs ``PlanContext.weight_fans``.
    """

    kind: Literal["torch_linear_bias"] = "torch_linear_bias"
    mode: TorchMode = "fan_in"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        if context.weight_fans is None:
            raise InitSpecError(
                "torch_linear_bias needs the fans of the layer's weight: pass "
                "context=PlanContext(weight_fans=(fan_in, fan_out)); the adapters do this"
            )
        fan = context.weight_fans[0 if self.mode == "fan_in" else 1]
        if fan <= 0:
            return ConstantPlan(shape, 0.0, fans=context.weight_fans)
        bound = 1 / math.sqrt(fan)
        return UniformPlan(shape, -bound, bound, fans=context.weight_fans)


class TorchRnn(SpecBase):
    """PyTorch's RNN/LSTM/GRU ``reset_parameters``: every parameter U(+-1 / sqrt(hidden_size)).

    Needs ``PlanContext.hidden_size``.
    """

    kind: Literal["torch_rnn"] = "torch_rnn"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        if not context.hidden_size:
            raise InitSpecError(
                "torch_rnn needs the RNN's hidden size: pass "
                "context=PlanContext(hidden_size=...); the adapters do this"
            )
        bound = 1.0 / math.sqrt(context.hidden_size)
        return UniformPlan(shape, -bound, bound)


# Structural -----------------------------------------------------------------------------


def _need_ndim(shape: Shape, allowed: tuple[int, ...], what: str) -> None:
    if len(shape) not in allowed:
        dims = " or ".join(str(d) for d in allowed)
        raise ShapeError(f"{what} needs a {dims}-D shape, got {shape} ({len(shape)}-D)")


def _conv_axes(shape: Shape, layout: LayoutLike, what: str) -> tuple[Shape, tuple[int, ...]]:
    _need_ndim(shape, (3, 4, 5), what)
    ax = resolve_axes(shape, layout)
    if len(ax.in_axes) != 1 or len(ax.out_axes) != 1 or ax.batch_axes:
        raise ShapeError(f"{what} needs exactly one in axis and one out axis, no batch axes")
    perm = canonical_perm(shape, layout)
    return tuple(shape[a] for a in perm), perm


class Orthogonal(_FanBased):
    """``torch.nn.init.orthogonal_`` (gain) / jax ``orthogonal`` (scale) / keras ``Orthogonal``.

    The out axes form the rows, everything else the columns (torch: rows = size(0)); the
    (rows, cols) matrix has orthonormal rows or columns, whichever are fewer, times gain.
    Built in float64 and cast once, so bfloat16 and float16 work.
    """

    kind: Literal["orthogonal"] = "orthogonal"
    gain: Positive = 1.0

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        if len(shape) < 2:
            raise ShapeError(f"orthogonal needs at least 2 dims, got {shape}")
        perm = canonical_perm(shape, layout)
        ax = resolve_axes(shape, layout)
        rows = math.prod(shape[a] for a in ax.out_axes)
        cols = math.prod(shape[a] for a in perm[len(ax.out_axes) :])
        return OrthogonalPlan(
            shape, canonical_shape=(rows, cols), perm=perm, gain=self.gain, fans=fans(shape, layout)
        )


class DeltaOrthogonal(_FanBased):
    """jax ``delta_orthogonal(scale)``: an orthogonal (out, in) matrix at the kernel centre.

    3-, 4- or 5-D conv kernels with in <= out; the centre is ``(k - 1) // 2`` per spatial dim,
    as jax (torch's ``dirac_`` uses ``k // 2``: they differ for even kernels).
    """

    kind: Literal["delta_orthogonal"] = "delta_orthogonal"
    scale: Positive = 1.0

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        canon, perm = _conv_axes(shape, layout, "delta_orthogonal")
        if canon[1] > canon[0]:
            raise ShapeError(
                f"delta_orthogonal needs in <= out (fan_in must be less or equal than "
                f"fan_out), got in={canon[1]} out={canon[0]} for shape {shape}"
            )
        center = tuple((k - 1) // 2 for k in canon[2:])
        return DiracPlan(
            shape,
            canonical_shape=canon,
            perm=perm,
            gain=self.scale,
            groups=1,
            matrix="orthogonal",
            center=center,
        )


class Eye(SpecBase):
    """``torch.nn.init.eye_`` / keras ``Identity(gain)``: gain * eye(rows, cols), 2-D only."""

    kind: Literal["eye"] = "eye"
    gain: Positive = 1.0

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        _need_ndim(shape, (2,), "eye")
        return IdentityPlan(shape, self.gain)


class Dirac(SpecBase):
    """``torch.nn.init.dirac_(groups)``: a conv kernel that passes its input through.

    Canonical (out, in, *k): ``w[g*out_per_group + d, d, *(k // 2)] = 1`` for
    d < min(out / groups, in). Out channels must be divisible by groups.
    """

    kind: Literal["dirac"] = "dirac"
    groups: Annotated[int, Field(ge=1)] = 1

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        canon, perm = _conv_axes(shape, layout, "dirac")
        if canon[0] % self.groups:
            raise ShapeError(
                f"dirac: out channels ({canon[0]}) of shape {shape} must be divisible by "
                f"groups ({self.groups})"
            )
        center = tuple(k // 2 for k in canon[2:])
        return DiracPlan(
            shape,
            canonical_shape=canon,
            perm=perm,
            gain=1.0,
            groups=self.groups,
            matrix="identity",
            center=center,
        )


class Sparse(SpecBase):
    """``torch.nn.init.sparse_(sparsity, std=0.01)``: N(0, std**2) with ceil(sparsity * rows)
    zeros in every column. 2-D only; rows are the out axis. torch has no default sparsity;
    ours is 0.1, the value of its documentation's example.
    """

    kind: Literal["sparse"] = "sparse"
    sparsity: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    std: Positive = 0.01

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        _need_ndim(shape, (2,), "sparse")
        perm = canonical_perm(shape, layout)
        canon = tuple(shape[a] for a in perm)
        return SparsePlan(
            shape, canonical_shape=canon, perm=perm, sparsity=self.sparsity, sigma=self.std
        )


Spec = Annotated[
    Zeros
    | Ones
    | Constant
    | Uniform
    | Normal
    | TruncatedNormal
    | VarianceScaling
    | FanTruncatedNormal
    | GlorotUniform
    | GlorotNormal
    | HeUniform
    | HeNormal
    | LecunUniform
    | LecunNormal
    | XavierUniform
    | XavierNormal
    | KaimingUniform
    | KaimingNormal
    | TorchLinearWeight
    | TorchLinearBias
    | TorchRnn
    | Orthogonal
    | DeltaOrthogonal
    | Eye
    | Dirac
    | Sparse,
    Field(discriminator="kind"),
]

SPEC_CLASSES: dict[str, type[SpecBase]] = {
    cls.model_fields["kind"].default: cls for cls in get_args(get_args(Spec)[0])
}
__all__ = ["Spec", "SpecBase", "SPEC_CLASSES", "PlanContext", "SpecError", "TRUNC_STD_2SIGMA"]
