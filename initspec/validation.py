"""Turn pydantic's validation errors into ``SpecError``s that name location, value and rule."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from initspec.errors import SpecError

M = TypeVar("M", bound=BaseModel)

_TYPE_TAG = re.compile(
    r"^(constrained-|function-|nullable|lax-|strict-)|^(int|str|float|bool|list|dict|tuple|none)$|\["
)


def allowed_text(error: Any) -> str:
    """What the rule behind one pydantic error allows, in words."""
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        return f"unknown kind; allowed: {ctx.get('expected_tags', '')}"
    if kind == "union_tag_not_found":
        return "a spec needs a 'kind' field"
    if kind == "literal_error":
        return f"allowed: {ctx.get('expected', '')}"
    if kind == "extra_forbidden":
        return "unknown field"
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds and ctx:
        (limit,) = ctx.values()
        if isinstance(limit, int) and not isinstance(limit, bool) and abs(limit) < 10**15:
            return f"must be {bounds[kind]} {limit}"
        return (
            f"must be {bounds[kind]} {limit:g}"
            if isinstance(limit, (int, float))
            else f"must be {bounds[kind]} {limit}"
        )
    if kind == "finite_number":
        return "must be a finite number (no NaN or Infinity)"
    msg = str(error.get("msg", "invalid value"))
    if kind == "value_error" and msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg[0].lower() + msg[1:] if msg else "invalid value"


def raise_from_validation(
    exc: ValidationError,
    loc: tuple[str | int, ...],
    error_cls: type[SpecError] = SpecError,
    strip_tag: str | None = None,
) -> SpecError:
    """Build an ``error_cls`` from the first error of ``exc`` (the others are in ``errors``)."""
    errors = exc.errors()
    first = errors[0]
    # Union members add their type's name to locations ("constrained-int", "list[str]"):
    # they are no part of the JSON path.
    sub = tuple(p for p in first.get("loc", ()) if not (isinstance(p, str) and _TYPE_TAG.match(p)))
    if strip_tag is not None and sub[:1] == (strip_tag,):
        sub = sub[1:]
    value = first.get("input")
    if first.get("type") == "extra_forbidden" and sub:
        value = sub[-1]
    err = error_cls(loc + sub, value, allowed_text(first))
    err.errors = errors  # type: ignore[attr-defined]
    return err


def validate_model(model: type[M], data: Any, loc: tuple[str | int, ...]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise raise_from_validation(exc, loc) from None


def validate_with(
    adapter: TypeAdapter[Any], data: Any, loc: tuple[str | int, ...], tag: str | None
) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise raise_from_validation(exc, loc, strip_tag=tag) from None
