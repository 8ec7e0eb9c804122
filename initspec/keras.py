"""Keras 3 interop: read and write ``{"class_name": ..., "config": {...}}`` initializer configs.

Keras semantics are kept exactly: ``VarianceScaling(distribution="normal")`` is a *truncated*
normal (``"untruncated_normal"`` is the real one), ``TruncatedNormal`` cuts at +-2 stddev
around the mean with no variance correction, ``Glorot*/He*/Lecun*`` normals are truncated.
Keras seeds are not carried over: initspec derives each parameter's seed from (seed, path).
A seed in the config is reported in ``notes`` and with a ``KerasSeedWarning``, never dropped
silently. ``input_axes``/``output_axes`` belong to the layout, not the spec: they are reported
in ``notes`` with the layout to pass.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from initspec.errors import SpecError
from initspec.parse import parse
from initspec.specs import SpecBase


class KerasSeedWarning(UserWarning):
    """A Keras config carried a seed, which initspec replaces with its per-parameter seeds."""


_NAMED = {
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform",
    "LecunNormal": "lecun_normal",
}

KERAS_CLASSES = (
    "Zeros",
    "Ones",
    "Constant",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    *_NAMED,
    "Orthogonal",
    "Identity",
)

_ALIASES = {
    "normal": "RandomNormal",
    "uniform": "RandomUniform",
    "one": "Ones",
    "zero": "Zeros",
    "IdentityInitializer": "Identity",
    "OrthogonalInitializer": "Orthogonal",
}


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out


_BY_NAME = {**{c: c for c in KERAS_CLASSES}, **{_snake(c): c for c in KERAS_CLASSES}, **_ALIASES}

_DEFAULTS: dict[str, dict[str, Any]] = {
    "Constant": {"value": 0.0},
    "RandomNormal": {"mean": 0.0, "stddev": 0.05},
    "RandomUniform": {"minval": -0.05, "maxval": 0.05},
    "TruncatedNormal": {"mean": 0.0, "stddev": 0.05},
    "VarianceScaling": {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"},
    "Orthogonal": {"gain": 1.0},
    "Identity": {"gain": 1.0},
}

_KERAS_DIST = {
    "truncated_normal": "truncated_normal",
    "normal": "truncated_normal",
    "untruncated_normal": "normal",
    "uniform": "uniform",
}


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
    else:
        raise SpecError(
            (), config, "a Keras initializer is a name or {'class_name': ..., 'config': {...}}"
        )
    cls = _BY_NAME.get(class_name)
    if cls is None:
        raise SpecError(
            ("class_name",),
            class_name,
            f"allowed: {', '.join(KERAS_CLASSES)} (or their snake_case names)",
        )
    cfg = {**_DEFAULTS.get(cls, {}), **cfg}
    seed = cfg.pop("seed", None)
    if seed is not None:
        msg = f"Keras seed {seed!r} of {cls} is not used: initspec seeds each parameter from (seed, path)"
        notes.append(msg)
        warnings.warn(msg, KerasSeedWarning, stacklevel=2)
    axes = {k: cfg.pop(k) for k in ("input_axes", "output_axes") if k in cfg}
    if any(v is not None for v in axes.values()):
        notes.append(
            f"{cls} axes {axes} belong to the layout: pass layout={{'in': input_axes, 'out': output_axes}}"
        )
    known = set(_DEFAULTS.get(cls, {}))
    extra = set(cfg) - known
    if extra:
        name = sorted(extra)[0]
        raise SpecError(
            ("config", name),
            cfg[name],
            f"unknown field of {cls}; allowed: {', '.join(sorted(known | {'seed'})) or 'seed'}",
        )
    return parse(_spec_dict(cls, cfg), ("config",))


def _spec_dict(cls: str, cfg: dict[str, Any]) -> dict[str, Any]:
    if cls in _NAMED:
        return {"kind": _NAMED[cls]}
    if cls in ("Zeros", "Ones"):
        return {"kind": cls.lower()}
    if cls == "Constant":
        return {"kind": "constant", "value": cfg["value"]}
    if cls == "RandomNormal":
        return {"kind": "normal", "mean": cfg["mean"], "std": cfg["stddev"]}
    if cls == "RandomUniform":
        return {"kind": "uniform", "low": cfg["minval"], "high": cfg["maxval"]}
    if cls == "TruncatedNormal":
        return {
            "kind": "truncated_normal",
            "mean": cfg["mean"],
            "std": cfg["stddev"],
            "low": -2.0,
            "high": 2.0,
            "bounds": "std",
        }
    if cls == "VarianceScaling":
        dist = cfg["distribution"]
        if dist not in _KERAS_DIST:
            raise SpecError(("config", "distribution"), dist, f"allowed: {', '.join(_KERAS_DIST)}")
        if cfg["mode"] not in ("fan_in", "fan_out", "fan_avg"):
            raise SpecError(("config", "mode"), cfg["mode"], "allowed: fan_in, fan_out, fan_avg")
        return {
            "kind": "variance_scaling",
            "scale": cfg["scale"],
            "mode": cfg["mode"],
            "distribution": _KERAS_DIST[dist],
        }
    if cls == "Orthogonal":
        return {"kind": "orthogonal", "gain": cfg["gain"]}
    return {"kind": "eye", "gain": cfg["gain"]}


def _vs(scale: float, mode: str, distribution: str) -> dict[str, Any]:
    return {
        "class_name": "VarianceScaling",
        "config": {"scale": scale, "mode": mode, "distribution": distribution, "seed": None},
    }


def to_keras(spec: Any) -> dict[str, Any]:
    """The Keras 3 config (``keras.initializers.serialize`` format) of ``spec``, exactly.

    Raises ``SpecError`` for specs Keras cannot express (``fan_geo_avg``, absolute-bound or
    asymmetric truncation, dirac, delta_orthogonal, sparse, torch layer-context specs).
    """
    s = parse(spec)
    d = s.model_dump()
    kind = d["kind"]
    out: dict[str, Any]
    inverse = {v: k for k, v in _NAMED.items()}
    if kind in inverse:
        out = {
            "class_name": inverse[kind],
            "config": {"seed": None, "input_axes": None, "output_axes": None},
        }
    elif kind in ("zeros", "ones"):
        out = {"class_name": kind.capitalize(), "config": {}}
    elif kind == "constant":
        out = {"class_name": "Constant", "config": {"value": d["value"]}}
    elif kind == "normal":
        out = {
            "class_name": "RandomNormal",
            "config": {"mean": d["mean"], "stddev": d["std"], "seed": None},
        }
    elif kind == "uniform":
        out = {
            "class_name": "RandomUniform",
            "config": {"minval": d["low"], "maxval": d["high"], "seed": None},
        }
    elif (
        kind == "truncated_normal"
        and d["bounds"] == "std"
        and d["low"] == -2.0
        and d["high"] == 2.0
    ):
        out = {
            "class_name": "TruncatedNormal",
            "config": {"mean": d["mean"], "stddev": d["std"], "seed": None},
        }
    elif kind == "variance_scaling" and d["mode"] != "fan_geo_avg":
        dist = {"normal": "untruncated_normal"}.get(d["distribution"], d["distribution"])
        out = _vs(d["scale"], d["mode"], dist)
    elif kind in ("xavier_uniform", "xavier_normal"):
        out = _vs(
            d["gain"] ** 2,
            "fan_avg",
            "uniform" if kind.endswith("uniform") else "untruncated_normal",
        )
    elif kind in ("kaiming_uniform", "kaiming_normal"):
        from initspec.gain import calculate_gain

        gain = calculate_gain(d["nonlinearity"], d["a"])
        out = _vs(
            gain**2, d["mode"], "uniform" if kind.endswith("uniform") else "untruncated_normal"
        )
    elif kind == "torch_linear_weight":
        out = _vs(1.0 / 3.0, d["mode"], "uniform")
    elif kind == "orthogonal":
        out = {"class_name": "Orthogonal", "config": {"gain": d["gain"], "seed": None}}
    elif kind == "eye":
        out = {"class_name": "Identity", "config": {"gain": d["gain"]}}
    else:
        raise SpecError(("kind",), kind, "Keras has no initializer with these semantics")
    if out["class_name"] == "VarianceScaling" and not math.isfinite(out["config"]["scale"]):
        raise SpecError(("scale",), out["config"]["scale"], "must be finite")
    return {"module": "keras.initializers", **out, "registered_name": None}
