"""Splits: no leakage, docs/PROTOCOL.md sizes, agreement with a per-user reference, temporal, given."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kg.edges import Pairs
from kg.split import assign_splits, merge_given

TRAIN, VALID, TEST = 0, 1, 2


def make_pairs(sizes, seed=0) -> Pairs:
    """Users with the given numbers of distinct items, sorted by (user, item)."""
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
    item = np.concatenate([np.sort(rng.choice(1000, n, replace=False)) for n in sizes]).astype(np.int32)
    n = len(user)
    return Pairs(user, item, np.ones(n, np.float32), np.ones(n, np.int32), rng.integers(0, 50, n).astype(np.float64))


def reference_random(pairs: Pairs, seed: int, fraction: float, valid_fraction: float) -> np.ndarray:
    """The brief's algorithm, written per user with a loop."""
    split = np.zeros(len(pairs), np.int8)
    keys = np.random.default_rng(seed).random(len(pairs))
    for u in np.unique(pairs.user):
        rows = np.flatnonzero(pairs.user == u)
        ranked = rows[np.argsort(keys[rows], kind="stable")]
        split[ranked[math.ceil(fraction * len(rows)):]] = TEST
    train_rows = np.flatnonzero(split == TRAIN)
    keys = np.random.default_rng(seed + 1).random(len(train_rows))
    for u in np.unique(pairs.user[train_rows]):
        local = np.flatnonzero(pairs.user[train_rows] == u)
        ranked = train_rows[local[np.argsort(keys[local], kind="stable")]]
        split[ranked[math.ceil((1 - valid_fraction) * len(local)):]] = VALID
    return split


sizes_strategy = st.lists(st.integers(1, 30), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(sizes_strategy, st.integers(0, 10_000), st.sampled_from([0.5, 0.8, 0.9, 1.0]), st.sampled_from([0.0, 0.2, 0.5]))
def test_random_split_is_a_partition_with_protocol_sizes(sizes, seed, fraction, valid_fraction):
    pairs = make_pairs(sizes, seed)
    split = assign_splits(pairs, method="random", seed=seed, train_fraction=fraction, valid_fraction=valid_fraction)
    # No leakage: every pair is in exactly one split (one code), and codes are only these three.
    assert set(np.unique(split).tolist()) <= {TRAIN, VALID, TEST}
    for u, n in enumerate(sizes):
        codes = split[pairs.user == u]
        n_train_all = math.ceil(fraction * n)
        assert (codes == TEST).sum() == n - n_train_all
        assert (codes == TRAIN).sum() == math.ceil((1 - valid_fraction) * n_train_all)
    assert np.array_equal(split, reference_random(pairs, seed, fraction, valid_fraction))


def test_random_split_is_deterministic_and_seeded():
    pairs = make_pairs([10] * 50)
    a = assign_splits(pairs, method="random", seed=2026, train_fraction=0.8, valid_fraction=0.2)
    b = assign_splits(pairs, method="random", seed=2026, train_fraction=0.8, valid_fraction=0.2)
    c = assign_splits(pairs, method="random", seed=7, train_fraction=0.8, valid_fraction=0.2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # 10 items: ceil(8) = 8 stay, 2 test; of the 8, ceil(6.4) = 7 train, 1 valid.
    assert np.bincount(a, minlength=3).tolist() == [350, 50, 100]


@settings(max_examples=40, deadline=None)
@given(sizes_strategy, st.integers(0, 1000))
def test_temporal_split_holds_out_the_latest(sizes, seed):
    pairs = make_pairs(sizes, seed)
    split = assign_splits(pairs, method="temporal", seed=0, train_fraction=0.8, valid_fraction=0.2)
    for u, n in enumerate(sizes):
        rows = np.flatnonzero(pairs.user == u)
        order = rows[np.lexsort((pairs.item[rows], pairs.timestamp[rows]))]
        codes = split[order]
        # Sorted by (time, item): train, then valid, then test, in blocks.
        assert np.all(np.diff(codes.astype(int)) >= 0)
        assert (codes == TEST).sum() == n - math.ceil(0.8 * n)


def test_temporal_split_needs_timestamps():
    pairs = make_pairs([3, 3])
    pairs.timestamp[:] = np.nan
    with pytest.raises(ValueError, match="temporal split needs a timestamp"):
        assign_splits(pairs, method="temporal", seed=0, train_fraction=0.8, valid_fraction=0.2)


def test_given_split_keeps_overlap_in_test_only():
    train = make_pairs([4, 3])
    test = Pairs(
        np.array([0, 1], np.int32), np.array([train.item[0], 999], np.int32),
        np.ones(2, np.float32), np.ones(2, np.int32), np.zeros(2),
    )
    merged, is_test, overlap = merge_given(train, test, num_items=1000)
    assert overlap == 1 and len(merged) == 8 and is_test.sum() == 2
    key = merged.key(1000)
    assert np.all(np.diff(key) > 0)  # sorted and no pair twice
    split = assign_splits(merged, method="given", seed=1, train_fraction=0.8, valid_fraction=0.0, given_test=is_test)
    assert np.array_equal(split == TEST, is_test)
