"""The hybrid's batch top-K (candidates only, threads over batches) gives the per-user path's lists."""

from __future__ import annotations

import numpy as np
import pytest

from eval.ranking import iter_topk
from graphrec.serving.recommender import Recommender


@pytest.fixture(scope="module")
def rec(demo_model) -> Recommender:
    base, _ = demo_model
    return Recommender.load(base / "model")


def per_user_lists(rec: Recommender, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Today's reference: each user's dense hybrid row alone, ranked with its history masked."""
    items, scores = [], []
    for user in users:
        batch = np.array([user], dtype=np.int64)
        _, top_items, top_scores = next(iter_topk(rec.score_users, batch, k, exclude=rec.model.history))
        items.append(top_items)
        scores.append(top_scores)
    return np.concatenate(items), np.concatenate(scores)


@pytest.mark.parametrize("batch_size", [7, 256])
def test_batch_path_lists_equal_the_per_user_path(rec, batch_size):
    assert rec.model.ranker is not None
    users = np.arange(len(rec.user_ids), dtype=np.int64)
    sample = np.random.default_rng(0).choice(users, size=min(40, len(users)), replace=False)
    k = 10
    expected_items, expected_scores = per_user_lists(rec, sample, k)
    parts = list(rec.iter_topk(sample, k, batch_size=batch_size))
    got_items = np.concatenate([p[1] for p in parts])
    got_scores = np.concatenate([p[2] for p in parts])
    assert np.concatenate([p[0] for p in parts]).tolist() == sample.tolist()
    np.testing.assert_array_equal(got_items, expected_items)
    np.testing.assert_allclose(got_scores, expected_scores, rtol=1e-5, atol=1e-5)
    # No history item is ever recommended.
    for row, user in enumerate(sample):
        seen = set(rec.model.history[user].indices.tolist())
        assert not seen & set(got_items[row][got_items[row] >= 0].tolist())


def test_batch_path_pads_short_candidate_lists(rec):
    """k above the number of candidates: -1 / -inf at the end, as the dense path pads."""
    users = np.arange(3, dtype=np.int64)
    k = rec.num_items
    items, scores = rec.model.ranker.topk(users, k)
    expected_items, _ = per_user_lists(rec, users, k)
    np.testing.assert_array_equal(items, expected_items)
    assert (items[:, -1] == -1).all() and np.isneginf(scores[:, -1]).all()


def test_batch_path_across_passes_of_topk_rows(rec):
    """ranker.topk ranks TOPK_ROWS users per pass: a request spanning several passes (and a
    ragged last one) gives the per-user path's lists."""
    from training.ranker.scoring import TOPK_ROWS

    users = np.arange(min(2 * TOPK_ROWS + 5, len(rec.user_ids)), dtype=np.int64)
    assert len(users) > TOPK_ROWS, "the demo model has too few users to span two passes"
    k = 10
    items, scores = rec.model.ranker.topk(users, k)
    expected_items, expected_scores = per_user_lists(rec, users, k)
    np.testing.assert_array_equal(items, expected_items)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)


def test_passes_shrink_so_each_dense_block_stays_under_32_mib():
    from training.ranker.scoring import TOPK_ROWS, topk_rows

    assert topk_rows(256, 40_981) == TOPK_ROWS == 64 and topk_rows(16, 40_981) == 16
    for items in (131_000, 200_000, 600_000, 10_000_000, 50_000_000):
        rows = topk_rows(256, items)
        assert 1 <= rows <= TOPK_ROWS and (rows == 1 or rows * items * 4 < 32 * 2**20), (items, rows)
    assert topk_rows(256, 200_000) == 41 and topk_rows(256, 50_000_000) == 1
