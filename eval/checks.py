"""Argument checks every layer shares: errors that name the argument and the value found.

One order everywhere: the value first, then the argument's name (as in
scikit-learn's ``check_scalar``). A value of the wrong type is a ``TypeError``; one of
the right type out of range (or not finite) is a ``ValueError``. ``eval`` imports
nothing of the project, so ``training`` and ``graphrec`` use these too (``kg`` may
import nothing of the project, eval included; its build settings are checked by
``kg.config.coerce_field`` and ``BuildConfig``).
"""

from __future__ import annotations

import math
from typing import Any, Collection, Optional

import numpy as np

__all__ = ["choice", "int_or_auto", "number", "positive_float", "positive_int"]


def positive_int(value: Any, name: str, *, minimum: int = 1, maximum: Optional[int] = None) -> int:
    """``value`` as an ``int`` that is at least ``minimum`` (and at most ``maximum``).

    Args:
        value: the argument to check.
        name: its name, for the message.
        minimum: the smallest value allowed.
        maximum: the largest value allowed (``None``: no bound).

    Raises:
        TypeError: ``value`` is not an integer (a ``bool`` is not one).
        ValueError: ``value < minimum`` or ``value > maximum``.
    """
    bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer {bounds}, got {type(value).__name__} {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def int_or_auto(value: Any, name: str, *, minimum: int = 1) -> int | str:
    """``"auto"`` as it is, else ``value`` as an ``int`` that is at least ``minimum``.

    Raises:
        TypeError: ``value`` is neither ``"auto"`` nor an integer.
        ValueError: ``value < minimum``.
    """
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum} or 'auto', got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} or 'auto', got {value!r}")
    return int(value)


def number(
    value: Any,
    name: str,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_open: bool = False,
    high_open: bool = False,
    reason: str = "",
) -> float:
    """``value`` as a finite ``float`` within the bounds given.

    Args:
        value: the argument to check.
        name: its name, for the message.
        low, high: the bounds (``None``: none on that side).
        low_open, high_open: exclude the bound itself (``> low`` instead of ``>= low``).
        reason: appended to the message, e.g. ``" (it keeps the solve invertible)"``.

    Raises:
        TypeError: ``value`` is not a real number (a ``bool`` is not one).
        ValueError: ``value`` is NaN, infinite or out of bounds.
    """
    if low is not None and high is not None:
        bounds = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        bounds = f" {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        bounds = f" {'<' if high_open else '<='} {high:g}"
    else:
        bounds = ""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a finite number{bounds}{reason}, got {type(value).__name__} {value!r}")
    value = float(value)
    if (
        not math.isfinite(value)
        or (low is not None and (value < low or (low_open and value == low)))
        or (high is not None and (value > high or (high_open and value == high)))
    ):
        raise ValueError(f"{name} must be a finite number{bounds}{reason}, got {value!r}")
    return value


def positive_float(value: Any, name: str, *, allow_zero: bool = False, reason: str = "") -> float:
    """``value`` as a finite ``float`` ``> 0`` (``>= 0`` with ``allow_zero``); see :func:`number`."""
    return number(value, name, low=0.0, low_open=not allow_zero, reason=reason)


def choice(value: Any, name: str, choices: Collection[Any]) -> Any:
    """``value`` itself, if it is one of ``choices``.

    Raises:
        ValueError: it is not (the message lists the choices).
    """
    if isinstance(value, (list, dict, set)) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
