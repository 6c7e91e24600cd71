"""The metrics of docs/PROTOCOL.md as pure functions over plain arrays.

This module is the one place in the project where a metric is defined. The
evaluator turns ranked lists into *hit matrices* and calls these functions;
nothing else re-implements them.

Conventions:

* ``hits`` is a boolean matrix ``[n_users, k]``: ``hits[u, j]`` is true when the
  item a user was shown at rank ``j + 1`` is one of their test items. ``k`` is the
  cut-off (a short list is padded with ``False``).
* ``n_relevant`` is ``[n_users]``: how many test items each user has (>= 1 for
  every row the evaluator passes; rows with 0 give 0, never a division by zero).
* Per-user functions return float64 ``[n_users]``; the figure reported is their
  mean over evaluated users. Catalogue-level functions (coverage, Gini) take
  ``rec_counts``, how often each item was recommended, ``[n_items]``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "average_precision",
    "coverage",
    "gini",
    "group_recall",
    "hit_rate",
    "long_tail_share",
    "ndcg",
    "precision",
    "recall",
    "reciprocal_rank",
]


def _check_hits(hits: np.ndarray, n_relevant: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2:
        raise ValueError(f"hits must be a 2-d [n_users, k] matrix, got shape {hits.shape}")
    if n_relevant is None:
        return hits, None
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    if n_relevant.shape != (hits.shape[0],):
        raise ValueError(f"n_relevant must have shape ({hits.shape[0]},), got {n_relevant.shape}")
    if (n_relevant < hits.sum(axis=1)).any():
        raise ValueError("n_relevant is smaller than the number of hits for some user")
    return hits, n_relevant


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def recall(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Recall@K per user: hits / number of test items.

    Args:
        hits: bool ``[n_users, k]`` hit matrix.
        n_relevant: test items per user, ``[n_users]``.

    Returns:
        float64 ``[n_users]`` in [0, 1].
    """
    hits, n_relevant = _check_hits(hits, n_relevant)
    return _safe_divide(hits.sum(axis=1), n_relevant)


def precision(hits: np.ndarray) -> np.ndarray:
    """Precision@K per user: hits / K (a short list still divides by K).

    Returns:
        float64 ``[n_users]`` in [0, 1].
    """
    hits, _ = _check_hits(hits)
    return hits.sum(axis=1) / max(hits.shape[1], 1)


def hit_rate(hits: np.ndarray) -> np.ndarray:
    """HitRate@K per user: 1 when at least one test item is in the top K, else 0."""
    hits, _ = _check_hits(hits)
    return hits.any(axis=1).astype(np.float64)


def reciprocal_rank(hits: np.ndarray) -> np.ndarray:
    """MRR@K per user: 1 / rank of the first hit (ranks from 1), 0 without a hit."""
    hits, _ = _check_hits(hits)
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def ndcg(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """NDCG@K per user with binary gains.

    DCG = sum over hits of 1 / log2(rank + 1) (rank from 1); the ideal DCG puts
    ``min(n_relevant, K)`` hits at the top.

    Returns:
        float64 ``[n_users]`` in [0, 1]; 0 for a user with no test items.
    """
    hits, n_relevant = _check_hits(hits, n_relevant)
    k = hits.shape[1]
    discounts = _discounts(k)
    dcg = hits @ discounts
    ideal_cumulative = np.concatenate([[0.0], np.cumsum(discounts)])
    ideal = ideal_cumulative[np.minimum(n_relevant, k).astype(np.int64)]
    return _safe_divide(dcg, ideal)


def average_precision(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """AP@K per user (MAP@K is its mean).

    AP@K = sum over hit ranks r of Precision@r, divided by ``min(n_relevant, K)``,
    so a perfect ranking scores 1 whenever it is achievable.

    Returns:
        float64 ``[n_users]`` in [0, 1].
    """
    hits, n_relevant = _check_hits(hits, n_relevant)
    k = hits.shape[1]
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    return _safe_divide((precision_at * hits).sum(axis=1), np.minimum(n_relevant, k))


def group_recall(group_hits: np.ndarray, group_relevant: np.ndarray) -> tuple[float, int]:
    """Recall restricted to a group of items (the tail, a popularity decile).

    Over users with at least one test item in the group, the mean of
    ``group hits / group test items``. TailRecall@K is this with the tail as the
    group; per-decile recall is this with one popularity decile as the group.

    Args:
        group_hits: ``[n_users]`` hits that fall in the group.
        group_relevant: ``[n_users]`` test items that fall in the group.

    Returns:
        ``(recall, n_users)``: the mean (NaN when no user has a test item in
        the group) and how many users it averages over.
    """
    group_hits = np.asarray(group_hits, dtype=np.float64)
    group_relevant = np.asarray(group_relevant, dtype=np.float64)
    if group_hits.shape != group_relevant.shape:
        raise ValueError(f"group_hits {group_hits.shape} and group_relevant {group_relevant.shape} differ in shape")
    if (group_hits > group_relevant).any():
        raise ValueError("group_hits exceeds group_relevant for some user")
    counted = group_relevant > 0
    n_users = int(counted.sum())
    if not n_users:
        return float("nan"), 0
    return float((group_hits[counted] / group_relevant[counted]).mean()), n_users


def long_tail_share(n_tail_listed: np.ndarray, list_length: np.ndarray) -> np.ndarray:
    """APLT@K per user: fraction of the user's list that is tail items.

    The denominator is the list's own length (at most K); an empty list scores 0.

    Returns:
        float64 ``[n_users]`` in [0, 1].
    """
    n_tail_listed = np.asarray(n_tail_listed, dtype=np.float64)
    list_length = np.asarray(list_length, dtype=np.float64)
    if (n_tail_listed > list_length).any():
        raise ValueError("n_tail_listed exceeds list_length for some user")
    return _safe_divide(n_tail_listed, list_length)


def _check_counts(rec_counts: np.ndarray) -> np.ndarray:
    rec_counts = np.asarray(rec_counts)
    if rec_counts.ndim != 1 or not len(rec_counts):
        raise ValueError(f"rec_counts must be a non-empty 1-d array over items, got shape {rec_counts.shape}")
    if (rec_counts < 0).any():
        raise ValueError("rec_counts must be non-negative")
    return rec_counts.astype(np.float64)


def coverage(rec_counts: np.ndarray) -> float:
    """Coverage@K: distinct items recommended to anyone / n_items (``len(rec_counts)``)."""
    rec_counts = _check_counts(rec_counts)
    return float((rec_counts > 0).sum() / len(rec_counts))


def gini(rec_counts: np.ndarray) -> float:
    """Gini@K of how often each item was recommended, over the whole catalogue.

    With counts sorted ascending ``x_1 <= ... <= x_n``,
    ``G = sum_i (2i - n - 1) x_i / ((n - 1) sum_i x_i)``: 0 when every item is
    recommended equally often, exactly 1 when a single item takes every slot
    (the ``n - 1`` normalisation, rather than ``n``, makes that maximum 1). No
    recommendation at all, or a one-item catalogue, gives 0.

    Returns:
        float in [0, 1].
    """
    counts = np.sort(_check_counts(rec_counts))
    n = len(counts)
    total = counts.sum()
    if n < 2 or total == 0:
        return 0.0
    weights = 2.0 * np.arange(1, n + 1) - n - 1
    return float((weights @ counts) / ((n - 1) * total))
