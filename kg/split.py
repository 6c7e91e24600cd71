"""Train / validation / test splits of deduplicated pairs (docs/PROTOCOL.md).

Methods, all vectorised (one Arrow multi-key sort; no loop over users):

* ``random``: pairs sorted by (user, item) index draw
  ``keys = np.random.default_rng(seed).random(n_pairs)``; each user's pairs are
  ordered by key and the first ``ceil(train_fraction * n_u)`` go to train, the
  rest to test.
* ``temporal``: each user's pairs are ordered by their latest timestamp (ties
  by item index); the latest ``n_u - ceil(train_fraction * n_u)`` go to test.
* ``given``: the test file is the test split; a pair present in both files is
  kept in test and removed from train (counted and reported).

Validation is then carved from each user's train pairs the same way: randomly
with ``np.random.default_rng(seed + 1)`` (``random`` and ``given``) or by time
(``temporal``), keeping ``ceil((1 - valid_fraction) * n_train)`` in train;
``valid_fraction = 0`` gives no validation split.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kg.arrays import group_starts
from kg.edges import Pairs
from kg.graph import SPLIT_CODES

__all__ = ["held_out", "assign_splits", "merge_given"]

TRAIN, VALID, TEST = SPLIT_CODES["train"], SPLIT_CODES["valid"], SPLIT_CODES["test"]


def held_out(user: np.ndarray, order_key: np.ndarray, keep_fraction: float, *, tie: np.ndarray | None = None) -> np.ndarray:
    """Mask of the pairs beyond each user's first ``ceil(keep_fraction * n_u)`` by ``order_key``.

    Args:
        user: user index per pair.
        order_key: what orders a user's pairs (random keys, timestamps).
        keep_fraction: share of each user's pairs kept.
        tie: secondary key for equal ``order_key`` values (item index).

    Shapes:
        all ``[n_pairs]``; returns bool ``[n_pairs]``.
    """
    return _beyond_first(user, _order_within_users(user, order_key, tie), keep_fraction)


def _order_within_users(user: np.ndarray, order_key: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray:
    """Permutation sorting pairs by (user, order_key[, tie]): one Arrow multi-key sort."""
    columns = {"user": user, "key": order_key}
    sort_keys = [("user", "ascending"), ("key", "ascending")]
    if tie is not None:
        columns["tie"] = tie
        sort_keys.append(("tie", "ascending"))
    return pc.sort_indices(pa.table(columns), sort_keys=sort_keys).to_numpy()


def _beyond_first(user: np.ndarray, order: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Mask of the pairs past each user's first ``ceil(keep_fraction * n_u)`` in ``order``."""
    n = len(user)
    if n == 0:
        return np.zeros(0, dtype=bool)
    starts = group_starts(user[order])
    sizes = np.diff(np.append(starts, n))
    # int32 positions: half the memory of the default int64 on tens of millions of pairs.
    index = np.int32 if n < np.iinfo(np.int32).max else np.int64
    position = np.arange(n, dtype=index)
    position -= np.repeat(starts.astype(index), sizes)
    # Float ceil exactly as docs/PROTOCOL.md writes it: ceil(0.8 * n).
    kept = np.ceil(keep_fraction * sizes.astype(np.float64)).astype(index)
    out = np.empty(n, dtype=bool)
    out[order] = position >= np.repeat(kept, sizes)
    return out


def _random_held_out(user: np.ndarray, keep_fraction: float, seed: int) -> np.ndarray:
    keys = np.random.default_rng(seed).random(len(user))
    order = _order_within_users(user, keys)
    del keys  # freed before the positions are computed
    return _beyond_first(user, order, keep_fraction)


def _temporal_held_out(pairs: Pairs, rows: np.ndarray, keep_fraction: float) -> np.ndarray:
    return held_out(pairs.user[rows], pairs.timestamp[rows], keep_fraction, tie=pairs.item[rows])


def assign_splits(
    pairs: Pairs,
    *,
    method: str,
    seed: int,
    train_fraction: float,
    valid_fraction: float,
    given_test: np.ndarray | None = None,
) -> np.ndarray:
    """Split code per pair (:data:`kg.graph.SPLIT_CODES`).

    Args:
        pairs: deduplicated pairs sorted by (user, item).
        method: ``random``, ``temporal`` or ``given``.
        seed: random split seed (validation uses ``seed + 1``).
        train_fraction: random/temporal share of each user's pairs not in test.
        valid_fraction: share of each user's train pairs moved to validation.
        given_test: with ``given``, the mask of test pairs.

    Returns:
        int8 codes, ``[num_pairs]``.

    Raises:
        ValueError: ``temporal`` without timestamps, ``given`` without a mask, unknown method.
    """
    n = len(pairs)
    split = np.full(n, TRAIN, dtype=np.int8)
    if method == "random":
        split[_random_held_out(pairs.user, train_fraction, seed)] = TEST
    elif method == "temporal":
        if n and not np.isfinite(pairs.timestamp).all():
            raise ValueError("the temporal split needs a timestamp on every interaction; the log has none (or some missing)")
        split[_temporal_held_out(pairs, np.arange(n), train_fraction)] = TEST
    elif method == "given":
        if given_test is None or len(given_test) != n:
            raise ValueError("the given split needs a test mask with one entry per pair")
        split[given_test] = TEST
    else:
        raise ValueError(f"unknown split method {method!r}; expected random, temporal or given")
    if valid_fraction > 0:
        train_rows = np.flatnonzero(split == TRAIN)
        keep_fraction = 1.0 - valid_fraction
        if method == "temporal":
            valid = _temporal_held_out(pairs, train_rows, keep_fraction)
        else:
            valid = _random_held_out(pairs.user[train_rows], keep_fraction, seed + 1)
        split[train_rows[valid]] = VALID
    return split


def merge_given(train: Pairs, test: Pairs, *, num_items: int) -> tuple[Pairs, np.ndarray, int]:
    """Join the train and test files' pairs; a pair in both stays in test only.

    Returns:
        ``(pairs, test_mask, overlap)``: all pairs sorted by (user, item), the
        mask of test pairs, and how many train pairs were dropped because the
        test file has them too.
    """
    train_key, test_key = train.key(num_items), test.key(num_items)
    duplicate = np.isin(train_key, test_key, assume_unique=True)
    overlap = int(duplicate.sum())
    kept = train.take(~duplicate)
    merged = Pairs.concat([kept, test])
    is_test = np.concatenate([np.zeros(len(kept), bool), np.ones(len(test), bool)])
    order = np.argsort(merged.key(num_items), kind="stable")
    return merged.take(order), is_test[order], overlap
