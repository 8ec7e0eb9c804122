"""``calculate_gain``: the recommended gain of a nonlinearity, exactly as ``torch.nn.init``."""

from __future__ import annotations

import math

from initspec.errors import InitSpecError, _short_repr

_LINEAR_NAMES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)

NONLINEARITIES: tuple[str, ...] = (*_LINEAR_NAMES, "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Gain of ``torch.nn.init.calculate_gain`` (torch 2.13, ``init.py:173-244``).

    linear/conv*/sigmoid -> 1 (an int, as torch returns), tanh -> 5/3, relu -> sqrt(2)
    (``param`` ignored), leaky_relu -> sqrt(2 / (1 + slope**2)) with slope 0.01 when
    ``param`` is None, selu -> 3/4. Anything else raises, as torch does, a ``ValueError``
    (here the ``InitSpecError`` subclass of it).
    """
    if nonlinearity in _LINEAR_NAMES or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            # bool is checked first because True is an int; torch rejects it too.
            negative_slope = param
        else:
            raise InitSpecError(f"negative_slope {_shown(param)} not a valid number")
        try:
            return math.sqrt(2.0 / (1 + negative_slope**2))
        except OverflowError:  # |slope| > ~1e154: slope**2 overflows where the gain does not
            try:
                return math.sqrt(2.0) / math.hypot(1.0, float(negative_slope))
            except OverflowError:
                raise InitSpecError(
                    f"negative_slope {_shown(param)} is beyond the float64 range"
                ) from None
    if nonlinearity == "selu":
        return 3.0 / 4
    raise InitSpecError(
        f"Unsupported nonlinearity {_shown(nonlinearity)}; allowed: {', '.join(NONLINEARITIES)}"
    )


def _shown(value: object) -> str:
    if isinstance(value, str) and value.isprintable() and len(value) <= 80:
        return value
    return _short_repr(value)
