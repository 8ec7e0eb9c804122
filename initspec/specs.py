"""The spec catalog: one pydantic model per initializer kind, discriminated by ``"kind"``.

A spec is framework-free and shape-free; ``spec.plan(shape, layout)`` resolves it. Every
field has a default (torch's where torch has the function, else jax's or keras's), so
``{"kind": "normal"}`` is valid, and the canonical JSON form writes every field.

Where frameworks give one name different meanings the catalog keeps distinct kinds:
``xavier_normal`` / ``kaiming_normal`` are torch's (untruncated normal), ``glorot_normal`` /
``he_normal`` / ``lecun_normal`` are jax's and keras's (normal truncated at 2 sigma, std
divided by 0.87962566103423978 so the std after truncation is the target).

A kind lives in this module alone: its class, registered with ``@register``, carries its
fields and plan, its spellings (``kind_aliases``, ``field_aliases`` and the
``implied_fields`` hook), its Keras 3 classes (``keras_forms``; ``to_keras`` is derived from
them or from ``as_variance_scaling``), the catalog's framework equivalents and the
conformance suite's examples. ``Spec``, ``SPEC_CLASSES``, the parser's alias tables, the
Keras reader and the catalog page are built from the registered classes.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from initspec.errors import InitSpecError, ShapeError, SpecError
from initspec.facts import KERAS_UNCARRIED, Equivalents, Example, KerasForm
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
    ``groups``: a convolution's feature groups, for ``fan_out_per_group``.
    """

    weight_fans: tuple[int, int] | None = None
    hidden_size: int | None = None
    padding_idx: int | None = None
    groups: int = 1


def _shape(shape: Shape) -> Shape:
    # Integers only (Python or NumPy), 0 <= d < 2**63: "34" is not (3, 4), 3.7 is not 3.
    from initspec.layout import check_shape

    return check_shape(shape)


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
    # The kind's facts (types and meaning in ``initspec.facts``); each kind sets what applies.
    kind_aliases: ClassVar[tuple[str, ...]] = ()
    field_aliases: ClassVar[Mapping[str, str]] = {}
    keras_forms: ClassVar[tuple[KerasForm, ...]] = ()
    equivalents: ClassVar[Equivalents] = Equivalents()
    conformance: ClassVar[tuple[Example, ...]] = (Example(),)
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

    @classmethod
    def implied_fields(cls, given: Mapping[Any, Any]) -> dict[str, Any]:
        """Fields implied by how the input was spelled, unless given (``parse`` applies it)."""
        return {}

    def as_variance_scaling(self) -> VarianceScaling | None:
        """The ``variance_scaling`` with the same distribution, where one exists.

        Used to write Keras configs. The kind's own plan may compute its std another way
        (torch's ``gain / sqrt(fan)``), so the two can differ in the last bit.
        """
        return None

    def to_keras(self) -> dict[str, Any]:
        """The Keras 3 config (``keras.initializers.serialize`` format) with these semantics.

        The first of the kind's ``keras_forms`` that expresses this spec, else the Keras form
        of ``as_variance_scaling()``; a ``SpecError`` when Keras has neither.
        """
        found = self._keras()
        if found is None:
            raise SpecError(("kind",), self.kind, "Keras has no initializer with these semantics")
        form, config = found
        for name, value in config.items():
            # A variance_scaling built from a torch gain is not validated again: check here.
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError((name,), value, "must be finite")
        return {
            "module": "keras.initializers",
            "class_name": form.class_name,
            "config": config,
            "registered_name": None,
        }

    def _keras(self) -> tuple[KerasForm, dict[str, Any]] | None:
        values = dict(self)
        for form in self.keras_forms:
            config = form.write(values, self.field_aliases)
            if config is not None:
                return form, config
        vs = self.as_variance_scaling()
        return vs._keras() if vs is not None and vs is not self else None

    def kind_name(self) -> str:
        return str(self.kind)


# The catalog ----------------------------------------------------------------------------

_KINDS: list[type[SpecBase]] = []
_NAMES: dict[str, str] = {}  # every kind name and kind alias -> its kind
_KERAS_NAMES: dict[str, str] = {}  # every Keras class name and alias -> its kind
_sealed = False

K = TypeVar("K", bound=SpecBase)


def _catalog_error(cls: type, problem: str) -> InitSpecError:
    return InitSpecError(f"spec class {cls.__name__}: {problem}")


def register(cls: type[K]) -> type[K]:
    """Add a kind to the catalog (a class decorator, used in this module only).

    Checks the facts the class declares, so that a slip fails at import, not in a user's
    policy: a kind, alias or Keras name claimed twice, an alias of no field. Nothing is
    recorded unless every check passes.
    """
    kind = cls.model_fields["kind"].default
    if not isinstance(kind, str):
        raise _catalog_error(cls, "needs kind: Literal[name] = name")
    fields = cls.model_fields
    names = [kind, *cls.kind_aliases]
    keras_names = [name for form in cls.keras_forms for name in form.names()]
    for name in names:
        if name in _NAMES or names.count(name) > 1:
            raise _catalog_error(cls, f"kind name {name!r} is claimed twice")
    for name in keras_names:
        if name in _KERAS_NAMES or keras_names.count(name) > 1:
            raise _catalog_error(cls, f"Keras name {name!r} is claimed twice")
    for alias, target in cls.field_aliases.items():
        if alias in fields or target not in fields:
            raise _catalog_error(cls, f"field alias {alias!r} -> {target!r} names no field")
    for form in cls.keras_forms:
        spec_fields = [cls.field_aliases.get(f, f) for f in form.fields] + list(form.fixed)
        if any(f not in fields for f in spec_fields) or not set(form.values) <= set(form.fields):
            raise _catalog_error(cls, f"Keras form {form.class_name} names a missing field")
    if _sealed:
        raise _catalog_error(cls, "registered after Spec was built: define kinds in initspec.specs")
    _NAMES.update(dict.fromkeys(names, kind))
    _KERAS_NAMES.update(dict.fromkeys(keras_names, kind))
    _KINDS.append(cls)
    return cls


# Constants ------------------------------------------------------------------------------


@register
class Zeros(SpecBase):
    """All zeros (``torch.nn.init.zeros_``, ``jax.nn.initializers.zeros``)."""

    kind_aliases = ("zeros_", "zero")
    keras_forms = (KerasForm("Zeros", nulls=(), aliases=("zero",)),)
    equivalents = Equivalents("zeros_", "zeros", "Zeros")
    conformance = (Example(on=("linear",)),)

    kind: Literal["zeros"] = "zeros"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return ConstantPlan(shape, 0.0)


@register
class Ones(SpecBase):
    """All ones (``torch.nn.init.ones_``, ``jax.nn.initializers.ones``)."""

    kind_aliases = ("ones_", "one")
    keras_forms = (KerasForm("Ones", nulls=(), aliases=("one",)),)
    equivalents = Equivalents("ones_", "ones", "Ones")
    conformance = (Example(on=("bias",)),)

    kind: Literal["ones"] = "ones"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return ConstantPlan(shape, 1.0)


@register
class Constant(SpecBase):
    """Every element ``value`` (``torch.nn.init.constant_``; keras ``Constant`` default 0)."""

    kind_aliases = ("constant_",)
    field_aliases = {"val": "value", "fill_value": "value"}
    keras_forms = (KerasForm("Constant", {"value": 0.0}, nulls=()),)
    equivalents = Equivalents("constant_(val)", "constant(value)", "Constant(value)")
    conformance = (Example({"value": 0.25}, on=("conv",)),)

    kind: Literal["constant"] = "constant"
    value: Finite = 0.0

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return ConstantPlan(shape, self.value)


# Plain distributions --------------------------------------------------------------------


@register
class Uniform(SpecBase):
    """U[low, high) (``torch.nn.init.uniform_(a=0, b=1)``). jax's ``uniform(scale)`` is U[0, scale)."""

    kind_aliases = ("uniform_", "random_uniform")
    field_aliases = {"a": "low", "b": "high", "minval": "low", "maxval": "high"}
    keras_forms = (
        KerasForm("RandomUniform", {"minval": -0.05, "maxval": 0.05}, aliases=("uniform",)),
    )
    equivalents = Equivalents(
        "uniform_(a=0, b=1)",
        "uniform(scale) is U[0, scale)",
        "RandomUniform(-0.05, 0.05)",
        "defaults differ: torch U[0,1), jax U[0,0.01), keras U(+-0.05)",
    )
    conformance = (Example({"low": -0.3, "high": 0.7}),)

    kind: Literal["uniform"] = "uniform"
    low: Finite = 0.0
    high: Annotated[Finite, Field(validate_default=True)] = 1.0  # checked against low

    _order = field_validator("high")(_high_above_low)

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return UniformPlan(shape, self.low, self.high)


@register
class Normal(SpecBase):
    """N(mean, std**2), untruncated (``torch.nn.init.normal_(mean=0, std=1)``)."""

    kind_aliases = ("normal_", "random_normal")
    field_aliases = {"stddev": "std"}
    keras_forms = (KerasForm("RandomNormal", {"mean": 0.0, "stddev": 0.05}, aliases=("normal",)),)
    equivalents = Equivalents(
        "normal_(mean=0, std=1)",
        "normal(stddev=0.01), no mean",
        "RandomNormal(0, 0.05)",
        "defaults differ per framework",
    )
    conformance = (Example({"mean": 0.1, "std": 0.02}),)

    kind: Literal["normal"] = "normal"
    mean: Finite = 0.0
    std: Positive = 1.0

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return NormalPlan(shape, self.mean, self.std)


@register
class TruncatedNormal(SpecBase):
    """N(mean, std**2) restricted to [low, high], with no variance correction.

    ``bounds="absolute"`` (default): low and high are values, as torch's ``trunc_normal_``
    (a=-2, b=2; with std=0.02 that is +-100 sigma, in effect untruncated).
    ``bounds="std"``: the cut-offs are ``mean + low*std`` and ``mean + high*std``, as jax's
    ``truncated_normal(lower, upper)``, keras ``TruncatedNormal`` and timm ``trunc_normal_tf_``.
    The resulting std is smaller than ``std`` (0.8796 std for +-2 sigma).
    """

    kind_aliases = ("trunc_normal", "trunc_normal_")
    field_aliases = {"stddev": "std", "a": "low", "b": "high", "lower": "low", "upper": "high"}
    keras_forms = (
        KerasForm(
            "TruncatedNormal",
            {"mean": 0.0, "stddev": 0.05},
            fixed={"low": -2.0, "high": 2.0, "bounds": "std"},
        ),
    )
    equivalents = Equivalents(
        "trunc_normal_(a, b): absolute bounds",
        "truncated_normal(lower, upper): std units",
        "TruncatedNormal: +-2 std",
        "bounds='absolute' vs 'std'; none correct the variance",
    )
    conformance = (
        Example({"std": 0.02, "low": -2.0, "high": 2.0, "bounds": "std"}),
        Example({"std": 0.02}),
        Example({"mean": 0.0, "std": 1.0, "low": 1.0, "high": 4.0}),
    )

    kind: Literal["truncated_normal"] = "truncated_normal"
    mean: Finite = 0.0
    std: Positive = 1.0
    low: Finite = -2.0
    high: Annotated[Finite, Field(validate_default=True)] = 2.0  # checked against low
    bounds: Literal["absolute", "std"] = "absolute"

    _order = field_validator("high")(_high_above_low)

    @classmethod
    def implied_fields(cls, given: Mapping[Any, Any]) -> dict[str, Any]:
        # jax's truncated_normal(lower, upper) are in std units.
        return {"bounds": "std"} if {"lower", "upper"} & given.keys() else {}

    def absolute_bounds(self) -> tuple[float, float]:
        if self.bounds == "absolute":
            return self.low, self.high
        return self.mean + self.low * self.std, self.mean + self.high * self.std

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        low, high = self.absolute_bounds()
        return TruncatedNormalPlan(shape, self.mean, self.std, low, high)


# Fan-based: jax / keras semantics -------------------------------------------------------


def _vs(scale: float, mode: Mode, distribution: Distribution) -> VarianceScaling:
    # Not validated: the fields it comes from are, and a squared gain may exceed MAX_MAGNITUDE.
    return VarianceScaling.model_construct(scale=scale, mode=mode, distribution=distribution)


class _FanBased(SpecBase):
    fan_based: ClassVar[bool] = True

    def _fans(self, shape: Shape, layout: LayoutLike) -> tuple[int, int]:
        return fans(shape, layout)


@register
class VarianceScaling(_FanBased):
    """``jax.nn.initializers.variance_scaling``: var = scale / n.

    n is fan_in, fan_out, (fan_in + fan_out) / 2 or sqrt(fan_in * fan_out). ``normal`` is
    untruncated; ``truncated_normal`` is cut at +-2 sigma with sigma = sqrt(var) / 0.8796...
    (so the std after truncation is sqrt(var)); ``uniform`` is U(+-sqrt(3 var)). Keras's
    ``"normal"`` means truncated: read Keras configs with ``from_keras``.
    """

    keras_forms = (
        KerasForm(
            "VarianceScaling",
            {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"},
            values={
                "distribution": {
                    "truncated_normal": "truncated_normal",
                    "normal": "truncated_normal",
                    "untruncated_normal": "normal",
                    "uniform": "uniform",
                },
                "mode": {"fan_in": "fan_in", "fan_out": "fan_out", "fan_avg": "fan_avg"},
            },
        ),
    )
    equivalents = Equivalents(
        "(kaiming_*/xavier_* are special cases)",
        "variance_scaling",
        "VarianceScaling",
        "keras 'normal' = truncated; here 'normal' is untruncated (keras 'untruncated_normal')",
    )
    conformance = (
        Example({"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"}),
        Example({"scale": 1.0, "mode": "fan_geo_avg", "distribution": "normal"}),
        Example({"scale": 1.0, "mode": "fan_out", "distribution": "truncated_normal"}),
    )

    kind: Literal["variance_scaling"] = "variance_scaling"
    scale: Positive = 1.0
    mode: Mode = "fan_in"
    distribution: Distribution = "truncated_normal"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        fi, fo = self._fans(shape, layout)
        std = math.sqrt(self.scale / fan_for(self.mode, fi, fo))
        return scaled_plan(self.distribution, std, shape, (fi, fo))


@register
class FanTruncatedNormal(_FanBased):
    """N(0, scale / fan) cut at +-cutoff std, with no variance correction by default.

    torchtitan's output layer: ``trunc_normal_(w, std=dim**-0.5, a=-3*std, b=3*std)`` is
    ``{"kind": "fan_truncated_normal", "mode": "fan_in", "cutoff": 3}``. With
    ``correct_variance`` the std is divided by the truncated std first, so the std after
    truncation is sqrt(scale / fan) (cutoff 2 is then jax's ``variance_scaling``).
    """

    equivalents = Equivalents(
        "trunc_normal_(std=sqrt(s/fan), a=-c*std, b=c*std)",
        "-",
        "-",
        "torchtitan's output layer: cutoff 3, no correction",
    )
    conformance = (Example({"cutoff": 3.0}),)

    kind: Literal["fan_truncated_normal"] = "fan_truncated_normal"
    scale: Positive = 1.0
    mode: Mode = "fan_in"
    cutoff: Positive = 2.0
    correct_variance: bool = False

    def as_variance_scaling(self) -> VarianceScaling | None:
        # Cut at +-2 sigma, this is variance_scaling's truncated normal: sigma is
        # sqrt(scale / fan) / 0.8796... with the correction; without it, sigma = sqrt(scale / fan)
        # is that of variance_scaling with scale * 0.8796...**2.
        if self.cutoff != 2.0:
            return None
        scale = self.scale if self.correct_variance else self.scale * TRUNC_STD_2SIGMA**2
        return _vs(scale, self.mode, "truncated_normal")

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


@register
class GlorotUniform(_NamedScaling):
    """jax ``glorot_uniform`` / keras ``GlorotUniform``: U(+-sqrt(6 / (fan_in + fan_out)))."""

    keras_forms = (KerasForm("GlorotUniform", nulls=KERAS_UNCARRIED),)
    equivalents = Equivalents(
        "xavier_uniform_",
        "glorot_uniform / xavier_uniform",
        "GlorotUniform",
        "same distribution as torch xavier_uniform",
    )

    kind: Literal["glorot_uniform"] = "glorot_uniform"
    _scale, _mode, _distribution = 1.0, "fan_avg", "uniform"


@register
class GlorotNormal(_NamedScaling):
    """jax ``glorot_normal`` / keras ``GlorotNormal``: 2-sigma TN with std sqrt(2 / (fan_in + fan_out))."""

    keras_forms = (KerasForm("GlorotNormal", nulls=KERAS_UNCARRIED),)
    equivalents = Equivalents(
        "-",
        "glorot_normal / xavier_normal",
        "GlorotNormal",
        "truncated; torch's xavier_normal_ is not",
    )

    kind: Literal["glorot_normal"] = "glorot_normal"
    _scale, _mode, _distribution = 1.0, "fan_avg", "truncated_normal"


@register
class HeUniform(_NamedScaling):
    """jax ``he_uniform`` / keras ``HeUniform``: U(+-sqrt(6 / fan_in))."""

    keras_forms = (KerasForm("HeUniform", nulls=KERAS_UNCARRIED),)
    equivalents = Equivalents(
        "kaiming_uniform_(nonlinearity='relu')", "he_uniform / kaiming_uniform", "HeUniform", ""
    )

    kind: Literal["he_uniform"] = "he_uniform"
    _scale, _mode, _distribution = 2.0, "fan_in", "uniform"


@register
class HeNormal(_NamedScaling):
    """jax ``he_normal`` / keras ``HeNormal``: 2-sigma TN with std sqrt(2 / fan_in)."""

    keras_forms = (KerasForm("HeNormal", nulls=KERAS_UNCARRIED),)
    equivalents = Equivalents(
        "-", "he_normal / kaiming_normal", "HeNormal", "truncated; torch's kaiming_normal_ is not"
    )

    kind: Literal["he_normal"] = "he_normal"
    _scale, _mode, _distribution = 2.0, "fan_in", "truncated_normal"


@register
class LecunUniform(_NamedScaling):
    """jax ``lecun_uniform`` / keras ``LecunUniform``: U(+-sqrt(3 / fan_in))."""

    keras_forms = (KerasForm("LecunUniform", nulls=KERAS_UNCARRIED),)
    equivalents = Equivalents(
        "kaiming_uniform_(nonlinearity='linear')", "lecun_uniform", "LecunUniform", ""
    )

    kind: Literal["lecun_uniform"] = "lecun_uniform"
    _scale, _mode, _distribution = 1.0, "fan_in", "uniform"


@register
class LecunNormal(_NamedScaling):
    """jax ``lecun_normal`` (Flax's default kernel init): 2-sigma TN with std 1 / sqrt(fan_in)."""

    keras_forms = (KerasForm("LecunNormal", nulls=KERAS_UNCARRIED),)
    equivalents = Equivalents(
        "-", "lecun_normal (Flax's default kernel init)", "LecunNormal", "truncated"
    )

    kind: Literal["lecun_normal"] = "lecun_normal"
    _scale, _mode, _distribution = 1.0, "fan_in", "truncated_normal"


# Fan-based: torch semantics -------------------------------------------------------------


@register
class XavierUniform(_FanBased):
    """``torch.nn.init.xavier_uniform_``: bound = gain * sqrt(6 / (fan_in + fan_out))."""

    kind_aliases = ("xavier_uniform_",)
    equivalents = Equivalents(
        "xavier_uniform_(gain)",
        "variance_scaling(gain**2, 'fan_avg', 'uniform')",
        "VarianceScaling(gain**2, 'fan_avg', 'uniform')",
    )

    kind: Literal["xavier_uniform"] = "xavier_uniform"
    gain: Positive = 1.0

    def as_variance_scaling(self) -> VarianceScaling:
        return _vs(self.gain**2, "fan_avg", "uniform")

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        fi, fo = self._fans(shape, layout)
        std = self.gain * math.sqrt(2.0 / float(max(fi + fo, 1)))
        bound = math.sqrt(3.0) * std
        return UniformPlan(shape, -bound, bound, fans=(fi, fo))


@register
class XavierNormal(_FanBased):
    """``torch.nn.init.xavier_normal_``: N(0, gain**2 * 2 / (fan_in + fan_out)), untruncated."""

    kind_aliases = ("xavier_normal_",)
    equivalents = Equivalents(
        "xavier_normal_(gain)",
        "variance_scaling(gain**2, 'fan_avg', 'normal')",
        "VarianceScaling(..., 'untruncated_normal')",
        "jax's xavier_normal is truncated: use glorot_normal for that",
    )

    kind: Literal["xavier_normal"] = "xavier_normal"
    gain: Positive = 1.0

    def as_variance_scaling(self) -> VarianceScaling:
        return _vs(self.gain**2, "fan_avg", "normal")

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        fi, fo = self._fans(shape, layout)
        std = self.gain * math.sqrt(2.0 / float(max(fi + fo, 1)))
        return NormalPlan(shape, 0.0, std, fans=(fi, fo))


class _Kaiming(_FanBased):
    field_aliases = {"negative_slope": "a"}
    _distribution: ClassVar[Distribution]

    a: Finite = 0.0
    mode: TorchMode = "fan_in"
    nonlinearity: Nonlinearity = "leaky_relu"
    # timm's _init_weight_goog (EfficientNet, MobileNet, MixNet: fix_group_fanout): a
    # grouped conv's fan_out is out * k / groups (PlanContext.groups), the fan of one group.
    fan_out_per_group: bool = False

    def as_variance_scaling(self) -> VarianceScaling | None:
        if self.fan_out_per_group:
            return None  # Keras has no grouped fan
        return _vs(calculate_gain(self.nonlinearity, self.a) ** 2, self.mode, self._distribution)

    def _std(
        self, shape: Shape, layout: LayoutLike, context: PlanContext
    ) -> tuple[float, tuple[int, int]]:
        fi, fo = self._fans(shape, layout)
        if self.fan_out_per_group and context.groups > 1:
            fo //= context.groups
        gain = calculate_gain(self.nonlinearity, self.a)
        return gain / math.sqrt(fan_for(self.mode, fi, fo)), (fi, fo)


@register
class KaimingUniform(_Kaiming):
    """``torch.nn.init.kaiming_uniform_``: bound = sqrt(3) * calculate_gain(nonlinearity, a) / sqrt(fan)."""

    kind_aliases = ("kaiming_uniform_",)
    equivalents = Equivalents(
        "kaiming_uniform_(a, mode, nonlinearity)",
        "variance_scaling(gain**2, mode, 'uniform')",
        "VarianceScaling(gain**2, mode, 'uniform')",
        "torch default gain is sqrt(2) (a=0), not calculate_gain('leaky_relu')",
    )
    _distribution = "uniform"

    kind: Literal["kaiming_uniform"] = "kaiming_uniform"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        std, f = self._std(shape, layout, context)
        bound = math.sqrt(3.0) * std
        return UniformPlan(shape, -bound, bound, fans=f)


@register
class KaimingNormal(_Kaiming):
    """``torch.nn.init.kaiming_normal_``: N(0, (calculate_gain(nonlinearity, a) / sqrt(fan))**2), untruncated."""

    kind_aliases = ("kaiming_normal_",)
    equivalents = Equivalents(
        "kaiming_normal_(a, mode, nonlinearity)",
        "variance_scaling(gain**2, mode, 'normal')",
        "VarianceScaling(..., 'untruncated_normal')",
        "jax's kaiming_normal is truncated: use he_normal for that",
    )
    conformance = (Example({"nonlinearity": "relu", "mode": "fan_out"}),)
    _distribution = "normal"

    kind: Literal["kaiming_normal"] = "kaiming_normal"

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        std, f = self._std(shape, layout, context)
        return NormalPlan(shape, 0.0, std, fans=f)


@register
class SmallInit(_FanBased):
    """Small init: N(0, 2 / (5 d)), untruncated, with d = fan_in.

    Nguyen & Salazar (2019), "Transformers without Tears"; GPT-NeoX's
    ``small_init_init_method(dim)``: ``normal_(w, mean=0, std=math.sqrt(2 / (5 * dim)))``,
    used with dim = the hidden size on the weights whose fan_in that is (QKV, the MLP's first
    projection, the embedding's features). For another d write ``normal`` with that std.
    """

    equivalents = Equivalents(
        "normal_(std=sqrt(2 / (5 * fan_in)))", "variance_scaling(0.4, 'fan_in', 'normal')"
    )

    kind: Literal["small_init"] = "small_init"

    def as_variance_scaling(self) -> VarianceScaling:
        return _vs(0.4, "fan_in", "normal")

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        fi, fo = self._fans(shape, layout)
        # GPT-NeoX's expression, so the std is the same float as theirs.
        std = math.sqrt(2.0 / (5.0 * fan_for("fan_in", fi, fo)))
        return NormalPlan(shape, 0.0, std, fans=(fi, fo))


@register
class TorchLinearWeight(_FanBased):
    """PyTorch's Linear/Conv ``reset_parameters``: ``kaiming_uniform_(w, a=sqrt(5))``.

    gain = sqrt(2 / (1 + 5)) = sqrt(1/3), bound = sqrt(3) * gain / sqrt(fan) = 1 / sqrt(fan).
    ConvTranspose weights, read with the ``torch_transposed`` layout, use ``mode="fan_out"``
    to reproduce torch (which reads their dim 1, the output channels, as fan_in).
    """

    equivalents = Equivalents(
        "Linear/Conv reset_parameters: kaiming_uniform_(a=sqrt(5))",
        "variance_scaling(1/3, 'fan_in', 'uniform')",
        "VarianceScaling(1/3, 'fan_in', 'uniform')",
        "= U(+-1/sqrt(fan_in)); ConvTranspose: mode='fan_out' with torch_transposed",
    )

    kind: Literal["torch_linear_weight"] = "torch_linear_weight"
    mode: TorchMode = "fan_in"

    def as_variance_scaling(self) -> VarianceScaling:
        # gain**2 = 2 / (1 + 5), written exactly rather than squared back from a sqrt.
        return _vs(1.0 / 3.0, self.mode, "uniform")

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        return KaimingUniform(a=math.sqrt(5.0), mode=self.mode)._plan(shape, layout, context)


@register
class TorchLinearBias(SpecBase):
    """PyTorch's Linear/Conv bias: U(+-1 / sqrt(fan)) with the fan of the layer's *weight*.

    bound = 0 when that fan is 0, as torch. Needs ``PlanContext.weight_fans``.
    """

    equivalents = Equivalents(
        "Linear/Conv bias: U(+-1/sqrt(fan_in of the weight))",
        "-",
        "-",
        "needs the weight's fans (adapters pass them)",
    )

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


@register
class TorchRnn(SpecBase):
    """PyTorch's RNN/LSTM/GRU ``reset_parameters``: every parameter U(+-1 / sqrt(hidden_size)).

    Needs ``PlanContext.hidden_size``.
    """

    equivalents = Equivalents(
        "RNN/LSTM/GRU: U(+-1/sqrt(hidden_size))",
        "-",
        "-",
        "needs the hidden size (adapters pass it)",
    )

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


@register
class Orthogonal(_FanBased):
    """``torch.nn.init.orthogonal_`` (gain) / jax ``orthogonal`` (scale) / keras ``Orthogonal``.

    The out axes form the rows, everything else the columns (torch: rows = size(0)); the
    (rows, cols) matrix has orthonormal rows or columns, whichever are fewer, times gain.
    Built in float64 and cast once, so bfloat16 and float16 work.
    """

    kind_aliases = ("orthogonal_",)
    field_aliases = {"scale": "gain"}
    keras_forms = (KerasForm("Orthogonal", {"gain": 1.0}, aliases=("OrthogonalInitializer",)),)
    equivalents = Equivalents(
        "orthogonal_(gain)",
        "orthogonal(scale, column_axis=-1)",
        "Orthogonal(gain)",
        "built in float64, so bf16/fp16 work (torch's raises)",
    )
    conformance = (Example({"gain": 1.5}, on=("linear",)), Example(on=("conv_flax",)))

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


@register
class DeltaOrthogonal(_FanBased):
    """jax ``delta_orthogonal(scale)``: an orthogonal (out, in) matrix at the kernel centre.

    3-, 4- or 5-D conv kernels with in <= out; the centre is ``(k - 1) // 2`` per spatial dim,
    as jax (torch's ``dirac_`` uses ``k // 2``: they differ for even kernels).
    """

    field_aliases = {"gain": "scale"}
    equivalents = Equivalents(
        "-", "delta_orthogonal(scale)", "-", "centre (k-1)//2; torch's dirac_ uses k//2"
    )
    conformance = (Example(on=("conv_flax",)),)

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


@register
class Eye(SpecBase):
    """``torch.nn.init.eye_`` / keras ``Identity(gain)``: gain * eye(rows, cols), 2-D only."""

    kind_aliases = ("eye_", "identity")
    keras_forms = (
        KerasForm("Identity", {"gain": 1.0}, nulls=(), aliases=("IdentityInitializer",)),
    )
    equivalents = Equivalents(
        "eye_", "-", "Identity(gain)", "keras does not serialize gain; initspec does"
    )
    conformance = (Example(on=("linear",)),)

    kind: Literal["eye"] = "eye"
    gain: Positive = 1.0

    def _plan(self, shape: Shape, layout: LayoutLike, context: PlanContext) -> Plan:
        _need_ndim(shape, (2,), "eye")
        return IdentityPlan(shape, self.gain)


@register
class Dirac(SpecBase):
    """``torch.nn.init.dirac_(groups)``: a conv kernel that passes its input through.

    Canonical (out, in, *k): ``w[g*out_per_group + d, d, *(k // 2)] = 1`` for
    d < min(out / groups, in). Out channels must be divisible by groups.
    """

    kind_aliases = ("dirac_",)
    equivalents = Equivalents("dirac_(groups)", "-", "-", "centre k//2")
    conformance = (Example({"groups": 2}, on=("conv",)), Example(on=("conv_flax",)))

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


@register
class Sparse(SpecBase):
    """``torch.nn.init.sparse_(sparsity, std=0.01)``: N(0, std**2) with ceil(sparsity * rows)
    zeros in every column. 2-D only; rows are the out axis. torch has no default sparsity;
    ours is 0.1, the value of its documentation's example.
    """

    kind_aliases = ("sparse_",)
    equivalents = Equivalents(
        "sparse_(sparsity, std=0.01)",
        "-",
        "-",
        "torch has no default sparsity; torch's zero pattern ignores the generator",
    )
    conformance = (Example({"sparsity": 0.3}, on=("linear",)),)

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


# Built from the registered classes, in the order of this module (the schema's order).
if TYPE_CHECKING:
    Spec: TypeAlias = SpecBase
    """Any spec: the union of the spec classes, discriminated by ``"kind"``."""
else:
    Spec = Annotated[functools.reduce(operator.or_, _KINDS), Field(discriminator="kind")]
_sealed = True

SPEC_CLASSES: dict[str, type[SpecBase]] = {cls.model_fields["kind"].default: cls for cls in _KINDS}
"""Every spec class by its canonical kind name."""
__all__ = ["Spec", "SpecBase", "SPEC_CLASSES", "PlanContext", "SpecError", "TRUNC_STD_2SIGMA"]
