"""Sort-based array helpers shared by dedup, split, filters and triple assembly.

Bare ``np.unique`` (no ``return_*`` argument) takes numpy 2.4's hash path, which
is two orders of magnitude slower than sorting on tens of millions of int64
keys; everything here sorts instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_starts", "repeated_rows", "unique_rows", "unique_sorted"]


def group_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Start position of every run of equal values in a sorted array (int64, ``[num_groups]``)."""
    n = len(sorted_values)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    boundary = np.empty(n, dtype=bool)
    boundary[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=boundary[1:])
    return np.flatnonzero(boundary)


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """Distinct values, ascending (what ``np.unique(values)`` returns, by sorting)."""
    ordered = np.sort(values)
    return ordered[group_starts(ordered)]


def unique_rows(matrix: np.ndarray) -> np.ndarray:
    """Distinct rows of a 2-D integer array, in lexicographic order (first column most significant).

    Shapes:
        ``[n, k]`` -> ``[m, k]``, ``m <= n``.
    """
    if len(matrix) == 0:
        return matrix
    order = np.lexsort(matrix.T[::-1])
    ordered = matrix[order]
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.any(ordered[1:] != ordered[:-1], axis=1, out=keep[1:])
    return ordered[keep]


def repeated_rows(codes: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Kept rows whose code already appeared in an earlier kept row (the first one is not flagged).

    Shapes:
        ``codes``, ``keep``: ``[n]`` -> bool ``[n]``.
    """
    kept = np.flatnonzero(keep)
    first = np.zeros(len(codes), dtype=bool)
    if len(kept):
        _, first_index = np.unique(codes[kept], return_index=True)
        first[kept[first_index]] = True
    return keep & ~first
