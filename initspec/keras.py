"""Keras 3 interop: read and write ``{"class_name": ..., "config": {...}}`` initializer configs.

Keras semantics are kept exactly: ``VarianceScaling(distribution="normal")`` is a *truncated*
normal (``"untruncated_normal"`` is the real one), ``TruncatedNormal`` cuts at +-2 stddev
around the mean with no variance correction, ``Glorot*/He*/Lecun*`` normals are truncated.
Keras seeds are not carried over: initspec derives each parameter's seed from (seed, path).
A seed in the config is reported in ``notes`` and with a ``KerasSeedWarning``, never dropped
silently. ``input_axes``/``output_axes`` belong to the layout, not the spec: they are reported
in ``notes`` with the layout to pass.

Only Keras's built-in initializers are read: a config whose ``module`` is not Keras's or
whose ``registered_name`` names a registered custom class is refused, whatever its
``class_name``. Which Keras classes mean which spec is declared on the spec classes
(``keras_forms`` in ``initspec.specs``); this module only reads them.
"""

from __future__ import annotations

import warnings
from typing import Any

from initspec.errors import SpecError
from initspec.facts import KERAS_UNCARRIED, KerasForm
from initspec.parse import parse
from initspec.specs import SPEC_CLASSES, SpecBase


class KerasSeedWarning(UserWarning):
    """A Keras config carried a seed, which initspec replaces with its per-parameter seeds."""


KERAS_CLASSES: tuple[str, ...] = tuple(
    form.class_name for cls in SPEC_CLASSES.values() for form in cls.keras_forms
)
_BY_NAME: dict[str, tuple[type[SpecBase], KerasForm]] = {
    name: (cls, form)
    for cls in SPEC_CLASSES.values()
    for form in cls.keras_forms
    for name in form.names()
}


def _is_keras_module(module: Any) -> bool:
    # Keras itself resolves a module of "keras" or "keras.*" to its built-ins.
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def _check_builtin(config: dict[Any, Any], class_name: str) -> None:
    """Refuse a serialized custom class that borrows a built-in's ``class_name``.

    Keras 3 writes ``module`` "keras.initializers" and ``registered_name`` null for its own
    classes; a custom class gets its own module (null for ``__main__``) and a registered
    name ("package>Name", or the class name when not registered). Older configs carry
    neither key.
    """
    if "module" in config and not _is_keras_module(config["module"]):
        raise SpecError(
            ("module",),
            config["module"],
            f"{class_name!r} from this module is not a Keras built-in initializer; allowed: "
            "'keras.initializers' (or any 'keras.*'), or no 'module' key",
        )
    registered = config.get("registered_name")
    # Keras accepts a built-in's own class name here; a custom class in __main__ has it too,
    # but that one has module null, refused above.
    if registered is not None and registered != class_name:
        raise SpecError(
            ("registered_name",),
            registered,
            f"a registered custom class, not Keras's built-in {class_name!r}; allowed: null",
        )


def from_keras(config: Any, notes: list[str] | None = None) -> SpecBase:
    """The spec of a Keras 3 initializer config (a dict or a string name).

    ``notes``, when given, receives what could not be carried (seeds, axes).
    """
    notes = notes if notes is not None else []
    cfg: Any
    if isinstance(config, str):
        class_name, cfg = config, {}
    elif isinstance(config, dict) and isinstance(config.get("class_name"), str):
        class_name, cfg = config["class_name"], config.get("config") or {}
        if not isinstance(cfg, dict):
            raise SpecError(("config",), cfg, "a Keras config is a JSON object")
        _check_builtin(config, class_name)
    else:
        raise SpecError(
            (), config, "a Keras initializer is a name or {'class_name': ..., 'config': {...}}"
        )
    found = _BY_NAME.get(class_name)
    if found is None:
        raise SpecError(
            ("class_name",),
            class_name,
            f"allowed: {', '.join(KERAS_CLASSES)} (or their snake_case names)",
        )
    cls, form = found
    name = form.class_name
    known = set(form.fields)
    allowed = ", ".join(sorted(known | {"seed"}))
    for key in cfg:
        if not isinstance(key, str):
            raise SpecError(
                ("config", str(key)), key, f"a field name is a string; allowed: {allowed}"
            )
    cfg = {**form.fields, **cfg}
    seed = cfg.pop("seed", None)
    if seed is not None:
        msg = f"Keras seed {seed!r} of {name} is not used: initspec seeds each parameter from (seed, path)"
        notes.append(msg)
        warnings.warn(msg, KerasSeedWarning, stacklevel=2)
    axes = {k: cfg.pop(k) for k in KERAS_UNCARRIED[1:] if k in cfg}
    if any(v is not None for v in axes.values()):
        notes.append(
            f"{name} axes {axes} belong to the layout: pass layout={{'in': input_axes, 'out': output_axes}}"
        )
    extra = set(cfg) - known
    if extra:
        key = sorted(extra)[0]
        raise SpecError(("config", key), cfg[key], f"unknown field of {name}; allowed: {allowed}")
    kind = cls.model_fields["kind"].default
    return parse({"kind": kind, **form.read(cfg, cls.field_aliases)}, ("config",))


def to_keras(spec: Any) -> dict[str, Any]:
    """The Keras 3 config (``keras.initializers.serialize`` format) of ``spec``, exactly.

    ``spec`` is anything ``parse`` takes. Written from the kind's Keras classes or its
    ``variance_scaling`` form (``SpecBase.to_keras``); raises ``SpecError`` for specs Keras
    cannot express (``fan_geo_avg``, absolute-bound or asymmetric truncation, dirac,
    delta_orthogonal, sparse, torch layer-context specs).
    """
    return parse(spec).to_keras()
