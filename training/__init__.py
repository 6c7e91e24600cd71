"""Learners (text encoder, ALS, item-KNN/EASE, GNNs, hybrid ranker) and the training pipeline.

The names are imported from :mod:`training.base` on first use (PEP 562), so that
``import training.pipeline.config`` (what ``graphrec.train --help`` needs) does not load torch.
"""

from __future__ import annotations

from kg.lazy import lazy_attributes

_LAZY = {
    "GraphrecWarning": "training.base",
    "Learner": "training.base",
    "ModelFitError": "training.base",
    "NotFittedError": "training.base",
    "resolve_device": "training.base",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
