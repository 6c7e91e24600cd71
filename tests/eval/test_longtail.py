"""Head/tail split and popularity deciles: the docs/PROTOCOL.md tie-break and sizes."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval import head_tail, popularity_deciles, popularity_order
from eval.longtail import head_size

COUNTS = np.array([3, 5, 3, 0, 3])


def test_ties_break_by_numeric_id_when_every_id_is_an_integer():
    # Count 5 first; the three items with count 3 by numeric id 9 < 10 < 100; then count 0.
    order = popularity_order(COUNTS, ["10", "2", "9", "1", "100"])
    assert order.tolist() == [1, 2, 0, 4, 3]


def test_ties_break_by_string_id_otherwise():
    # "10" < "100" < "9" as strings; one non-integer id switches the whole catalogue to string order.
    order = popularity_order(COUNTS, ["10", "x", "9", "1", "100"])
    assert order.tolist() == [1, 0, 4, 2, 3]


def test_numeric_ids_beyond_int64_compare_exactly():
    ids = [str(2**70 + 1), str(2**70), "5"]
    assert popularity_order(np.zeros(3), ids).tolist() == [2, 1, 0]


def test_without_ids_ties_break_by_index():
    assert popularity_order(COUNTS).tolist() == [1, 0, 2, 4, 3]


@pytest.mark.parametrize("n_items", [1, 4, 5, 6, 10, 11, 80, 1682, 4476, 99_999])
def test_head_size_is_ceil_of_a_fifth(n_items):
    assert head_size(n_items) == math.ceil(Fraction(n_items, 5))


def test_head_tail_by_hand():
    is_head = head_tail(np.array([1, 9, 4, 9, 0, 2, 2, 7, 3, 5, 6]), [f"{i}" for i in range(11)])
    # ceil(0.2 * 11) = 3 head items: the two 9s (ids 1, 3) and the 7 (id 7).
    assert np.flatnonzero(is_head).tolist() == [1, 3, 7]


def test_deciles_follow_array_split_sizes():
    counts = np.arange(23)[::-1]  # item 0 most popular
    decile = popularity_deciles(counts, [str(i) for i in range(23)])
    assert np.bincount(decile).tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert decile.tolist() == sorted(decile.tolist())  # most popular items in decile 0


def test_fewer_items_than_deciles_leaves_empty_deciles():
    decile = popularity_deciles(np.array([0, 2, 1]), ["a", "b", "c"])
    assert decile.tolist() == [2, 0, 1]


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="item_ids has 2 entries"):
        head_tail(np.array([1, 2, 3]), ["a", "b"])
    with pytest.raises(ValueError, match="non-negative"):
        popularity_order(np.array([1, -2]))
    with pytest.raises(ValueError, match="non-empty 1-d"):
        popularity_order(np.zeros((2, 2)))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=40),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_split_does_not_depend_on_internal_indices(counts, numeric, rnd):
    n = len(counts)
    ids = [str(i * 7 % 101) if numeric else f"item-{i * 7 % 101}" for i in range(n)]
    perm = list(range(n))
    rnd.shuffle(perm)
    counts = np.array(counts)
    head = {ids[i] for i in np.flatnonzero(head_tail(counts, ids))}
    head_permuted = {ids[p] for p in np.array(perm)[head_tail(counts[perm], [ids[p] for p in perm])]}
    assert head == head_permuted
    assert len(head) == head_size(n)
    decile = popularity_deciles(counts, ids)
    decile_permuted = popularity_deciles(counts[perm], [ids[p] for p in perm])
    assert {ids[i]: int(decile[i]) for i in range(n)} == {ids[p]: int(d) for p, d in zip(perm, decile_permuted)}
    # Every head item is at least as popular as every tail item.
    is_head = head_tail(counts, ids)
    if (~is_head).any():
        assert counts[is_head].min() >= counts[~is_head].max()
