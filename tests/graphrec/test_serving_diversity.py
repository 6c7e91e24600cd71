"""MMR re-ranking and intra-list diversity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphrec.serving.diversity import intra_list_diversity, mmr_rerank

# Items 0 and 1 point almost the same way, item 2 is orthogonal to both.
HAND_VECTORS = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]], dtype=np.float32)
HAND_ITEMS = np.array([[0, 1, 2]])
HAND_SCORES = np.array([[1.0, 0.9, 0.5]])


def clustered(seed: int = 0, clusters: int = 5, per_cluster: int = 40, dim: int = 16):
    """Items in tight clusters; each user's most relevant candidates crowd into one cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    labels = np.repeat(np.arange(clusters), per_cluster)
    vectors = (centres[labels] + 0.05 * rng.normal(size=(len(labels), dim))).astype(np.float32)
    n_users, n_cand = 30, 60
    items = np.stack([rng.permutation(len(labels))[:n_cand] for _ in range(n_users)])
    favourite = rng.integers(0, clusters, n_users)
    scores = rng.uniform(size=(n_users, n_cand)) + (labels[items] == favourite[:, None]) * 2.0
    return items, scores, vectors


def test_lambda_zero_is_plain_topk():
    items, scores, vectors = clustered()
    picked, picked_scores = mmr_rerank(items, scores, vectors, 10, 0.0)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(picked, np.take_along_axis(items, order, axis=1))
    np.testing.assert_array_equal(picked_scores, np.take_along_axis(scores, order, axis=1).astype(np.float32))
    assert picked.dtype == np.int64 and picked_scores.dtype == np.float32


def test_diversity_grows_with_lambda():
    items, scores, vectors = clustered()
    ild = {lam: intra_list_diversity(mmr_rerank(items, scores, vectors, 10, lam)[0], vectors) for lam in (0, 0.3, 0.5, 0.9)}
    assert ild[0.5] > ild[0] + 0.1
    assert ild[0] <= ild[0.3] <= ild[0.5] <= ild[0.9] + 1e-9


@pytest.mark.parametrize(("lam", "expected"), [(0.0, [0, 1]), (0.1, [0, 1]), (0.5, [0, 2]), (1.0, [0, 2])])
def test_hand_computed(lam, expected):
    # rel normalised = [1, 0.8, 0]; after picking item 0:
    #   item 1: (1-l)*0.8 - l*cos(0,1) (= 0.99);  item 2: (1-l)*0 - l*0 = 0
    #   l=0.1 -> 0.621 vs 0 (item 1);  l=0.5 -> -0.095 vs 0 (item 2)
    picked, picked_scores = mmr_rerank(HAND_ITEMS, HAND_SCORES, HAND_VECTORS, 2, lam)
    assert picked.tolist() == [expected]
    assert picked_scores.tolist() == [[1.0, float(np.float32(HAND_SCORES[0, expected[1]]))]]


def test_hand_computed_ild():
    # cos(0, 2) = 0 -> distance 1; cos(0, 1) = 0.99/|(0.99, 0.141)|.
    cos01 = 0.99 / np.hypot(0.99, 0.141)
    assert intra_list_diversity(np.array([[0, 2]]), HAND_VECTORS) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[0, 1, 2]]), HAND_VECTORS) == pytest.approx((1 - cos01 + 1 + 1 - 0.141 / np.hypot(0.99, 0.141)) / 3, rel=1e-5)
    # Padding and single-item lists are ignored; nothing left -> nan.
    assert intra_list_diversity(np.array([[0, 2, -1], [1, -1, -1]]), HAND_VECTORS) == pytest.approx(1.0)
    assert np.isnan(intra_list_diversity(np.array([[1, -1]]), HAND_VECTORS))


def test_padding_is_never_picked_and_pads_output():
    items = np.array([[2, -1, 0, 1], [1, 0, 2, 2]])
    scores = np.array([[5.0, 9.0, 4.0, -np.inf], [1.0, 1.0, 1.0, 1.0]])
    picked, picked_scores = mmr_rerank(items, scores, HAND_VECTORS, 4, 0.5)
    assert picked[0].tolist() == [2, 0, -1, -1]
    assert picked_scores[0, 2:].tolist() == [-np.inf, -np.inf]
    assert picked[1, 0] == 1  # all tied: the first column goes first
    wider, _ = mmr_rerank(items, scores, HAND_VECTORS, 6, 0.0)
    assert wider.shape == (2, 6) and (wider[:, 4:] == -1).all()


def test_accepts_torch_tensors():
    items, scores, vectors = clustered(seed=1)
    a = mmr_rerank(items, scores, vectors, 5, 0.4)
    b = mmr_rerank(torch.from_numpy(items), torch.from_numpy(scores), torch.from_numpy(vectors), 5, 0.4)
    np.testing.assert_array_equal(a[0], b[0])


def test_bad_input():
    with pytest.raises(ValueError, match=r"lambda_ must lie in \[0, 1\]"):
        mmr_rerank(HAND_ITEMS, HAND_SCORES, HAND_VECTORS, 2, 1.5)
    with pytest.raises(ValueError, match="candidate_scores has shape"):
        mmr_rerank(HAND_ITEMS, HAND_SCORES[:, :2], HAND_VECTORS, 2, 0.5)
    with pytest.raises(ValueError, match="outside"):
        mmr_rerank(np.array([[0, 3]]), np.array([[1.0, 0.5]]), HAND_VECTORS, 2, 0.5)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        mmr_rerank(HAND_ITEMS, HAND_SCORES, HAND_VECTORS, 0, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        mmr_rerank(HAND_ITEMS, np.array([[1.0, np.nan, 0.0]]), HAND_VECTORS, 2, 0.5)
    with pytest.raises(ValueError, match="2-d"):
        intra_list_diversity(np.array([0, 1]), HAND_VECTORS)
