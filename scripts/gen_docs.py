"""Write docs/catalog.md and docs/policy.md from the code and its JSON Schema.

`make docs` runs this before `mkdocs build --strict`; a test checks the committed pages are
what this script writes, so the reference cannot drift from the code. Field types, allowed
values and constraints come from the JSON Schema pydantic builds; field descriptions from
the models' attribute docstrings; examples from the built-in presets.
"""

from __future__ import annotations

import inspect
import json
import pathlib
import re
import sys
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

import initspec

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"

# A code span (``x`` or `x`): Markdown leaves its content alone.
_CODE = re.compile(r"(``.+?``|`[^`\n]+`)", re.S)
# Magnitude bounds the specs put on every float (to keep moments finite): noise in a table.
_HUGE = 1e150


def md(text: str, cell: bool = False) -> str:
    """Docstring or table text as Markdown that shows what it says: ``*`` and ``_`` outside
    code spans escaped (``(out, in, *k)``, ``gain**2`` and ``kaiming_*/xavier_*`` are not
    emphasis); in a table cell, ``|`` escaped and lines joined."""
    parts = _CODE.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("*", r"\*").replace("_", r"\_")
    out = "".join(parts)
    if cell:
        out = out.replace("|", r"\|").replace("\n", " ")
    return out


def _code(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) or not value.startswith("`") else value
    tick = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{tick}{pad}{text}{pad}{tick}"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _bounds(prop: dict[str, Any]) -> str:
    """``> 0``, ``in [0, 1)``... from the schema's numeric constraints (the ±1e150 finiteness
    bounds every float spec field has are left out)."""
    lo = [(prop[k], k) for k in ("minimum", "exclusiveMinimum") if k in prop and prop[k] > -_HUGE]
    hi = [(prop[k], k) for k in ("maximum", "exclusiveMaximum") if k in prop and prop[k] < _HUGE]
    if lo and hi:
        (a, ka), (b, kb) = lo[0], hi[0]
        return (
            f" in {'(' if ka.startswith('exclusive') else '['}{_number(a)}, "
            f"{_number(b)}{')' if kb.startswith('exclusive') else ']'}"
        )
    if lo:
        a, ka = lo[0]
        return f" {'>' if ka.startswith('exclusive') else '>='} {_number(a)}"
    if hi:
        b, kb = hi[0]
        return f" {'<' if kb.startswith('exclusive') else '<='} {_number(b)}"
    return ""


def _lengths(prop: dict[str, Any], unit: str) -> str:
    lo = prop.get("minLength", prop.get("minItems"))
    hi = prop.get("maxLength", prop.get("maxItems", prop.get("maxProperties")))
    if lo and hi:
        return f" ({lo} to {hi:,} {unit})"
    if hi:
        return f" (at most {hi:,} {unit})"
    if lo:
        return f" (at least {lo} {unit})"
    return ""


def type_text(prop: dict[str, Any], links: dict[str, str]) -> str:
    """A schema property as words: its type, allowed values and constraints. ``links``: a
    ``$defs`` name -> the Markdown link standing for it."""
    if "$ref" in prop:
        return links[prop["$ref"].rsplit("/", 1)[1]]
    if "discriminator" in prop:  # the spec union
        return links["Spec"]
    if "anyOf" in prop:
        options = [o for o in prop["anyOf"] if o.get("type") != "null"]
        text = " or ".join(type_text(o, links) for o in options)
        return text + (" or `null`" if len(options) < len(prop["anyOf"]) else "")
    if "const" in prop:
        return _code(prop["const"])
    if "enum" in prop:
        return "one of " + ", ".join(_code(v) for v in prop["enum"])
    kind = prop.get("type")
    if kind == "number":
        return "number" + _bounds(prop)
    if kind == "integer":
        return "integer" + _bounds(prop)
    if kind == "boolean":
        return "boolean"
    if kind == "string":
        return "string" + _lengths(prop, "characters")
    if kind == "array":
        return _list_text(prop, links)
    if kind == "object":
        values = prop.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"object: name -> {type_text(values, links)}" + _lengths(prop, "entries")
        return "object" + _lengths(prop, "keys")
    raise ValueError(f"no words for the schema {prop!r}")  # a new schema shape: extend this


def _list_text(prop: dict[str, Any], links: dict[str, str]) -> str:
    """``list of strings (1 to 512 characters each; at most 1,000)``, ``list of "a", "b"``,
    ``[string, integer]`` for a fixed-length pair."""
    if "prefixItems" in prop:
        return "[" + ", ".join(type_text(p, links) for p in prop["prefixItems"]) + "]"
    items = prop["items"]
    most = f"at most {prop['maxItems']:,}" if "maxItems" in prop else ""
    if "enum" in items:
        values = ", ".join(_code(v) for v in items["enum"])
        return f"list of {values}" + (f" ({most})" if most else "")
    if items.get("type") in ("string", "integer", "number", "boolean"):
        noun = {"string": "strings", "integer": "integers", "number": "numbers", "boolean": "booleans"}
        each = _lengths(items, "characters").strip(" ()") + " each" if items.get("type") == "string" else ""
        each = each if each != " each" else ""
        notes = "; ".join(x for x in (each, most) if x)
        return f"list of {noun[items['type']]}{_bounds(items)}" + (f" ({notes})" if notes else "")
    return f"list of {type_text(items, links)}" + (f" ({most})" if most else "")


def _listed_fields(cls: type[BaseModel]) -> set[str]:
    """Fields whose before-validator turns a single value into a one-item list."""
    fields: set[str] = set()
    for dec in cls.__pydantic_decorators__.field_validators.values():
        if dec.info.mode == "before" and dec.cls_var_name == "_listed":
            fields.update(dec.info.fields)
    return fields


def _keras_text(cls: type[initspec.SpecBase]) -> str:
    """A kind's Keras column when the class declares none: its defaults' ``to_keras``."""
    try:
        out = cls().to_keras()
    except initspec.InitSpecError:
        return "-"
    args = ", ".join(repr(v) for v in out["config"].values() if v is not None)
    return f"{out['class_name']}({args})"


def catalog() -> str:
    lines = [
        "# Spec catalog",
        "",
        "Generated by `scripts/gen_docs.py` from the code; do not edit by hand.",
        "",
        'Every field has a default, so `{"kind": "normal"}` is valid. Aliases are accepted on input and',
        "written back under the canonical names.",
        "",
        '<div class="catalog-table" markdown>',
        "",
        "| kind | torch | jax / flax | keras 3 | note |",
        "|---|---|---|---|---|",
    ]
    for kind, cls in sorted(initspec.SPEC_CLASSES.items()):
        t, j, k, note = cls.equivalents
        row = [f"[`{kind}`](#{kind})", md(t, cell=True), md(j, cell=True), md(k or _keras_text(cls), cell=True)]
        lines.append("| " + " | ".join(row) + f" | {md(note, cell=True)} |")
    lines += ["", "</div>"]
    for kind, cls in sorted(initspec.SPEC_CLASSES.items()):
        lines += ["", f"## `{kind}` {{#{kind}}}", "", md(inspect.cleandoc(cls.__doc__ or "")), ""]
        props = cls.model_json_schema()["properties"]
        fields = [n for n in cls.model_fields if n != "kind"]
        if fields:
            lines += ["| field | default | type and allowed values |", "|---|---|---|"]
            for name in fields:
                prop = props[name]
                default = _code(cls.model_fields[name].default)
                lines.append(f"| `{name}` | {default} | {type_text(prop, {})} |")
        else:
            lines.append("No fields.")
        aliases = sorted(cls.kind_aliases)
        renames = cls.field_aliases
        if aliases or renames:
            lines.append("")
            lines.append(
                "Aliases: "
                + ", ".join(
                    [f"kind `{a}`" for a in aliases]
                    + [f"`{a}` for `{b}`" for a, b in sorted(renames.items())]
                )
                + "."
            )
        example = initspec.parse({"kind": kind}).model_dump_json()
        lines += ["", "```json", example, "```"]
    return "\n".join(lines) + "\n"


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation holds (through lists, dicts, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _holder(annotation: Any) -> str:
    """How a field holds its model: ``an item of`` a list, ``a value of`` a dict, ``the
    value of`` the field itself."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _holder(args[0])
    if origin in (list, tuple):
        return "an item of"
    if origin is dict:
        return "a value of"
    if origin is not None:  # a union, optional: what its other member holds
        holders = {_holder(a) for a in args if a is not type(None)}
        return holders.pop() if len(holders) == 1 else "the value of"
    return "the value of"


def policy_models() -> list[tuple[type[BaseModel], str]]:
    """Every model a policy is made of, found from ``Policy``'s fields, outermost first,
    each with where it appears; specs are left out (the catalog documents them)."""
    found: list[tuple[type[BaseModel], str]] = [(initspec.Policy, "a policy (the top-level object)")]
    for cls, _ in found:  # grows while it is read: breadth first
        for name, info in cls.model_fields.items():
            for sub in _models_in(info.annotation):
                if issubclass(sub, initspec.SpecBase) or any(sub is c for c, _ in found):
                    continue
                found.append((sub, f"{_holder(info.annotation)} `{name}` in a {cls.__name__}"))
    return found


def _instances(policy: initspec.Policy) -> Iterator[BaseModel]:
    """Every model object in a policy (the policy, its rules, their match and depth scale,
    its module descriptions)."""
    yield policy
    yield from policy.modules.values()
    for rule in policy.rules:
        yield rule
        yield rule.match
        if rule.depth_scale is not None:
            yield rule.depth_scale


def preset_examples() -> dict[tuple[str, str], tuple[Any, str]]:
    """``(model, field)`` -> the first value a built-in preset sets it to, and the preset."""
    found: dict[tuple[str, str], tuple[Any, str]] = {}
    for name in initspec.presets():
        for obj in _instances(initspec.preset(name)):
            cls = type(obj)
            for field, info in cls.model_fields.items():
                value = getattr(obj, field)
                if field == "rules" or (field, cls.__name__) == ("init", "Rule"):
                    continue  # the whole list, and specs (the catalog has them)
                if value == info.default or value is None or value == {} or value == []:
                    continue
                if isinstance(value, BaseModel):
                    value = value.model_dump(exclude_none=True, exclude_defaults=True)
                elif isinstance(value, dict):
                    value = {
                        k: v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v
                        for k, v in value.items()
                    }
                found.setdefault((cls.__name__, field), (value, name))
    return found


def _see_below(doc: str) -> str:
    """A model docstring's pointer to the module docstring, as a link on this page."""
    return doc.replace("(see the module docstring)", "(see [how policies work](#how-policies-work))")


def _default_text(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.default
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_none=True)
    return _code(value)


def policy() -> str:
    schema = initspec.policy_schema()
    defs = schema["$defs"]
    models = policy_models()
    anchors = {cls.__name__: cls.__name__.lower() for cls, _ in models}
    links = {name: f"[{name}](#{anchor})" for name, anchor in anchors.items()}
    links["Spec"] = "a spec ([catalog](catalog.md))"
    examples = preset_examples()
    intro, _, rest = inspect.cleandoc(initspec.policy.__doc__ or "").partition("\n\n")
    lines = [
        "# Policy language",
        "",
        "Generated by `scripts/gen_docs.py` from the policy models; do not edit by hand.",
        "",
        md(intro),
        "",
        "The [reference](#reference) lists every field; [how policies work](#how-policies-work)",
        "explains matching, scaling, patterns and loading; the [presets](#presets) are complete",
        "examples.",
        "",
        "## Reference",
        "",
        "Every object refuses keys it does not define. Examples come from the built-in presets",
        "(named in parentheses) where one sets the field.",
    ]
    for cls, where in models:
        props = schema["properties"] if cls is initspec.Policy else defs[cls.__name__]["properties"]
        listed = _listed_fields(cls)
        lines += [
            "",
            f"### {cls.__name__} {{#{anchors[cls.__name__]}}}",
            "",
            f"{md(_see_below(inspect.cleandoc(cls.__doc__ or '')))} This is {where}.",
            "",
            '<div class="policy-table" markdown>',
            "",
            "| field | type and allowed values | default | meaning |",
            "|---|---|---|---|",
        ]
        for name, info in cls.model_fields.items():
            kind = type_text(props[name], links)
            if name in listed:
                kind += "; a single value is a one-item list"
            meaning = md(info.description or "", cell=True)
            if (cls.__name__, name) in examples:
                value, source = examples[(cls.__name__, name)]
                if len(json.dumps(value)) > 80 or "const" in props[name]:
                    continue  # a preset's description, the version: not examples
                meaning += f" Example: {_code(value)} ({source})."
            lines.append(f"| `{name}` | {kind} | {_default_text(info)} | {meaning} |")
        lines += ["", "</div>"]
    lines += ["", "## How policies work", "", md(rest), "", "## Presets", ""]
    for name in initspec.presets():
        pol = initspec.preset(name)
        lines += [
            f"### `{name}`",
            "",
            md(pol.description),
            "",
            "```json",
            pol.model_dump_json(indent=2, exclude_none=True),
            "```",
            "",
        ]
    return "\n".join(lines)


PAGES = {"catalog.md": catalog, "policy.md": policy}


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    for name, fn in PAGES.items():
        text = fn()
        path = DOCS / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale generated docs: {', '.join(stale)}; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
