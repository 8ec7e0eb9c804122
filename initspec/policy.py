"""Init policies: ordered rules that map parameters to specs, stored as versioned JSON.

A policy is data only: globs, regexes (anchored, length-limited), kind/role/module names,
numbers. Nothing in it is imported, evaluated or unpickled. Scaling is structured:

- ``gain``: a constant factor on the rule's distribution;
- ``depth_scale``: ``std / sqrt(factor * n)`` with ``n = n_layers`` (a number, or
  ``"count:h.*"``: the number of distinct values the ``*`` takes over the model's paths),
  or ``n = layer_id + offset`` with ``layer_id`` captured from the path by a pattern such as
  ``"layers.{layer_id}.*"`` (GPT-2: factor 2, n_layers; torchtitan: factor 2, layer_id, offset 1).

The first matching rule wins. ``unmatched``: "keep" leaves other parameters as they are,
"error" refuses to apply.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import pathlib
import re
import warnings
from functools import cached_property
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from initspec.errors import PolicyError, SpecError
from initspec.parse import _normalize
from initspec.specs import Spec
from initspec.validation import raise_from_validation

ModuleKind = Literal[
    "linear", "conv", "conv_transpose", "embedding", "norm", "attention", "rnn", "other"
]
Role = Literal["kernel", "bias", "embedding", "scale", "other"]

MAX_PATTERN = 512
_LAYER_ID = "{layer_id}"


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value


def _parse_regex(pattern: str) -> Any:
    # The standard library's own regex parser: re._parser on 3.11+, sre_parse on 3.10.
    try:
        sre_parse = importlib.import_module("re._parser")
    except ImportError:  # pragma: no cover - Python 3.10
        sre_parse = importlib.import_module("sre_parse")
    return sre_parse.parse(pattern)


MAX_UNBOUNDED = 3


def _risky(items: Any, inside_repeat: bool, counter: list[int]) -> str | None:
    """Why a parsed regex can backtrack for too long, or None.

    Refused: a repeat (``*``, ``+``, ``{n,m}`` with m > 1) around another such repeat or an
    alternation (``(a+)+``, ``(a|a)*``, ``(.*a){20}``); more than ``MAX_UNBOUNDED``
    unbounded repeats in one pattern (``.*.*.*.*``: polynomial of that degree);
    backreferences and lookarounds.
    """
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            repeats = high > 1
            if repeats and inside_repeat:
                return "a repeat inside a repeat such as (a+)+ or (.*a){20}"
            if high >= 65535:
                counter[0] += 1
                if counter[0] > MAX_UNBOUNDED:
                    return f"more than {MAX_UNBOUNDED} unbounded repeats (* or +)"
            found = _risky(sub, inside_repeat or repeats, counter)
            if found:
                return found
        elif name == "SUBPATTERN":
            found = _risky(arg[-1], inside_repeat, counter)
            if found:
                return found
        elif name == "BRANCH":
            if inside_repeat:
                return "an alternation inside a repeat such as (a|b)*"
            for branch in arg[1]:
                found = _risky(branch, inside_repeat, counter)
                if found:
                    return found
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "backreferences"
        elif name in ("ASSERT", "ASSERT_NOT"):
            return "lookahead and lookbehind"
    return None


def check_regex(pattern: str) -> re.Pattern[str]:
    """Compile a policy regex, refusing patterns that can backtrack catastrophically."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set" notes
            compiled = re.compile(pattern)
            parsed = _parse_regex(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    why = _risky(list(parsed), False, [0])
    if why:
        raise ValueError(
            f"refused: {why} can backtrack for a very long time; write a simpler pattern"
        )
    return compiled


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over a dotted path (``*`` and ``?`` cross dots, as ``fnmatch``), compiled once."""
    return re.compile(fnmatch.translate(pattern))


class Match(BaseModel):
    """All given conditions must hold; a list means any of its values."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    path: list[Annotated[str, Field(min_length=1, max_length=MAX_PATTERN)]] | None = None
    regex: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN)] | None = None
    kind: list[ModuleKind] | None = None
    module: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    role: list[Role] | None = None
    ndim: list[Annotated[int, Field(ge=0, le=64)]] | None = None

    _listed = field_validator("path", "kind", "module", "role", "ndim", mode="before")(
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
    def _regex(self) -> re.Pattern[str] | None:
        return re.compile(self.regex) if self.regex is not None else None

    def matches(
        self, path: str, kind: str, module_types: tuple[str, ...], role: str, ndim: int
    ) -> bool:
        return self.matches_path(path) and self.matches_attributes(kind, module_types, role, ndim)

    def matches_path(self, path: str) -> bool:
        """The ``path`` and ``regex`` conditions."""
        if self.path is not None and not any(r.fullmatch(path) for r in self._path_res):
            return False
        return self._regex is None or self._regex.fullmatch(path) is not None

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
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if (
        isinstance(value, str)
        and value.startswith("count:")
        and "*" in value
        and len(value) <= MAX_PATTERN
    ):
        return value
    raise ValueError("must be a positive integer or 'count:<glob with one *>', e.g. 'count:h.*'")


class DepthScale(BaseModel):
    """Multiply the distribution by ``1 / sqrt(factor * n)`` (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    factor: Annotated[float, Field(gt=0)] = 2.0
    n_layers: Annotated[int | str | None, BeforeValidator(_check_n_layers)] = None
    layer_id: Annotated[str, Field(max_length=MAX_PATTERN)] | None = None
    offset: Annotated[int, Field(ge=0)] = 1

    @model_validator(mode="after")
    def _one_source(self) -> DepthScale:
        if (self.n_layers is None) == (self.layer_id is None):
            raise ValueError("give exactly one of n_layers and layer_id")
        if self.layer_id is not None and self.layer_id.count(_LAYER_ID) != 1:
            raise ValueError(f"layer_id must contain {_LAYER_ID} once, e.g. 'layers.{_LAYER_ID}.*'")
        return self

    @cached_property
    def _layer_re(self) -> re.Pattern[str]:
        assert self.layer_id is not None
        head, tail = self.layer_id.split(_LAYER_ID)
        body = fnmatch.translate(head)[4:-3] + r"(?P<layer_id>\d+)" + fnmatch.translate(tail)[4:-3]
        return re.compile(f"(?s:{body})")

    @cached_property
    def _count_re(self) -> re.Pattern[str]:
        assert isinstance(self.n_layers, str)
        pattern = self.n_layers[len("count:") :]
        if "*" not in pattern:
            raise ValueError("count: needs a '*' to count over")
        head, tail = pattern.rsplit("*", 1)  # the last * is counted; earlier ones are globs
        body = fnmatch.translate(head)[4:-3] + r"(?P<n>[^.]+)" + fnmatch.translate(tail)[4:-3]
        return re.compile(f"(?s:{body})(?:\\.|$)")

    def count_layers(self, paths: list[str]) -> int:
        """Distinct values of the counted ``*`` over ``paths`` (``h.*``: h.0, h.1, ... -> n)."""
        seen = {m.group("n") for p in paths if (m := self._count_re.match(p))}
        return len(seen)

    def n_for(self, path: str, all_paths: list[str]) -> int | None:
        """The ``n`` of ``1 / sqrt(factor * n)`` for ``path``; None if it cannot be found."""
        if isinstance(self.n_layers, int):
            return self.n_layers
        if self.n_layers is not None:
            return self.count_layers(all_paths) or None
        m = self._layer_re.fullmatch(path)
        return int(m.group("layer_id")) + self.offset if m else None


class Rule(BaseModel):
    """``match`` -> ``init`` (a spec), or ``skip``: leave the parameter as it is."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    name: Annotated[str, Field(max_length=200)] | None = None
    match: Match = Match()
    init: Spec | None = None
    skip: bool = False
    gain: Annotated[float, Field(gt=0)] = 1.0
    depth_scale: DepthScale | None = None
    # torch's Embedding(padding_idx=...) and HF models zero that row after sampling.
    zero_padding_row: bool = False

    @model_validator(mode="after")
    def _init_or_skip(self) -> Rule:
        if self.skip == (self.init is not None):
            raise ValueError("a rule has either 'init' (a spec) or 'skip': true")
        return self

    def label(self, index: int) -> str:
        return f"#{index}" + (f" {self.name}" if self.name else "")


class Policy(BaseModel):
    """A versioned, ordered list of rules (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    initspec: Literal[1]  # required: the version of the policy format
    name: Annotated[str, Field(max_length=200)] = ""
    description: Annotated[str, Field(max_length=10_000)] = ""
    seed: int | None = None
    extends: Annotated[str, Field(max_length=1000)] | None = None
    unmatched: Literal["keep", "error"] = "keep"
    rules: list[Rule] = []


# Loading ---------------------------------------------------------------------------------


def _preset_dir() -> Any:
    # A data folder, not a subpackage: importing it would shadow ``initspec.presets``.
    return resources.files("initspec").joinpath("preset_files")


def presets() -> list[str]:
    """Names of the built-in presets."""
    files = _preset_dir().iterdir()
    return sorted(f.name[: -len(".json")] for f in files if f.name.endswith(".json"))


def _preset_text(name: str) -> str:
    if name not in presets():
        raise PolicyError(("extends",), name, f"unknown preset; available: {', '.join(presets())}")
    return str(_preset_dir().joinpath(f"{name}.json").read_text(encoding="utf-8"))


def _prepare(data: Any) -> Any:
    """Normalize spec aliases inside rules before pydantic sees them (locations preserved)."""
    if not isinstance(data, dict):
        raise PolicyError((), data, "a policy is a JSON object")
    rules = data.get("rules")
    if not isinstance(rules, list):
        return data
    out_rules = []
    for i, rule in enumerate(rules):
        if isinstance(rule, dict) and isinstance(rule.get("init"), dict):
            try:
                rule = {**rule, "init": _normalize(rule["init"], ("rules", i, "init"))}
            except SpecError as exc:
                raise PolicyError(exc.loc, exc.value, exc.allowed) from None
        out_rules.append(rule)
    return {**data, "rules": out_rules}


def _validate(data: Any) -> Policy:
    prepared = _prepare(data)
    try:
        return Policy.model_validate(prepared)
    except ValidationError as exc:
        err = raise_from_validation(exc, (), PolicyError)
        # pydantic puts the discriminator's tag into locations: rules.0.init.<kind>.std
        loc = tuple(
            p
            for j, p in enumerate(err.loc)
            if not (j > 0 and err.loc[j - 1] == "init" and isinstance(p, str))
        )
        raise PolicyError(loc, err.value, err.allowed) from None


def _read(source: Any) -> tuple[Any, pathlib.Path | None]:
    if isinstance(source, pathlib.Path):
        return _json(source.read_text(encoding="utf-8")), source.parent
    if isinstance(source, str):
        stripped = source.lstrip()
        if stripped.startswith("{"):
            return _json(source), None
        path = pathlib.Path(source)
        if path.is_file():
            return _json(path.read_text(encoding="utf-8")), path.parent
        if source in presets():
            return _json(_preset_text(source)), None
        raise PolicyError((), source, "not a JSON object, a policy file, or a preset name")
    return source, None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PolicyError((), text[:80], f"must be valid JSON ({exc})") from None


def load_policy(source: Any, _seen: tuple[str, ...] = ()) -> Policy:
    """A validated policy from a ``Policy``, dict, JSON string, file path or preset name.

    ``extends`` (a preset name or a file path relative to the policy file) is resolved
    here: the child's rules come first, so they win; the parent's follow.
    """
    if isinstance(source, Policy) and source.extends is None:
        return source
    data, base = _read(source) if not isinstance(source, Policy) else (source.model_dump(), None)
    policy = _validate(data)
    if policy.extends is None:
        return policy
    ref = policy.extends
    key = ref if ref in presets() else str((base or pathlib.Path.cwd()) / ref)
    if key in _seen:
        chain = " -> ".join((*_seen, key))
        raise PolicyError(("extends",), ref, f"cycle in extends: {chain}")
    if ref in presets():
        parent = load_policy(ref, (*_seen, key))
    else:
        path = pathlib.Path(key)
        if not path.is_file():
            raise PolicyError(
                ("extends",),
                ref,
                f"no preset or policy file of that name; presets: {', '.join(presets())}",
            )
        parent = load_policy(path, (*_seen, key))
    return policy.model_copy(
        update={
            "extends": None,
            "rules": [*policy.rules, *parent.rules],
            "seed": policy.seed if policy.seed is not None else parent.seed,
            "unmatched": policy.unmatched if "unmatched" in data else parent.unmatched,
            "description": policy.description or parent.description,
        }
    )


def preset(name: str) -> Policy:
    """A built-in preset by name (``initspec.presets()`` lists them)."""
    if name not in presets():
        raise PolicyError((), name, f"unknown preset; available: {', '.join(presets())}")
    return load_policy(name)


def policy_schema() -> dict[str, Any]:
    return Policy.model_json_schema()
