"""What a spec class declares about its kind besides its fields.

Each kind's facts live on its class in ``initspec.specs`` (class variables typed here):
its Keras 3 classes (``KerasForm``, read by ``initspec.keras.from_keras`` and written by
``SpecBase.to_keras``), the framework equivalents the catalog shows (``Equivalents``) and the
configurations the conformance suite checks on every backend (``Example``). This module
imports nothing of initspec but the errors, so every other module may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from initspec.errors import SpecError

# Keys every Keras initializer config may carry that belong to no spec: seeds are replaced by
# initspec's per-parameter seeds, axes belong to the layout (both reported by from_keras).
KERAS_UNCARRIED = ("seed", "input_axes", "output_axes")


@dataclass(frozen=True)
class KerasForm:
    """One Keras 3 initializer class that means the same as a spec of the declaring kind.

    ``fields``: the Keras config fields, in Keras's order, with Keras's defaults (keras 3
    ``get_config``). A Keras field names the spec field of the same name or of that spelling
    among the kind's ``field_aliases`` (``stddev`` -> ``std``).
    ``fixed``: spec fields the Keras class fixes (``TruncatedNormal`` cuts at +-2 std):
    reading sets them, and only a spec with these values is written as this class.
    ``values``: Keras values -> spec values for fields whose spellings differ (Keras's
    ``"normal"`` is truncated); the first Keras spelling of a spec value is the one written.
    ``nulls``: keys written as null (what ``keras.initializers.serialize`` writes).
    ``aliases``: other names Keras accepts for the class; snake_case is always accepted.
    """

    class_name: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    nulls: tuple[str, ...] = ("seed",)
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """Every name that means this class: its own, snake_case, then the aliases."""
        snake = "".join("_" + c.lower() if c.isupper() else c for c in self.class_name)
        return (self.class_name, snake.lstrip("_"), *self.aliases)

    def read(self, config: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
        """Spec fields (canonical names) of a Keras config that holds exactly ``fields``."""
        for name, allowed in self.values.items():
            value = config[name]
            # Keras configs come from JSON: a list or dict here must be refused, not hashed.
            if not isinstance(value, str) or value not in allowed:
                raise SpecError(("config", name), value, f"allowed: {', '.join(allowed)}")
        out = {
            renames.get(name, name): self.values[name][value] if name in self.values else value
            for name, value in ((n, config[n]) for n in self.fields)
        }
        return {**out, **self.fixed}

    def write(self, spec: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any] | None:
        """The Keras config of a spec's fields, or None when this class cannot express them."""
        if any(spec[name] != value for name, value in self.fixed.items()):
            return None
        config: dict[str, Any] = {}
        for name in self.fields:
            value = spec[renames.get(name, name)]
            if name in self.values:
                spellings = [k for k, v in self.values[name].items() if v == value]
                if not spellings:
                    return None
                value = spellings[0]
            config[name] = value
        return {**config, **dict.fromkeys(self.nulls)}


class Equivalents(NamedTuple):
    """The catalog's row for a kind: torch, jax / flax and Keras 3 spellings, and the trap.

    ``keras=None``: written from ``to_keras`` of the kind's defaults ("-" if refused).
    """

    torch: str = "-"
    jax: str = "-"
    keras: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Example:
    """A configuration the conformance suite checks on every backend (tests/conformance).

    ``fields``: the spec's fields besides ``kind`` (none: the defaults). ``on``: the layers it
    is checked on, named as in the harness's ``SHAPES`` ("linear", "dense", "conv",
    "conv_flax", "conv_transpose", "embedding", "bias"); ``None``: a random kind, checked on
    every layer (the bias too when the kind does not use fans) for moments and KS.
    """

    fields: Mapping[str, Any] = field(default_factory=dict)
    on: tuple[str, ...] | None = None
