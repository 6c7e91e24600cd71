"""Learners (text encoder, ALS, item-KNN/EASE, GNNs, hybrid ranker) and the training pipeline.

The names are imported from :mod:`training.base` on first use (PEP 562), so that
``import training.config`` (what ``graphrec.train --help`` needs) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GraphrecWarning": "training.base",
    "Learner": "training.base",
    "ModelFitError": "training.base",
    "NotFittedError": "training.base",
    "resolve_device": "training.base",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
