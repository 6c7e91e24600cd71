"""Package attributes imported from their modules on first use (PEP 562).

``kg``, ``eval``, ``training`` and ``graphrec`` list their public names in a dict
``{name: module}``; :func:`lazy_attributes` turns it into the package's
``__getattr__`` and ``__dir__``, so that importing a package (what a verb's
``--help`` needs) loads none of torch, pandas or scipy.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``names`` live in the given modules.

    Example (a package's ``__init__.py``)::

        _LAZY = {"Graph": "kg.graph"}
        __all__ = sorted(_LAZY)
        __getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name]), name)
        setattr(sys.modules[package], name, value)  # resolved once; later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
