"""Head/tail split and popularity deciles, independent of internal indices (docs/PROTOCOL.md).

Items are ordered by train interaction count, descending; ties are broken by the
item's external id, ascending: numeric order when every id parses as an integer,
string (code point) order otherwise. Because the tie-break uses external ids, the
same data gives the same head and deciles however internal indices were assigned.

* head: the first ``ceil(0.2 * n_items)`` items of that order; tail: the rest,
  items with no train interaction included.
* deciles: that order cut into 10 near-equal consecutive parts
  (``numpy.array_split`` sizes: the first ``n_items % 10`` deciles hold one more
  item); decile 0 holds the most popular items. With fewer than 10 items some
  deciles are empty.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

__all__ = [
    "LONGTAIL_BINS", "N_DECILES", "binned_shares", "decile_of", "head_size", "head_tail", "popularity_deciles",
    "popularity_order",
]  # fmt: skip

N_DECILES = 10

_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")


def _check_counts(train_counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or not len(counts):
        raise ValueError(f"train_counts must be a non-empty 1-d array over items, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.number) or (counts < 0).any():
        raise ValueError("train_counts must hold non-negative numbers")
    return counts


def _id_ranks(item_ids: Sequence, n_items: int) -> np.ndarray:
    """Rank of every item by external id (ascending); equal ids keep index order."""
    ids = [str(i) for i in item_ids]
    if len(ids) != n_items:
        raise ValueError(f"item_ids has {len(ids)} entries, expected one per item ({n_items})")
    if all(_INTEGER.match(i) for i in ids):
        keys = np.array([int(i) for i in ids], dtype=object)
        # Python ints compare exactly at any size; int64 would overflow on long numeric ids.
        order = np.array(sorted(range(n_items), key=keys.__getitem__), dtype=np.int64)
    else:
        order = np.argsort(np.array(ids, dtype=str), kind="stable")
    ranks = np.empty(n_items, dtype=np.int64)
    ranks[order] = np.arange(n_items)
    return ranks


def popularity_order(train_counts: np.ndarray, item_ids: Sequence | None = None) -> np.ndarray:
    """Item indices from most to least popular, ties by external id (see module docstring).

    Args:
        train_counts: train interactions per item, ``[n_items]``.
        item_ids: external item ids, ``[n_items]``; ``None`` breaks ties by
            internal index (only for callers that have no ids).

    Returns:
        int64 ``[n_items]``: a permutation of ``0..n_items - 1``.

    Raises:
        ValueError: ``train_counts`` is empty, not 1-d or negative, or
            ``item_ids`` has the wrong length.
    """
    counts = _check_counts(train_counts)
    n_items = len(counts)
    tie = np.arange(n_items) if item_ids is None else _id_ranks(item_ids, n_items)
    return np.lexsort((tie, -counts.astype(np.float64))).astype(np.int64)


def head_size(n_items: int) -> int:
    """Number of head items: ``ceil(0.2 * n_items)``."""
    # ceil(n / 5) in integers: in floating point 0.2 * n can land just above a whole number.
    return -(-int(n_items) // 5)


def head_tail(train_counts: np.ndarray, item_ids: Sequence) -> np.ndarray:
    """Which items form the head (docs/PROTOCOL.md).

    Args:
        train_counts: train interactions per item, ``[n_items]``; ``n_items`` is the
            whole catalogue.
        item_ids: external item ids, ``[n_items]``, for the tie-break.

    Returns:
        bool ``is_head`` ``[n_items]``: true for the first ``ceil(0.2 * n_items)``
        items of :func:`popularity_order`; the tail is ``~is_head``.
    """
    order = popularity_order(train_counts, item_ids)
    is_head = np.zeros(len(order), dtype=bool)
    is_head[order[: head_size(len(order))]] = True
    return is_head


def popularity_deciles(train_counts: np.ndarray, item_ids: Sequence) -> np.ndarray:
    """Popularity decile of every item: 0 (most popular tenth) to 9 (least popular).

    Args:
        train_counts: train interactions per item, ``[n_items]``.
        item_ids: external item ids, ``[n_items]``, for the tie-break.

    Returns:
        int64 ``[n_items]`` in ``0..9``; decile sizes follow ``numpy.array_split``.
    """
    return decile_of(popularity_order(train_counts, item_ids))


def decile_of(order: np.ndarray) -> np.ndarray:
    """Decile of every item given :func:`popularity_order`'s ``order`` (see :func:`popularity_deciles`)."""
    decile = np.empty(len(order), dtype=np.int64)
    for d, members in enumerate(np.array_split(order, N_DECILES)):
        decile[members] = d
    return decile


LONGTAIL_BINS = 40
"""Bins of the long-tail curve: a catalogue of thousands of items is drawn as this many points."""


def binned_shares(
    train_counts: np.ndarray, rec_counts: np.ndarray, order: np.ndarray, n_bins: int = LONGTAIL_BINS
) -> dict[str, list]:
    """The long-tail curve in ``n_bins`` consecutive popularity bins (equal item counts).

    Args:
        train_counts: train interactions per item, ``[n_items]``.
        rec_counts: times each item was recommended, ``[n_items]``.
        order: :func:`popularity_order` of ``train_counts``.
        n_bins: number of bins (fewer when there are fewer items).

    Returns:
        Lists of equal length, one entry per bin, most popular bin first:
        ``first_rank``/``last_rank`` (1-based popularity ranks the bin covers),
        ``train_share`` and ``rec_share`` (the bin's share of all train interactions
        and of all recommendation slots; each list sums to 1 when there is any).
    """
    order = np.asarray(order, dtype=np.int64)
    train = np.asarray(train_counts, dtype=np.float64)[order]
    recs = np.asarray(rec_counts, dtype=np.float64)[order]
    bins = [b for b in np.array_split(np.arange(len(order)), max(1, min(int(n_bins), len(order)))) if len(b)]
    train_total, rec_total = max(train.sum(), 1.0), max(recs.sum(), 1.0)
    return {
        "first_rank": [int(b[0]) + 1 for b in bins],
        "last_rank": [int(b[-1]) + 1 for b in bins],
        "train_share": [float(train[b].sum() / train_total) for b in bins],
        "rec_share": [float(recs[b].sum() / rec_total) for b in bins],
    }
