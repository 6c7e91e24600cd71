"""Argument checks every layer shares: errors that name the argument and the value found.

One order everywhere: the value first, then the argument's name (as in
scikit-learn's ``check_scalar``). ``eval`` imports nothing of the project, so
``training`` and ``graphrec`` can use these too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["positive_int"]


def positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an ``int`` that is at least ``minimum``.

    Args:
        value: the argument to check.
        name: its name, for the message.
        minimum: the smallest value allowed.

    Raises:
        TypeError: ``value`` is not an integer (a ``bool`` is not one).
        ValueError: ``value < minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
