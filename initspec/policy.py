r"""Init policies: ordered rules that map parameters to specs, stored as versioned JSON.

A policy is data only: globs, regexes (anchored, length-limited), kind/role/module names,
numbers. Nothing in it is imported, evaluated or unpickled. Scaling is structured:

- ``gain``: a constant factor on the rule's distribution;
- ``depth_scale``: ``std / sqrt(factor * n)`` with ``n = n_layers`` (a number, or
  ``"count:h.*"``: the number of distinct values the ``*`` takes over the model's paths),
  or ``n = layer_id + offset`` with ``layer_id`` captured from the path by a pattern such as
  ``"layers.{layer_id}.*"`` (GPT-2: factor 2, n_layers; torchtitan: factor 2, layer_id, offset 1).

The first matching rule wins. ``unmatched``: "keep" leaves other parameters as they are,
"error" refuses to apply. Rules that match nothing and parameters kept unmatched are
reported with an ``InitSpecWarning``; ``strict: true`` refuses to apply instead. A rule
with ``"optional": true`` (the generic presets' rules for module types a model may lack) is
not reported when it matches nothing.

Matching names. A parameter matches a rule under any of its names: a tied parameter under
each name it has (of the rules matching any of them, the first in the policy wins), and a
leaf under the torch and the Flax spelling alike (``fc.weight`` of a Linear also answers
to ``fc.kernel``, a Flax ``fc.kernel`` to ``fc.weight``; ``scale`` and ``embedding`` for
norm scales and embedding tables), so one policy matches both frameworks.

``modules`` describes classes the adapters do not know, as data: ``{"modules": {"MyProj":
{"kind": "linear", "layout": "torch_transposed"}}}`` makes every module whose class or a
base class is named ``MyProj`` a ``linear`` whose weight is stored (in, out); roles follow
from the leaf names (``bias``; ``weight`` / ``kernel`` of 2 or more dims: kernel; a norm's
``weight`` / ``scale``: scale; an embedding's table). A rule's ``layout`` overrides the
layout for what it matches.

``within`` matches on an enclosing module, the owner included: a glob over its class names
(bases included) or over its canonical path. ``{"within": ["*Attention"], "kind":
"linear"}`` is every Linear inside an attention block (HF's are plain Linear children of
``GPT2Attention``, ``LlamaAttention``, ...); ``{"path": ["*.bn2.weight"], "within":
["BasicBlock"]}`` is timm's zero-init of a ResNet BasicBlock's last norm.

Fused parameters. A rule's ``blocks`` splits what it matches along one axis into named
logical blocks, each planned on its own shape (so with its own fans) with its own spec:
GPT-2's fused ``c_attn`` (HF ``Conv1D``, stored (in, 3 * d)) as ``{"blocks": {"axis":
"out", "split": ["q", "k", "v"]}}``, torchtitan's ``wqkv`` with grouped-query sizes as
``"split": [["q", 512], ["k", 128], ["v", 128]]``, a Llama ``w13`` as ``["gate", "up"]``,
stacked experts (E, out, in) as ``{"experts": E}``. The axis is named by what it means,
``"out"`` or ``"in"`` in the parameter's layout, so one rule splits torch's (3 * d, d)
``Linear`` weight, HF's (d, 3 * d) ``Conv1D`` weight and Flax's (d, 3 * d) ``Dense``
kernel alike (a stored axis index works too). Each block is keyed in the portable stream by
``<parameter path>.<block>`` (``h.0.attn.c_attn.weight.q``): with ``rng="portable"`` a
fused parameter equals, bit for bit, the concatenation of the separate parameters of the
unfused model when those are named so (``path_map``, below). A rule's ``slices`` are ranges
written over its values with their own spec, keyed the same way: an LSTM's forget-gate bias
set to 1 is ``{"name": "forget", "part": [1, 4], "init": {"kind": "constant", "value":
1.0}}``. The report has a row per block and slice (``block_of`` names the parameter).
Errors name the rule, the parameter and the numbers: sizes that do not add up to the axis,
an axis that does not divide evenly, a slice outside the tensor, a block spec that needs
more dimensions than the block has.

Parts of a model. ``apply(..., path_map=...)`` (torch and Flax) maps a pipeline stage's
local names to the whole model's, and with an ``initspec.GlobalShard`` says which part of
a global tensor a local one is (experts ``[a, b)`` of a stack): rules match the global
names and seeds and streams are keyed by them, so a model initialized stage by stage, or
expert shard by expert shard, gets exactly the values of the whole model
(``initspec.pathmap``). A ``depth_scale`` with ``n_layers: "count:..."`` counts the layers
the call sees, so a stage needs the whole model's ``n_layers`` as a number.

Width (muP). A policy's ``width`` holds the base model's shapes (``{"width": {"base":
report_of_base.shapes()}}``); dimensions that differ from the base are width dimensions, and
the rules' inits are scaled as ``mup.set_base_shapes`` scales a torch-default model: output
(readout) weights and their biases, and other Linear / Conv biases, by ``sqrt(m_in)``;
hidden and input weights as they are. ``report.lr_multipliers(optimizer="adam" | "sgd")``
gives the per-parameter learning-rate and weight-decay factors of ``mup``'s ``MuAdam`` /
``MuSGD`` and the output multiplier of ``MuReadout`` (``initspec.width`` has the rules; the
``Width`` section below the fields).

Patterns. ``path`` is a list of globs (``*`` and ``?`` cross dots, ``[...]`` / ``[!...]``
as ``fnmatch``), matched against the whole canonical path. ``regex`` is matched against the
whole path by RE2 (google-re2), an engine that never backtracks: every accepted pattern
runs in time linear in the path, a few milliseconds at most on a 1,000-character path.
RE2 syntax is Python's minus what cannot run in linear time: lookahead and lookbehind,
backreferences, atomic groups and possessive repeats are refused with a message saying
so; ``\d``, ``\w``, ``\s`` and ``\b`` are ASCII-only (``\pL``, ``\pN`` are the Unicode
classes); ``\Z`` is not needed (the whole path must match) and is refused, as is ``{,n}``
(write ``{0,n}``); a counted repeat is at most ``{1000}``; a pattern compiles to at most 400
RE2 instructions (``.{0,100}`` is 904: use ``.*``), and a policy holds at most 1,000
regexes and 100,000 instructions in all. Patterns are at most 512 characters, lists at most
1,000 values.

Loading (``load_policy``). A string starting with ``{`` is JSON text; a preset's name always
means the preset; any other string is a file and must contain a path separator or end in
``.json`` (``./gpt2`` is the file, ``gpt2`` the preset); a ``pathlib.Path`` is a file.
Files are read only if they are regular files (not a FIFO, a device or a directory) of at
most 4 MiB of UTF-8. JSON objects may not repeat a key; values nest at most 64 levels;
integers have at most 100 digits; a policy has at most 10,000 rules (after ``extends``).
The version ``initspec`` is the integer 1 (not ``true`` or ``1.0``); ``seed`` is an integer
in [-2**63, 2**64).

``extends`` names a preset, or a ``.json`` file relative to the including file's directory
and inside it: no absolute path, no ``..``, no symbolic link out of the directory. A policy
given as a dict, JSON text or ``Policy`` object extends presets only, unless
``load_policy(..., base_dir=...)`` says where its files are. A chain holds at most 16
policies; a cycle is an error. Errors name a file, never show its content.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
from dataclasses import replace
from functools import cached_property
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from initspec.errors import InitSpecError, LoadError, PolicyError, Problem, suggest
from initspec.jsonload import check_depth, loads, read_file, shown_name
from initspec.parse import normalize
from initspec.patterns import (
    MAX_POLICY_REGEX_PROGRAM,
    MAX_POLICY_REGEXES,
    Regex,
    compile_composed,
    compile_glob,
    compile_regex,
    glob_to_re2,
)
from initspec.seeding import SEED_MAX, SEED_MIN
from initspec.specs import Spec
from initspec.validation import raise_from_validation

ModuleKind = Literal[
    "linear", "conv", "conv_transpose", "embedding", "norm", "attention", "rnn", "other"
]
Role = Literal["kernel", "bias", "embedding", "scale", "other"]

MAX_PATTERN = 512
MAX_LIST = 1000  # values in one match condition (globs, module names, ...)
MAX_RULES = 10_000  # rules in a policy, after extends
MAX_EXTENDS = 16  # files and presets in one extends chain
MAX_LAYERS = 1_000_000  # n_layers, offset and layer ids of depth_scale
_LAYER_ID = "{layer_id}"


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value


def check_regex(pattern: str) -> Regex:
    """Compile a policy regex with RE2 (linear time; see ``initspec.patterns``), or raise
    ``ValueError`` saying why it is refused."""
    return compile_regex(pattern)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over a dotted path (``*`` and ``?`` cross dots, as ``fnmatch``), compiled once."""
    return compile_glob(pattern)


Globs = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_PATTERN)]], Field(max_length=MAX_LIST)
]


class Match(BaseModel):
    """All given conditions must hold; a list means any of its values."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)

    path: Globs | None = None
    """Globs over the whole canonical path (``*`` and ``?`` cross dots, ``[...]`` as
    ``fnmatch``): ``["*.attn.c_proj.weight"]``."""
    regex: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN)] | None = None
    """An RE2 pattern the whole canonical path must match (linear time; no lookaround or
    backreferences): ``h\\.[0-9]+\\.mlp\\..*`` (in JSON text each ``\\`` is written twice)."""
    kind: Annotated[list[ModuleKind], Field(max_length=MAX_LIST)] | None = None
    """Neutral module kinds: ``["linear", "conv"]``."""
    module: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=MAX_LIST)
        ]
        | None
    ) = None
    """Class names of the owning module or one of its base classes: ``["LayerNorm"]``."""
    role: Annotated[list[Role], Field(max_length=MAX_LIST)] | None = None
    """What the parameter is to its module: ``["kernel"]``, ``["bias"]``."""
    ndim: Annotated[list[Annotated[int, Field(ge=0, le=64)]], Field(max_length=MAX_LIST)] | None = (
        None
    )
    """Numbers of dimensions: ``[2]`` (a Linear weight), ``[4]`` (a Conv2d kernel)."""
    # An enclosing module (the owner included): a glob over its class names (bases
    # included, "*Attention", "BasicBlock") or over its canonical path ("layers.*.attn").
    within: Globs | None = None
    """Globs over an enclosing module (the owner included): its class names (bases included)
    or its canonical path: ``["*Attention"]``, ``["layers.*.attn"]``."""

    _listed = field_validator("path", "kind", "module", "role", "ndim", "within", mode="before")(
        classmethod(lambda cls, v: _listify(v))
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            check_regex(value)
        return value

    @cached_property
    def _path_res(self) -> tuple[re.Pattern[str], ...]:
        return tuple(glob_regex(p) for p in self.path or ())

    @cached_property
    def _within_res(self) -> tuple[re.Pattern[str], ...]:
        return tuple(glob_regex(p) for p in self.within or ())

    def matches_within(self, ancestors: tuple[tuple[str, tuple[str, ...]], ...]) -> bool:
        """The ``within`` condition: some enclosing module ``(path, class names)`` has a
        class name or a path one of the globs matches."""
        if self.within is None:
            return True
        return any(
            r.fullmatch(name)
            for r in self._within_res
            for path, types in ancestors
            for name in (path, *types)
        )

    @cached_property
    def _regex(self) -> Regex | None:
        return compile_regex(self.regex) if self.regex is not None else None

    def matches(
        self, path: str, kind: str, module_types: tuple[str, ...], role: str, ndim: int
    ) -> bool:
        return self.matches_path(path) and self.matches_attributes(kind, module_types, role, ndim)

    def matches_path(self, path: str) -> bool:
        """The ``path`` and ``regex`` conditions."""
        if self.path is not None and not any(r.fullmatch(path) for r in self._path_res):
            return False
        return self._regex is None or self._regex.matches(path)

    def matches_attributes(
        self, kind: str, module_types: tuple[str, ...], role: str, ndim: int
    ) -> bool:
        """The conditions on what the parameter is (the same for many parameters)."""
        if self.kind is not None and kind not in self.kind:
            return False
        if self.module is not None and not set(self.module) & set(module_types):
            return False
        if self.role is not None and role not in self.role:
            return False
        return self.ndim is None or ndim in self.ndim


def _check_n_layers(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_LAYERS:
        return value
    if (
        isinstance(value, str)
        and value.startswith("count:")
        and "*" in value
        and len(value) <= MAX_PATTERN
    ):
        return value
    raise ValueError(
        f"must be an integer from 1 to {MAX_LAYERS:,} or 'count:<glob with a *>', e.g. 'count:h.*'"
    )


class DepthScale(BaseModel):
    """Multiply the distribution by ``1 / sqrt(factor * n)`` (see the module docstring)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    factor: Annotated[float, Field(gt=0)] = 2.0
    """The ``factor`` of ``1 / sqrt(factor * n)``."""
    n_layers: Annotated[int | str | None, BeforeValidator(_check_n_layers)] = None
    """A fixed ``n`` (an integer from 1), or ``"count:h.*"``: ``n`` is the number of distinct
    values the last ``*`` takes over the model's paths. Exactly one of ``n_layers`` and
    ``layer_id``."""
    layer_id: Annotated[str, Field(max_length=MAX_PATTERN)] | None = None
    """A glob with ``{layer_id}`` once (``"layers.{layer_id}.*"``): ``n = layer_id + offset``,
    the layer id read from each matched path."""
    offset: Annotated[int, Field(ge=0, le=MAX_LAYERS)] = 1
    """Added to the layer id read by ``layer_id`` (torchtitan: 1, so the first layer is 1)."""

    @model_validator(mode="after")
    def _one_source(self) -> DepthScale:
        if (self.n_layers is None) == (self.layer_id is None):
            raise ValueError("give exactly one of n_layers and layer_id")
        if self.layer_id is not None and self.layer_id.count(_LAYER_ID) != 1:
            raise ValueError(f"layer_id must contain {_LAYER_ID} once, e.g. 'layers.{_LAYER_ID}.*'")
        # Compiled here so that a pattern too complex for the matcher is refused on load.
        if self.layer_id is not None:
            _ = self._layer_re
        if isinstance(self.n_layers, str):
            _ = self._count_re
        return self

    @cached_property
    def _layer_re(self) -> Regex:
        assert self.layer_id is not None
        head, tail = self.layer_id.split(_LAYER_ID)
        return compile_composed(glob_to_re2(head) + "(?P<layer_id>[0-9]+)" + glob_to_re2(tail))

    @cached_property
    def _count_re(self) -> Regex:
        assert isinstance(self.n_layers, str)
        pattern = self.n_layers[len("count:") :]
        head, tail = pattern.rsplit("*", 1)  # the last * is counted; earlier ones are globs
        return compile_composed(
            glob_to_re2(head) + "(?P<n>[^.]+)" + glob_to_re2(tail) + "(?:\\.|$)"
        )

    def count_layers(self, paths: list[str]) -> int:
        """Distinct values of the counted ``*`` over ``paths`` (``h.*``: h.0, h.1, ... -> n)."""
        seen = {m["n"] for p in paths if (m := self._count_re.match(p))}
        return len(seen)

    def n_for(self, path: str, all_paths: list[str]) -> int | None:
        """The ``n`` of ``1 / sqrt(factor * n)`` for ``path``; None if it cannot be found."""
        if isinstance(self.n_layers, int):
            return self.n_layers
        if self.n_layers is not None:
            return self.count_layers(all_paths) or None
        m = self._layer_re.fullmatch(path)
        if m is None:
            return None
        digits = m["layer_id"]
        if len(digits) > 7 or int(digits) > MAX_LAYERS:
            shown = digits if len(digits) <= 12 else digits[:12] + "..."
            raise InitSpecError(
                f"depth_scale: layer id {shown} in this path is larger than {MAX_LAYERS:,}"
            )
        return int(digits) + self.offset


def _check_layout(value: Any) -> Any:
    if value is None:
        return value
    from initspec.layout import resolve_layout

    try:
        resolve_layout(value)
    except InitSpecError as exc:
        raise ValueError(str(exc)) from None
    return value


LayoutField = Annotated[
    Annotated[str, Field(max_length=100)]
    | Annotated[dict[str, Any], Field(max_length=8)]
    | None,
    AfterValidator(_check_layout),
]


class ModuleDescription(BaseModel):
    """How a policy describes modules of a class the adapters do not know (``modules``):
    their ``kind``, and the ``layout`` their weight is stored in (default: the
    framework's own for that kind)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)

    kind: ModuleKind
    """The neutral kind the modules of this class are."""
    layout: LayoutField = None
    """The layout their weight is stored in (a name of ``initspec.LAYOUTS`` or explicit
    axes); default: the framework's own for that kind."""


MAX_BLOCKS = 4096  # blocks (or experts) one rule may split a parameter into
BlockName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_]+$")]
Axis = Literal["out", "in"] | Annotated[int, Field(ge=-64, le=63)]


def _pairs(value: Any) -> Any:
    # JSON gives [name, size] pairs as lists; strict validation wants the stored tuples.
    if isinstance(value, list):
        return [tuple(v) if isinstance(v, list) else v for v in value]
    return value


class Blocks(BaseModel):
    """Split what the rule matches along one axis into named logical blocks, each planned
    on its own shape (its own fans) with its own spec and keyed in the portable stream by
    ``<parameter path>.<block name>`` (``h.0.attn.c_attn.weight.q``).

    ``axis`` (default ``"out"``; 0 with ``experts``): ``"out"`` or ``"in"``, the
    parameter's output or input axis in its layout
    (so one policy splits torch's (3*d, d) ``Linear`` weight, HF's (d, 3*d) ``Conv1D``
    weight and Flax's (d, 3*d) ``Dense`` kernel alike; a 1-D parameter, a bias, has its
    output features on axis 0), or a stored axis index (negatives count from the end).
    Exactly one of:

    - ``split``: ``[["q", 768], ["k", 256], ["v", 256]]`` (names and sizes, which must add
      up to the axis), ``["i", "f", "g", "o"]`` (equal parts, named), or ``4`` (equal
      parts named ``"0"`` .. ``"3"``);
    - ``experts``: ``E``, a stacked expert dimension: ``E`` blocks named ``"0"`` ..
      ``"E-1"``, each one expert's tensor without that axis (its layout is the
      parameter's with the axis removed, so fans are per expert).

    ``init``: a spec per block name; a block not named takes the rule's ``init``. The
    rule's ``gain``, ``depth_scale`` and muP ``width`` factor apply to every block. A stack
    of experts needs a layout that does not name the expert axis as ``in`` or ``out`` (it
    may be ``batch``): give the rule one, e.g. ``"layout": {"in": [2], "out": [1],
    "batch": [0]}`` for torch's (E, out, in), ``{"in": [1], "out": [2], "batch": [0]}``
    for Flax's (E, in, out).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)

    axis: Axis | None = None
    """``"out"``, ``"in"`` (in the parameter's layout) or a stored axis index; default
    ``"out"`` for ``split``, 0 for ``experts``."""
    split: Annotated[
        Annotated[int, Field(ge=1, le=MAX_BLOCKS)]
        | Annotated[list[BlockName], Field(min_length=1, max_length=MAX_BLOCKS)]
        | Annotated[
            list[tuple[BlockName, Annotated[int, Field(ge=0)]]],
            Field(min_length=1, max_length=MAX_BLOCKS),
        ]
        | None,
        BeforeValidator(_pairs),
    ] = None
    """Named sizes (``[["q", 768], ["k", 256], ["v", 256]]``, adding up to the axis),
    names of equal parts (``["i", "f", "g", "o"]``), or a count of equal parts."""
    experts: Annotated[int, Field(ge=1, le=MAX_BLOCKS)] | None = None
    """A stacked expert dimension of this size: one block per expert, without that axis."""
    init: Annotated[dict[BlockName, Spec], Field(max_length=MAX_BLOCKS)] = {}
    """A spec per block name; blocks not named take the rule's ``init``."""

    @model_validator(mode="after")
    def _one_split(self) -> Blocks:
        if (self.split is None) == (self.experts is None):
            raise ValueError("give exactly one of split (named or equal blocks) and experts")
        names = self.names()
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"block names must be distinct; repeated: {', '.join(dup)}")
        unknown = sorted(set(self.init) - set(names))
        if unknown:
            raise ValueError(
                f"init names block(s) {', '.join(unknown)} that the split does not have; "
                f"blocks: {', '.join(names[:20])}"
            )
        return self

    def names(self) -> list[str]:
        """The block names, in order along the axis."""
        if self.experts is not None:
            return [str(e) for e in range(self.experts)]
        if isinstance(self.split, int):
            return [str(e) for e in range(self.split)]
        assert self.split is not None
        return [p if isinstance(p, str) else p[0] for p in self.split]

    def sizes(self) -> list[int] | None:
        """The sizes along the axis, or None for equal parts."""
        if isinstance(self.split, list) and self.split and not isinstance(self.split[0], str):
            return [p[1] for p in self.split if not isinstance(p, str)]
        return None


class Slice(BaseModel):
    """A range along one axis written with its own spec over what the rule's ``init`` (or
    its blocks) wrote, planned on the range's shape and keyed ``<parameter path>.<name>``:
    the forget-gate bias of an LSTM set to 1 (``{"name": "forget", "part": [1, 4],
    "init": {"kind": "constant", "value": 1.0}}``: the second of four equal parts of
    torch's (i, f, g, o) gates, whatever the hidden size).

    ``axis`` as in ``Blocks``; the range is ``[start, stop)`` or ``part: [k, n]``, the
    ``k``-th (from 0) of ``n`` equal parts of the axis.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)

    name: BlockName
    """The slice's name: its stream key is ``<parameter path>.<name>``."""
    axis: Axis = "out"
    """``"out"``, ``"in"`` or a stored axis index, as in ``Blocks``."""
    start: Annotated[int, Field(ge=0)] | None = None
    """First index of the range (with ``stop``)."""
    stop: Annotated[int, Field(ge=0)] | None = None
    """One past the last index of the range (with ``start``)."""
    part: (
        Annotated[
            tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=1, le=MAX_BLOCKS)]],
            BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v),
        ]
        | None
    ) = None
    """``[k, n]``: the ``k``-th (from 0) of ``n`` equal parts of the axis."""
    init: Spec
    """The spec written over the range."""

    @model_validator(mode="after")
    def _one_range(self) -> Slice:
        if self.part is not None:
            if self.start is not None or self.stop is not None:
                raise ValueError("give either part or start and stop, not both")
            if self.part[0] >= self.part[1]:
                raise ValueError(f"part [k, n] needs k < n, got {list(self.part)}")
        elif self.start is None or self.stop is None:
            raise ValueError("give start and stop (a range [start, stop)), or part: [k, n]")
        elif self.start >= self.stop:
            raise ValueError(f"start must be below stop, got [{self.start}, {self.stop})")
        return self


class Rule(BaseModel):
    """``match`` -> ``init`` (a spec), or ``skip``: leave the parameter as it is.
    ``layout`` (optional) is how the matched parameters' axes are read, instead of the
    layout their module's description gives."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    name: Annotated[str, Field(max_length=200)] | None = None
    """A label shown in reports and errors."""
    match: Match = Match()
    """Which parameters the rule is for; every given condition must hold; ``{}`` matches all."""
    init: Spec | None = None
    """The spec the matched parameters are drawn from (any kind of the spec catalog):
    ``{"kind": "normal", "std": 0.02}``."""
    skip: bool = False
    """``true``: leave the matched parameters as they are (instead of ``init``)."""
    gain: Annotated[float, Field(gt=0)] = 1.0
    """A constant factor on the distribution (the std, and a uniform's bounds)."""
    depth_scale: DepthScale | None = None
    """Scale the distribution by ``1 / sqrt(factor * n)``, ``n`` from the number of
    layers or each parameter's layer id."""
    layout: LayoutField = None
    """How the matched parameters' axes are read, instead of their module's layout."""
    # A rule a model may have nothing for (a generic preset's RNN rule on a CNN): matching
    # nothing is then no warning, and no error under strict.
    optional: bool = False
    """Matching nothing is neither a warning nor (under ``strict``) an error."""
    # torch's Embedding(padding_idx=...) and HF models zero that row after sampling.
    zero_padding_row: bool = False
    """Zero an embedding's ``padding_idx`` row after sampling, as torch and HF do."""
    blocks: Blocks | None = None
    """A fused parameter's logical blocks (q, k, v; gates; experts), each its own spec and
    its own fans, keyed ``<path>.<block>`` in the portable stream."""
    slices: Annotated[list[Slice], Field(max_length=MAX_BLOCKS)] | None = None
    """Ranges written over the rule's values with their own spec (an LSTM forget-gate
    bias set to 1)."""

    @model_validator(mode="after")
    def _init_or_skip(self) -> Rule:
        covered = self.blocks is not None and set(self.blocks.names()) <= set(self.blocks.init)
        if self.skip:
            if self.init is not None or self.blocks is not None or self.slices:
                raise ValueError(
                    "a rule has either 'init' (a spec) or 'skip': true (and a skip rule no "
                    "blocks or slices)"
                )
        elif self.init is None and not covered:
            more = "; blocks without an init for every block need the rule's init"
            raise ValueError(
                "a rule has either 'init' (a spec) or 'skip': true" + (more if self.blocks else "")
            )
        if self.zero_padding_row and (self.blocks is not None or self.slices):
            raise ValueError("zero_padding_row applies to a whole table, not with blocks or slices")
        names = [s.name for s in self.slices or ()]
        blocks = set(self.blocks.names() if self.blocks else ())
        if len(set(names)) != len(names) or set(names) & blocks:
            raise ValueError("slice names must be distinct, and distinct from the block names")
        return self

    def label(self, index: int) -> str:
        return f"#{index}" + (f" {self.name}" if self.name else "")


def _check_version(value: Any) -> Any:
    # Literal[1] alone takes True and 1.0 (they compare equal to 1).
    if isinstance(value, (bool, float)):
        raise ValueError(
            "the policy format version is the integer 1, not a boolean or float; allowed: 1"
        )
    return value


def _check_seed(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer (or null: the run's seed, default 0)")
    if not SEED_MIN <= value < SEED_MAX:
        raise ValueError("must be an integer from -2**63 to 2**64 - 1")
    return value


class Width(BaseModel):
    """muP (Yang et al. 2021, "Tensor Programs V"; the ``mup`` package): the model's
    shapes relative to a base model's, as ``mup.set_base_shapes`` takes them.

    ``base``: each parameter's shape in the base model (its canonical path, either leaf
    spelling, -> the stored shape; ``initspec_torch.explain(policy, base_model)`` /
    ``report.shapes()`` writes it). A dimension whose size differs from the base's is a
    width dimension with multiplier ``m = size / base`` (a whole multiple or a whole
    fraction of the base: anything else is refused). What each rule gives is then scaled
    as ``set_base_shapes(..., rescale_params=True)`` does, which assumes a fan_in-scaled
    init (torch's defaults, kaiming, lecun):

    - output weights (a Linear / Dense kernel whose input axis is a width dimension and
      output axis is not: ``MuReadout``) and their biases: x ``sqrt(m_in)``, so their
      variance is the base model's (with ``readout_zero_init``: zeros, as
      ``MuReadout(readout_zero_init=True)``); the forward multiplier ``1 / m_in`` that
      ``MuReadout`` applies to its input is in the report (``output_mult``);
    - other Linear / Conv biases: x ``sqrt(m_in)`` of their weight (``rescale_linear_bias``);
    - hidden and input weights, embeddings, norms: unchanged (1 / fan_in is muP there).

    ``report.lr_multipliers(optimizer="adam" | "sgd")`` gives ``MuAdam`` / ``MuSGD``'s
    per-parameter learning-rate and weight-decay factors.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)

    base: Annotated[
        dict[
            Annotated[str, Field(min_length=1, max_length=MAX_PATTERN * 2)],
            Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=64)],
        ],
        Field(max_length=1_000_000),
    ]
    """The base model's shape of each parameter, by path."""
    readout_zero_init: bool = False
    """Output (readout) weights are zeros, as ``MuReadout(readout_zero_init=True)``."""


class Policy(BaseModel):
    """A versioned, ordered list of rules (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)

    # required: the version of the policy format
    initspec: Annotated[Literal[1], BeforeValidator(_check_version)]
    """The version of the policy format: the integer 1."""
    name: Annotated[str, Field(max_length=200)] = ""
    """A name, shown in reports."""
    description: Annotated[str, Field(max_length=10_000)] = ""
    """Free text."""
    seed: Annotated[int | None, BeforeValidator(_check_seed)] = None
    """The run's seed when ``apply`` is given none (default 0): an integer in
    ``[-2**63, 2**64)``."""
    extends: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    """A preset's name or a ``.json`` file (relative to this file's folder, inside it) whose
    rules come after this policy's."""
    unmatched: Literal["keep", "error"] = "keep"
    """``"keep"`` leaves parameters no rule matches as they are (and warns);
    ``"error"`` refuses to apply."""
    strict: bool = False
    """Rules that match nothing and parameters left unmatched are an error, not a warning."""
    modules: Annotated[
        dict[Annotated[str, Field(min_length=1, max_length=200)], ModuleDescription],
        Field(max_length=MAX_LIST),
    ] = {}
    """Classes the adapters do not know, by class name: ``{"MyProj": {"kind": "linear"}}``."""
    rules: Annotated[list[Rule], Field(max_length=MAX_RULES)] = []
    """The rules, in order: the first rule matching a parameter decides it."""
    width: Width | None = None
    """muP: scale init by each parameter's width relative to a base model's shapes."""


PolicyLike = Policy | dict[str, Any] | str | os.PathLike[str]
"""What every function taking a policy accepts: a ``Policy``, its JSON as a dict or text, a
preset's name, or a policy file (a ``pathlib.Path``, or a string with a path separator or
ending in ``.json``); see ``load_policy``."""

# Loading ---------------------------------------------------------------------------------


def _preset_dir() -> Any:
    # A data folder, not a subpackage: importing it would shadow ``initspec.presets``.
    return resources.files("initspec").joinpath("preset_files")


@functools.lru_cache(maxsize=1)
def _preset_names() -> tuple[str, ...]:
    files = _preset_dir().iterdir()
    return tuple(sorted(f.name[: -len(".json")] for f in files if f.name.endswith(".json")))


def presets() -> list[str]:
    """Names of the built-in presets."""
    return list(_preset_names())


def _is_preset(name: Any) -> bool:
    return isinstance(name, str) and name in _preset_names()


def _preset_text(name: str) -> str:
    if not _is_preset(name):
        raise PolicyError(
            ("extends",),
            name,
            f"unknown preset; available: {', '.join(presets())}",
            suggestion=suggest(name, presets()),
        )
    return str(_preset_dir().joinpath(f"{name}.json").read_text(encoding="utf-8"))


# What a rule's unknown ``init`` is replaced by while the rest of the policy is validated:
# its own problems are already listed, the placeholder adds none.
_PLACEHOLDER_INIT = {"kind": "zeros"}


def _prepare(data: Any) -> tuple[Any, list[Problem]]:
    """Normalize spec aliases inside rules before pydantic sees them (locations preserved);
    the problems found doing so (unknown kinds and fields of every rule)."""
    if not isinstance(data, dict):
        raise PolicyError((), data, "a policy is a JSON object")
    check_depth(data, PolicyError)
    rules = data.get("rules")
    if not isinstance(rules, list):
        return data, []
    if len(rules) > MAX_RULES:
        raise PolicyError(("rules",), f"<{len(rules)} rules>", f"at most {MAX_RULES:,} rules")
    out_rules = []
    problems: list[Problem] = []
    for i, rule in enumerate(rules):
        if isinstance(rule, dict) and isinstance(rule.get("init"), dict):
            init, found = normalize(rule["init"], ("rules", i, "init"))
            problems += found
            rule = {**rule, "init": _PLACEHOLDER_INIT if init is None else init}
        if isinstance(rule, dict):
            rule, found = _prepare_parts(rule, i)
            problems += found
        out_rules.append(rule)
    return {**data, "rules": out_rules}, problems


def _prepare_parts(rule: dict[str, Any], i: int) -> tuple[dict[str, Any], list[Problem]]:
    """Spec aliases normalized inside a rule's ``blocks.init`` and ``slices[j].init``, and
    the problems found doing so (as for the rule's own ``init``)."""
    problems: list[Problem] = []

    def spec(data: dict[str, Any], loc: tuple[str | int, ...]) -> dict[str, Any]:
        out, found = normalize(data, loc)
        problems.extend(found)
        return _PLACEHOLDER_INIT if out is None else out

    blocks = rule.get("blocks")
    if isinstance(blocks, dict) and isinstance(blocks.get("init"), dict):
        specs = {
            name: spec(value, ("rules", i, "blocks", "init", name))
            if isinstance(value, dict)
            else value
            for name, value in blocks["init"].items()
        }
        rule = {**rule, "blocks": {**blocks, "init": specs}}
    slices = rule.get("slices")
    if isinstance(slices, list):
        rule = {
            **rule,
            "slices": [
                {**s, "init": spec(s["init"], ("rules", i, "slices", j, "init"))}
                if isinstance(s, dict) and isinstance(s.get("init"), dict)
                else s
                for j, s in enumerate(slices)
            ],
        }
    return rule, problems


def _check_regex_budget(rules: list[Rule], loc: tuple[str | int, ...]) -> None:
    """All regexes of a policy together compile to at most ``MAX_POLICY_REGEX_PROGRAM``
    RE2 instructions, which bounds the time to match one path against every rule."""
    total = count = 0
    for i, rule in enumerate(rules):
        regex = rule.match._regex
        if regex is None:
            continue
        total += regex.size
        count += 1
        if count > MAX_POLICY_REGEXES:
            raise PolicyError(
                (*loc, i, "match", "regex") if loc == ("rules",) else loc,
                rule.match.regex,
                f"more than {MAX_POLICY_REGEXES:,} regex conditions in one policy; "
                f"use globs (path) where they do",
            )
        if total > MAX_POLICY_REGEX_PROGRAM:
            raise PolicyError(
                (*loc, i, "match", "regex") if loc == ("rules",) else loc,
                rule.match.regex,
                f"the policy's regexes compile to more than {MAX_POLICY_REGEX_PROGRAM:,} RE2 "
                f"instructions together; use globs (path) where they do",
            )


def _untagged(problem: Problem) -> Problem:
    # pydantic puts the discriminator's tag into locations: rules.0.init.<kind>.std
    loc = problem.loc
    loc = tuple(
        p for j, p in enumerate(loc) if not (j > 0 and loc[j - 1] == "init" and isinstance(p, str))
    )
    return replace(problem, loc=loc)


def _validate(data: Any) -> Policy:
    """A ``Policy`` from JSON data, or one ``PolicyError`` listing every problem found."""
    prepared, problems = _prepare(data)
    try:
        policy = Policy.model_validate(prepared)
    except ValidationError as exc:
        err = raise_from_validation(exc, (), PolicyError, root=Policy)
        found = [_untagged(p) for p in err.problems]
        error = PolicyError.of(_in_order([*problems, *found]))
        error.errors = err.errors  # type: ignore[attr-defined]
        raise error from None
    if problems:
        raise PolicyError.of(problems)
    _check_regex_budget(policy.rules, ("rules",))
    return policy


def _in_order(problems: list[Problem]) -> list[Problem]:
    """Problems in document order of their locations (by rule, then field), a stable sort:
    the normalization's and pydantic's problems of one rule together."""

    def key(p: Problem) -> tuple[tuple[int, int | str], ...]:
        return tuple((0, part) if isinstance(part, int) else (1, "") for part in p.loc[:2])

    return sorted(problems, key=key)


def _looks_like_file(name: str) -> bool:
    """A file needs a path (``./gpt2``, ``dir/p``) or a ``.json`` name: a bare word is a
    preset name, so a file in the working directory can never stand in for a preset."""
    seps = {"/", os.sep, os.altsep or "/"}
    return any(sep in name for sep in seps) or name.lower().endswith(".json")


def _read_file(path: str | os.PathLike[str]) -> tuple[Any, pathlib.Path, str]:
    text = read_file(path, "policy")
    data = loads(text, source=shown_name(path), what="policy")
    real = os.fsdecode(os.path.realpath(os.fspath(path)))
    return data, pathlib.Path(real).parent, real


# A source read: (data, directory that file extends resolve against, identity for cycles).
_Source = tuple[Any, "pathlib.Path | None", "str | None"]


def _read(source: Any) -> _Source:
    if isinstance(source, os.PathLike):
        return _read_file(source)
    if isinstance(source, str):
        text = source.lstrip("\ufeff \t\r\n")  # a byte-order mark, whitespace
        if text.startswith(("{", "[")):
            return loads(text, what="policy"), None, None
        if _is_preset(source):
            return loads(_preset_text(source)), None, f"preset:{source}"
        if _looks_like_file(source):
            return _read_file(source)
        close = suggest(source, presets())
        here = " (a file of that name is here: write ./NAME to read it)" if _is_file(source) else ""
        raise LoadError(
            (),
            source,
            f"no preset of that name ({', '.join(presets())}), and not JSON text or a file "
            f"name; a file is named by a path (./{source[:40]}) or a .json name{here}",
            suggestion=close,
        )
    return source, None, None


def _is_file(name: str) -> bool:
    """Whether a regular file ``name`` exists (it is not opened: a hint for the error)."""
    try:
        return os.path.isfile(name)
    except (OSError, ValueError):
        return False


def _extends_target(ref: str, base: pathlib.Path | None) -> tuple[str, Any]:
    """(identity, source) of what ``extends: ref`` names: a preset, always, when ``ref`` is a
    preset's name; else a ``.json`` file relative to the including file's directory and
    inside it (no absolute paths, no ``..``, no symlink out of it)."""
    if _is_preset(ref):
        return f"preset:{ref}", ref
    names = f"presets: {', '.join(presets())}"
    if base is None:
        raise PolicyError(
            ("extends",),
            ref,
            f"no preset of that name ({names}); a policy given as a dict, text or Policy "
            f"object extends presets only (load it with base_dir=... to extend a file)",
            suggestion=suggest(ref, presets()),
        )
    parts = re.split(r"[\\/]", ref)
    if (
        os.path.isabs(ref)
        or ref.startswith(("/", "\\"))
        or os.path.splitdrive(ref)[0]
        or ".." in parts
        or "\x00" in ref
        or not ref.lower().endswith(".json")
    ):
        raise PolicyError(
            ("extends",),
            ref,
            f"no preset of that name ({names}); a file must be a relative .json path inside "
            f"the including policy's directory (no absolute path, no '..')",
            suggestion=suggest(ref, presets()),
        )
    real = os.path.realpath(base / ref)
    try:
        inside = os.path.commonpath([real, str(base)]) == str(base)
    except ValueError:  # another drive
        inside = False
    if not inside:
        raise PolicyError(
            ("extends",), ref, "resolves (through a link) outside the including policy's directory"
        )
    return real, pathlib.Path(real)


def load_policy(source: PolicyLike, *, base_dir: str | os.PathLike[str] | None = None) -> Policy:
    """A validated policy from a ``Policy``, dict, JSON text, file path or preset name.

    A string is JSON text when it starts with ``{``; else a preset when it is a preset's
    name; else a file when it contains a path separator or ends in ``.json``. A
    ``pathlib.Path`` is always a file. Files are read only if regular, at most 4 MiB.

    ``extends`` (a preset name, or a ``.json`` file relative to the including file and
    inside its directory) is resolved here: the child's rules come first, so they win; the
    parent's follow. A policy that is not read from a file (a dict, text or ``Policy``)
    extends presets only, unless ``base_dir`` says where its files are.
    """
    return _load(source, base_dir, ())


def _load(source: Any, base_dir: Any, chain: tuple[str, ...]) -> Policy:
    if isinstance(source, Policy):
        policy, base, key = source, None, None
        _check_regex_budget(policy.rules, ("rules",))
    else:
        data, base, key = _read(source)
        policy = _validate(data)
    if policy.extends is None:
        return policy
    if base is None and base_dir is not None:
        try:
            base = pathlib.Path(os.path.realpath(os.fspath(base_dir)))
        except (TypeError, ValueError, OSError):
            raise PolicyError(
                (), shown_name(str(base_dir)), "base_dir: not a directory name"
            ) from None
    ref = policy.extends
    here = (*chain, key or "<policy>")
    if len(here) >= MAX_EXTENDS:
        raise PolicyError(("extends",), ref, f"extends chain longer than {MAX_EXTENDS} policies")
    target, parent_source = _extends_target(ref, base)
    if target in here:
        shown = " -> ".join(shown_name(k) for k in (*here, target))
        raise PolicyError(("extends",), ref, f"cycle in extends: {shown}")
    try:
        parent = _load(parent_source, None, here)
    except PolicyError as exc:
        if getattr(exc, "where", None) is not None:  # already says which file
            raise
        note = f" (in {ref!r}, named by extends)"
        err = type(exc).of([replace(p, allowed=p.allowed + note) for p in exc.problems])
        err.where = ref  # type: ignore[attr-defined]
        raise err from None
    fields = policy.model_fields_set
    rules = [*policy.rules, *parent.rules]
    _check_regex_budget(rules, ("extends",))
    if len(rules) > MAX_RULES:
        raise PolicyError(
            ("extends",),
            ref,
            f"with its parent the policy has {len(rules):,} rules; at most {MAX_RULES:,}",
        )
    return policy.model_copy(
        update={
            "extends": None,
            "rules": rules,
            "seed": policy.seed if policy.seed is not None else parent.seed,
            "unmatched": policy.unmatched if "unmatched" in fields else parent.unmatched,
            "strict": policy.strict if "strict" in fields else parent.strict,
            "modules": {**parent.modules, **policy.modules},
            "width": policy.width if policy.width is not None else parent.width,
            "description": policy.description or parent.description,
        }
    )


def preset(name: str) -> Policy:
    """A built-in preset by name (``initspec.presets()`` lists them)."""
    if not _is_preset(name):
        raise LoadError(
            (),
            name,
            f"unknown preset; available: {', '.join(presets())}",
            suggestion=suggest(name, presets()),
        )
    return load_policy(name)


def policy_schema() -> dict[str, Any]:
    """The JSON Schema of a policy (``initspec schema policy`` prints it)."""
    return Policy.model_json_schema()
