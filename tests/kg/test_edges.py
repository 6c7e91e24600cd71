"""Dedup into pairs (against a dictionary reference) and the count / k-core filters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kg.edges import Events, Pairs, dedup_events
from kg.filters import filter_nodes


def reference(user, item, weight, timestamp):
    out = {}
    for u, i, w, t in zip(user.tolist(), item.tolist(), weight.tolist(), timestamp.tolist()):
        c, s, latest = out.get((u, i), (0, 0.0, -np.inf))
        out[(u, i)] = (c + 1, s + w, max(latest, t))
    return out


events_strategy = st.integers(1, 120).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
        st.lists(st.integers(0, 9), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.5, 1.0, 2.0, 5.0]), min_size=n, max_size=n),
        st.lists(st.integers(0, 1000), min_size=n, max_size=n),
    )
)


@settings(max_examples=80, deadline=None)
@given(events_strategy, st.booleans())
def test_dedup_matches_a_dictionary(events, wide_keys):
    user, item, weight, timestamp = (np.asarray(v) for v in events)
    expected = reference(user, item, weight, timestamp)
    # A huge item space makes the pair keys too wide to pack with the row position,
    # which takes the argsort path; both paths must give the same pairs.
    num_items = 2**57 if wide_keys else 10
    pairs = dedup_events(
        Events(user.astype(np.int32), item.astype(np.int32), weight.astype(np.float32), timestamp.astype(np.float64)),
        num_items=num_items,
    )
    keys = list(zip(pairs.user.tolist(), pairs.item.tolist()))
    assert keys == sorted(expected)
    for (u, i), c, s, t in zip(keys, pairs.count.tolist(), pairs.weight.tolist(), pairs.timestamp.tolist()):
        assert (c, t) == (expected[(u, i)][0], expected[(u, i)][2])
        assert s == pytest.approx(expected[(u, i)][1])
    assert pairs.count.dtype == np.int32 and pairs.weight.dtype == np.float32


def test_dedup_consumes_its_inputs_and_handles_no_timestamps():
    events = Events(np.array([1, 0, 1], np.int32), np.array([2, 2, 2], np.int32), np.ones(3, np.float32), None)
    pairs = dedup_events(events, num_items=3)
    assert events.user is None and events.weight is None
    assert pairs.user.tolist() == [0, 1] and pairs.count.tolist() == [1, 2] and np.isnan(pairs.timestamp).all()


def pairs_of(edge_list) -> Pairs:
    user = np.array([u for u, _ in edge_list], np.int32)
    item = np.array([i for _, i in edge_list], np.int32)
    n = len(edge_list)
    return Pairs(user, item, np.ones(n, np.float32), np.ones(n, np.int32), np.zeros(n))


def test_k_core_iterates_until_stable():
    # User 2 has one item; removing it drops item 2 below 2 users (round 2), which drops user 1 (round 3).
    pairs = pairs_of([(0, 0), (0, 1), (1, 0), (1, 2), (2, 2), (3, 0), (3, 1)])
    keep_user, keep_item, report = filter_nodes(pairs, num_users=4, num_items=3, k_core=2)
    assert keep_user.tolist() == [True, False, False, True]
    assert keep_item.tolist() == [True, True, False]
    assert report["k_core"] == {"k": 2, "rounds": 3, "users_removed": 2, "items_removed": 1, "pairs_removed": 3}


def test_min_counts_apply_once_and_include_nodes_without_pairs():
    pairs = pairs_of([(0, 0), (0, 1), (1, 0)])
    keep_user, keep_item, report = filter_nodes(pairs, num_users=3, num_items=3, min_user_count=2, min_item_count=1)
    assert keep_user.tolist() == [True, False, False]  # user 2 has no pairs at all
    assert keep_item.tolist() == [True, True, False]
    assert report["min_count"]["pairs_removed"] == 1
    assert filter_nodes(pairs, num_users=3, num_items=3)[2] == {}
