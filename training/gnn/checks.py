"""Array checks and fingerprints of the GNN learners (scalar arguments: :mod:`eval.checks`).

The value comes first, then its name, as in :mod:`eval.checks`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["digest", "feature_array"]


def digest(*arrays: np.ndarray) -> str:
    """Short sha256 of the arrays' bytes (checkpoint fingerprints)."""
    hasher = hashlib.sha256()
    for array in arrays:
        hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()[:16]


def feature_array(features: Any, name: str, rows: int, *, allow_missing_rows: bool) -> np.ndarray:
    """Validate a ``[rows, d]`` float feature matrix; all-NaN rows pass when ``allow_missing_rows``."""
    if not isinstance(features, np.ndarray):
        raise TypeError(f"{name} must be a numpy array [{rows}, d], got {type(features).__name__}")
    if features.ndim != 2 or features.shape[0] != rows:
        raise ValueError(f"{name} must have shape [{rows}, d] (one row per node), got {features.shape}")
    if not np.issubdtype(features.dtype, np.floating):
        raise ValueError(f"{name} must be floating point, got dtype {features.dtype}")
    features = features.astype(np.float32, copy=False)
    finite = np.isfinite(features)
    bad = ~finite.all(axis=1)
    if allow_missing_rows:
        bad &= ~np.isnan(features).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        rule = "finite values or be all NaN (no text)" if allow_missing_rows else "finite values"
        raise ValueError(f"{name} row {row} holds non-finite values; every row must hold {rule}")
    return features
