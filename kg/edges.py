"""Repeated events become one edge: the deduplicated (user, item) pairs.

Repeated (user, item) events collapse into one pair: ``count`` = number of
events, ``weight`` = sum of the per-event weights (accumulated in float64),
``timestamp`` = the latest event (NaN when the log has no timestamps). Pairs
come out sorted by (user, item) internal index, the order the split draws its
random keys in. One sort of an int64 key, then ``reduceat``; no Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kg.arrays import group_starts

__all__ = ["Events", "Pairs", "dedup_events"]


@dataclass
class Pairs:
    """Distinct (user, item) pairs sorted by (user, item).

    Shapes:
        every field: ``[num_pairs]`` (user/item int32, weight float32, count int32,
        timestamp float64).
    """

    user: np.ndarray
    item: np.ndarray
    weight: np.ndarray
    count: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, index: np.ndarray) -> "Pairs":
        """The pairs at ``index`` (an int array or boolean mask), order kept."""
        return Pairs(self.user[index], self.item[index], self.weight[index], self.count[index], self.timestamp[index])

    @staticmethod
    def concat(parts: list["Pairs"]) -> "Pairs":
        return Pairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("user", "item", "weight", "count", "timestamp")))

    def key(self, num_items: int) -> np.ndarray:
        """int64 ``user * num_items + item``, one number per pair."""
        return self.user.astype(np.int64) * max(num_items, 1) + self.item


_BLOCK = 1 << 22


def _sort_with_order(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sorted key, order)`` for non-negative int64 keys; the key array is reused.

    When the key and the row position fit in 63 bits together, they are packed
    into one int64 and sorted in place: a plain sort is several times faster
    than ``argsort`` and needs no second key array. Otherwise ``argsort``.
    Equal keys come out in row order either way (the position breaks ties),
    which keeps the result independent of the sort algorithm.
    """
    n = len(key)
    position_bits = max(int(n - 1).bit_length(), 1)
    key_bits = max(int(key.max()).bit_length(), 1) if n else 1
    if key_bits + position_bits > 63:
        order = np.argsort(key, kind="stable")
        return key[order], order
    mask = (1 << position_bits) - 1
    order = np.empty(n, dtype=np.int32 if n < np.iinfo(np.int32).max else np.int64)
    key <<= position_bits
    # In blocks, so that no full-length int64 temporary exists beside the key.
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        key[start:stop] |= np.arange(start, stop, dtype=np.int64)
    key.sort()
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        order[start:stop] = key[start:stop] & mask
    key >>= position_bits
    return key, order


def _gather_reduce(ufunc: np.ufunc, values: np.ndarray, order: np.ndarray, starts: np.ndarray, dtype) -> np.ndarray:
    """``ufunc.reduceat(values[order], starts)`` computed in blocks of about ``_BLOCK`` rows.

    The one-shot form would hold the gathered copy and its ``dtype`` cast of
    every event at once; blocks keep those temporaries small.
    """
    n, groups = len(order), len(starts)
    out = np.empty(groups, dtype=dtype)
    g = 0
    while g < groups:
        first_row = int(starts[g])
        g_end = max(int(np.searchsorted(starts, first_row + _BLOCK, side="left")), g + 1)
        last_row = int(starts[g_end]) if g_end < groups else n
        block = values[order[first_row:last_row]].astype(dtype, copy=False)
        out[g:g_end] = ufunc.reduceat(block, starts[g:g_end] - first_row)
        g = g_end
    return out


@dataclass
class Events:
    """Per-event arrays, handed to :func:`dedup_events`, which consumes them.

    Shapes:
        every field ``[num_events]``: user/item int32 indices, weight float32,
        timestamp float64 unix seconds or ``None``.
    """

    user: np.ndarray | None
    item: np.ndarray | None
    weight: np.ndarray | None
    timestamp: np.ndarray | None

    def pop(self, name: str) -> np.ndarray | None:
        value = getattr(self, name)
        setattr(self, name, None)
        return value


def dedup_events(events: Events, *, num_items: int) -> Pairs:
    """Collapse per-event arrays into distinct pairs (see the module docstring).

    The arrays are taken out of ``events`` (its fields become ``None``) and each
    is freed as soon as it is folded in, so the peak stays near the sort's two
    int64 keys rather than every per-event array at once.

    Args:
        events: internal indices, weights and timestamps per event.
        num_items: size of the item index space (for the pair key).

    Shapes:
        inputs ``[num_events]``; output ``[num_pairs]``.
    """
    user, item = events.pop("user"), events.pop("item")
    n = len(user)
    if n == 0:
        empty_f = np.empty(0, np.float64)
        return Pairs(np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32), np.empty(0, np.int32), empty_f)
    key = user.astype(np.int64) * max(num_items, 1) + item
    del user, item  # the pairs' user and item come back from the key
    key, order = _sort_with_order(key)
    starts = group_starts(key).astype(np.int32 if n < np.iinfo(np.int32).max else np.int64)
    unique = key[starts]
    del key
    count = np.diff(starts, append=starts.dtype.type(n)).astype(np.int32)
    summed = _gather_reduce(np.add, events.pop("weight"), order, starts, np.float64).astype(np.float32)
    timestamp = events.pop("timestamp")
    if timestamp is None:
        latest = np.full(len(starts), np.nan)
    else:
        latest = _gather_reduce(np.maximum, timestamp, order, starts, np.float64)
        del timestamp
    del order, starts
    pair_user = (unique // max(num_items, 1)).astype(np.int32)
    pair_item = (unique % max(num_items, 1)).astype(np.int32)
    return Pairs(pair_user, pair_item, summed, count, latest)
