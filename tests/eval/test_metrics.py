"""Metrics: hand-computed cases for each one, then hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from eval import metrics

# Four users, K = 4. Rows: two hits at ranks 1 and 3 of 3 test items; one hit at rank 4
# of 1; no hit of 2; a perfect list for a user with 6 test items (more than K).
HITS = np.array(
    [
        [1, 0, 1, 0],
        [0, 0, 0, 1],
        [0, 0, 0, 0],
        [1, 1, 1, 1],
    ],
    dtype=bool,
)
N_RELEVANT = np.array([3, 1, 2, 6])


def test_recall_by_hand():
    np.testing.assert_allclose(metrics.recall(HITS, N_RELEVANT), [2 / 3, 1.0, 0.0, 4 / 6])


def test_precision_by_hand():
    np.testing.assert_allclose(metrics.precision(HITS), [0.5, 0.25, 0.0, 1.0])


def test_hit_rate_by_hand():
    np.testing.assert_allclose(metrics.hit_rate(HITS), [1.0, 1.0, 0.0, 1.0])


def test_reciprocal_rank_by_hand():
    np.testing.assert_allclose(metrics.reciprocal_rank(HITS), [1.0, 0.25, 0.0, 1.0])


def test_ndcg_by_hand():
    dcg0 = 1 / math.log2(2) + 1 / math.log2(4)
    idcg0 = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    expected = [dcg0 / idcg0, 1 / math.log2(5), 0.0, 1.0]
    np.testing.assert_allclose(metrics.ndcg(HITS, N_RELEVANT), expected)
    assert expected[0] == pytest.approx(0.703918, abs=1e-6)


def test_average_precision_by_hand():
    # Row 0: precision 1/1 at rank 1 and 2/3 at rank 3, over min(3, 4) = 3.
    np.testing.assert_allclose(metrics.average_precision(HITS, N_RELEVANT), [(1 + 2 / 3) / 3, 0.25, 0.0, 1.0])


def test_group_recall_by_hand():
    assert metrics.group_recall([1, 0, 2], [2, 0, 4]) == (pytest.approx(0.5), 2)
    value, n = metrics.group_recall([0, 0], [0, 0])
    assert math.isnan(value) and n == 0


def test_long_tail_share_by_hand():
    np.testing.assert_allclose(metrics.long_tail_share([1, 0, 3], [2, 0, 3]), [0.5, 0.0, 1.0])


def test_coverage_by_hand():
    assert metrics.coverage(np.array([0, 2, 0, 1])) == 0.5


@pytest.mark.parametrize(
    "counts, expected",
    [
        ([1, 1, 1, 1], 0.0),
        ([0, 0, 0, 5], 1.0),  # one item takes every slot
        ([0, 1, 2, 3], 10 / 18),  # sum((2i - n - 1) x_i) / ((n - 1) sum x) = 10 / (3 * 6)
        ([0, 0, 0], 0.0),  # nothing recommended
        ([7], 0.0),
    ],
)
def test_gini_by_hand(counts, expected):
    assert metrics.gini(np.array(counts)) == pytest.approx(expected)


def test_rejects_inconsistent_input():
    with pytest.raises(ValueError, match="n_relevant"):
        metrics.recall(HITS, N_RELEVANT[:3])
    with pytest.raises(ValueError, match="smaller than the number of hits"):
        metrics.ndcg(HITS, np.array([1, 1, 1, 1]))
    with pytest.raises(ValueError, match="2-d"):
        metrics.precision(np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="non-negative"):
        metrics.gini(np.array([1, -1]))


def _reference_ndcg(row: np.ndarray, n_relevant: int) -> float:
    dcg = sum(1 / math.log2(rank + 1) for rank, hit in enumerate(row, start=1) if hit)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(n_relevant, len(row)) + 1))
    return dcg / ideal if ideal else 0.0


@st.composite
def hit_matrices(draw):
    n_users = draw(st.integers(1, 12))
    k = draw(st.integers(1, 10))
    hits = draw(arrays(bool, (n_users, k)))
    extra = draw(arrays(np.int64, n_users, elements=st.integers(0, 15)))
    return hits, hits.sum(axis=1) + extra


@settings(max_examples=60, deadline=None)
@given(hit_matrices())
def test_per_user_metrics_lie_in_unit_interval(case):
    hits, n_relevant = case
    for values in (
        metrics.recall(hits, n_relevant),
        metrics.ndcg(hits, n_relevant),
        metrics.precision(hits),
        metrics.hit_rate(hits),
        metrics.reciprocal_rank(hits),
        metrics.average_precision(hits, n_relevant),
    ):
        assert values.shape == (len(hits),)
        assert ((values >= 0) & (values <= 1 + 1e-12)).all()


@settings(max_examples=60, deadline=None)
@given(hit_matrices())
def test_ndcg_matches_the_textbook_loop(case):
    hits, n_relevant = case
    expected = [_reference_ndcg(row, n) for row, n in zip(hits, n_relevant)]
    np.testing.assert_allclose(metrics.ndcg(hits, n_relevant), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 10), arrays(np.int64, 8, elements=st.integers(1, 15)))
def test_perfect_ranking_scores_one_where_achievable(k, n_relevant):
    hits = np.arange(k)[None, :] < n_relevant[:, None]
    np.testing.assert_allclose(metrics.ndcg(hits, n_relevant), 1.0)
    np.testing.assert_allclose(metrics.average_precision(hits, n_relevant), 1.0)
    achievable = n_relevant <= k
    np.testing.assert_allclose(metrics.recall(hits, n_relevant)[achievable], 1.0)
    np.testing.assert_allclose(metrics.recall(hits, n_relevant)[~achievable], k / n_relevant[~achievable])


@settings(max_examples=60, deadline=None)
@given(arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 50)), st.randoms(use_true_random=False))
def test_gini_and_coverage_in_unit_interval_and_order_free(counts, rnd):
    shuffled = counts.copy()
    rnd.shuffle(shuffled)
    for value in (metrics.gini(counts), metrics.coverage(counts)):
        assert 0.0 <= value <= 1.0 + 1e-12
    assert metrics.gini(shuffled) == pytest.approx(metrics.gini(counts))
    assert metrics.coverage(shuffled) == metrics.coverage(counts)
