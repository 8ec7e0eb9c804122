"""JSON in and out: ``parse`` accepts torch, jax and keras spellings; ``schema`` describes specs.

Aliases are spellings only: a kind alias maps to one canonical kind and field aliases rename
fields; defaults stay the canonical kind's. Names whose meaning differs between frameworks
(jax's ``xavier_normal`` is truncated, torch's is not) are *not* aliases: they resolve to the
torch meaning under the torch name and the jax meaning under the jax name (``glorot_normal``).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from initspec.errors import Problem, SpecError, suggest
from initspec.specs import SPEC_CLASSES, Spec, SpecBase
from initspec.validation import validate_with

# Views of the aliases each spec class declares (``kind_aliases``, ``field_aliases``).
KIND_ALIASES: dict[str, str] = {
    alias: kind for kind, cls in SPEC_CLASSES.items() for alias in cls.kind_aliases
}
FIELD_ALIASES: dict[str, dict[str, str]] = {
    kind: dict(cls.field_aliases) for kind, cls in SPEC_CLASSES.items() if cls.field_aliases
}

_SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(Spec)
_ROOT: tuple[str | int, ...] = ()


def canonical_kind(kind: str) -> str:
    return KIND_ALIASES.get(kind, kind)


def normalize(
    data: dict[str, Any], loc: tuple[str | int, ...]
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """``data`` with canonical kind and field names, and every problem found: the kind (a
    close match suggested), each unknown field (the kind's fields listed, a close match
    suggested), a field given twice. The data is None when the kind is unknown; else it
    holds the known fields, so validation can go on and find the rest."""
    if "kind" not in data:
        return None, [Problem(loc + ("kind",), data, "a spec needs a 'kind' field")]
    kind = data["kind"]
    if not isinstance(kind, str):
        return None, [Problem(loc + ("kind",), kind, "must be a string naming a kind")]
    kind = canonical_kind(kind)
    if kind not in SPEC_CLASSES:
        names = [*SPEC_CLASSES, *KIND_ALIASES]
        return None, [
            Problem(
                loc + ("kind",),
                data["kind"],
                f"unknown kind; allowed: {', '.join(sorted(SPEC_CLASSES))}",
                suggest(kind, names),
            )
        ]
    cls = SPEC_CLASSES[kind]
    renames = cls.field_aliases
    out: dict[str, Any] = {"kind": kind}
    fields = cls.model_fields
    problems: list[Problem] = []
    for key, value in data.items():
        if key == "kind":
            continue
        name = renames.get(key, key) if isinstance(key, str) else key
        if name not in fields:
            allowed = sorted(f for f in fields if f != "kind")
            problems.append(
                Problem(
                    loc + (str(key),),
                    value,
                    f"unknown field of kind {kind!r}; allowed fields: {', '.join(allowed) or '(none)'}",
                    suggest(key, [*allowed, *renames]),
                )
            )
            continue
        if name in out:
            problems.append(
                Problem(loc + (str(key),), value, f"field {name!r} is given twice (as an alias)")
            )
            continue
        out[name] = value
    for name, value in cls.implied_fields(data).items():
        out.setdefault(name, value)
    return out, problems


def _normalize(data: dict[str, Any], loc: tuple[str | int, ...]) -> dict[str, Any]:
    """``normalize``, raising one ``SpecError`` listing every problem."""
    out, problems = normalize(data, loc)
    if problems or out is None:
        raise SpecError.of(problems)
    return out


def parse(obj: Any, loc: tuple[str | int, ...] = _ROOT) -> SpecBase:
    """A spec from a dict, a JSON string or a spec; raises ``SpecError`` naming the location.

    ```python
    parse('{"kind": "kaiming_normal_", "nonlinearity": "relu"}').kind   # 'kaiming_normal'
    ```
    """
    if isinstance(obj, SpecBase):
        return obj
    if isinstance(obj, (str, bytes)):
        from initspec.jsonload import loads  # the policy loader's limits: duplicate keys,
        # size, depth, huge integers refused

        try:
            text = obj.decode("utf-8") if isinstance(obj, bytes) else obj
        except UnicodeDecodeError:
            raise SpecError(loc, obj, "must be UTF-8 JSON text") from None
        if not text.lstrip().startswith(("{", "[")):
            raise SpecError(loc, obj, _not_json_text(text.strip()))
        obj = loads(text, what="spec")
    if not isinstance(obj, dict):
        raise SpecError(loc, obj, "a spec is a JSON object with a 'kind' field")
    data, problems = normalize(obj, loc)
    if data is None:
        raise SpecError.of(problems)
    try:
        spec: SpecBase = validate_with(_SPEC_ADAPTER, data, loc, tag=data["kind"])
    except SpecError as exc:
        raise SpecError.of([*problems, *exc.problems]) from None
    if problems:
        raise SpecError.of(problems)
    return spec


def _not_json_text(text: str) -> str:
    """Why a string that is not JSON text is no spec, and what was probably meant."""
    kind = canonical_kind(text)
    if kind in SPEC_CLASSES:
        return f"a spec given as a string is JSON text: write {{\"kind\": \"{kind}\"}}"
    if text.lower().endswith(".json") or "/" in text or "\\" in text:
        return (
            "a spec given as a string is JSON text; parse never reads a file "
            "(read it yourself, or give the CLI the file's name)"
        )
    return "a spec is a JSON object with a 'kind' field (as a string: JSON text starting with '{')"


def schema() -> dict[str, Any]:
    """JSON Schema of a spec (canonical names; aliases are accepted on input too)."""
    return _SPEC_ADAPTER.json_schema()


def to_json(spec: SpecBase) -> str:
    """The canonical JSON form: every field written, canonical names."""
    return spec.model_dump_json()
