"""Turn pydantic's validation errors into ``SpecError``s that name location, value and rule."""

from __future__ import annotations

import re
import typing
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from initspec.errors import Problem, SpecError, suggest

M = TypeVar("M", bound=BaseModel)

_TYPE_TAG = re.compile(
    r"^(constrained-|function-|nullable|lax-|strict-)|^(int|str|float|bool|list|dict|tuple|none)$"
    r"|^[a-z_]+\["  # list[str], dict[str,any]
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


_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


def _models_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the pydantic model an annotation holds, whether it holds it in a dict): ``list[Rule]``
    -> (Rule, False), ``dict[str, ModuleDescription] | None`` -> (ModuleDescription, True)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _models_in(args[0])
    for arg in args:
        model, in_dict = _models_in(arg)
        if model is not None:
            return model, in_dict or origin is dict
    return None, False


def fields_at(root: type[BaseModel] | None, loc: tuple[str | int, ...]) -> list[str] | None:
    """The field names of the model at JSON location ``loc`` under ``root`` (list indices
    and dict keys skipped), or None where no model is found."""
    model, key_next = root, False
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        if key_next:  # a key of a dict of models
            key_next = False
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model, key_next = _models_in(field.annotation)
    return None if model is None else sorted(model.model_fields)


def _problem(
    error: Any,
    loc: tuple[str | int, ...],
    strip_tag: str | None,
    root: type[BaseModel] | None,
) -> Problem:
    # Union members add their type's name to locations ("constrained-int", "list[str]"):
    # they are no part of the JSON path.
    sub = tuple(p for p in error.get("loc", ()) if not (isinstance(p, str) and _TYPE_TAG.match(p)))
    if strip_tag is not None and sub[:1] == (strip_tag,):
        sub = sub[1:]
    kind = error.get("type")
    value = error.get("input")
    allowed = allowed_text(error)
    suggestion = None
    if kind == "extra_forbidden" and sub:
        value = sub[-1]
        fields = fields_at(root, sub[:-1])
        if fields is not None:
            allowed = f"unknown field; allowed fields: {', '.join(fields)}"
            suggestion = suggest(value, fields)
    elif kind == "literal_error":
        suggestion = suggest(value, _QUOTED.findall(str((error.get("ctx") or {}).get("expected", ""))))
    elif kind == "union_tag_invalid":
        tags = str((error.get("ctx") or {}).get("expected_tags", "")).split(", ")
        suggestion = suggest(value, [t.strip("'") for t in tags])
    return Problem(loc + sub, value, allowed, suggestion)


def problems_of(
    exc: ValidationError,
    loc: tuple[str | int, ...],
    strip_tag: str | None = None,
    root: type[BaseModel] | None = None,
) -> list[Problem]:
    """Every error of ``exc`` as a ``Problem``: location under ``loc``, bad value, what is
    allowed (an unknown field lists the fields of ``root``'s model at that location) and a
    close match for an unknown field, kind or enum value."""
    out: list[Problem] = []
    for error in exc.errors():
        problem = _problem(error, loc, strip_tag, root)
        # A union reports one mistake once per member: one problem, what each allows.
        same = next((i for i, p in enumerate(out) if p.loc == problem.loc), None)
        if same is None:
            out.append(problem)
        elif problem.allowed not in out[same].allowed:
            merged = f"{out[same].allowed}, or {problem.allowed}"
            out[same] = replace(out[same], allowed=merged)
    return out


def raise_from_validation(
    exc: ValidationError,
    loc: tuple[str | int, ...],
    error_cls: type[SpecError] = SpecError,
    strip_tag: str | None = None,
    root: type[BaseModel] | None = None,
) -> SpecError:
    """One ``error_cls`` listing every error of ``exc`` (``problems``; pydantic's own list
    in ``errors``)."""
    err = error_cls.of(problems_of(exc, loc, strip_tag, root))
    err.errors = exc.errors()  # type: ignore[attr-defined]
    return err


def validate_model(model: type[M], data: Any, loc: tuple[str | int, ...]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise raise_from_validation(exc, loc, root=model) from None


def validate_with(
    adapter: TypeAdapter[Any], data: Any, loc: tuple[str | int, ...], tag: str | None
) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise raise_from_validation(exc, loc, strip_tag=tag) from None
