"""Co-interaction neighbors (exact cosines on a small matrix) and neighbor recall."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from training.text import co_interaction_neighbors, neighbor_recall

# users x items: items 0 and 1 share users 0 and 1; item 2 shares user 1 with 0 and 1; item 3 is alone.
USER_ITEMS = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0],
            [2, 1, 1, 0],
            [0, 0, 1, 0],
            [0, 0, 0, 5],
        ],
        dtype=np.float32,
    )
)


def test_cosine_of_binary_user_columns():
    dense = co_interaction_neighbors(USER_ITEMS).toarray()
    expected = np.array(
        [
            [0, 1.0, 1 / 2, 0],
            [1.0, 0, 1 / 2, 0],
            [1 / 2, 1 / 2, 0, 0],
            [0, 0, 0, 0],
        ]
    )
    np.testing.assert_allclose(dense, expected, atol=1e-6)


def test_top_cut_and_chunking():
    rng = np.random.default_rng(0)
    matrix = sp.random(60, 30, density=0.2, random_state=rng, format="csr", dtype=np.float32)
    full = co_interaction_neighbors(matrix, top=30)
    cut = co_interaction_neighbors(matrix, top=3)
    chunked = co_interaction_neighbors(matrix, top=3, chunk_size=7)
    assert (np.diff(cut.indptr) <= 3).all()
    assert (cut != chunked).nnz == 0
    assert full.diagonal().sum() == 0
    for row in range(30):
        kept = cut[row].data
        values = np.sort(full[row].data)[::-1]
        np.testing.assert_allclose(np.sort(kept)[::-1], values[: len(kept)], atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="top must be an integer >= 1"):
        co_interaction_neighbors(USER_ITEMS, top=0)
    with pytest.raises(TypeError, match="user_items"):
        co_interaction_neighbors(USER_ITEMS.toarray())


def test_neighbor_recall_is_one_for_vectors_that_encode_the_clusters():
    clusters = np.repeat(np.arange(4), 5)  # 20 items, 4 clusters of 5
    truth = sp.csr_matrix((clusters[:, None] == clusters[None, :]).astype(np.float32))
    ids = [str(i) for i in range(20)]
    perfect = np.eye(4, dtype=np.float32)[clusters] + 0.01 * np.random.default_rng(0).normal(size=(20, 4))
    result = neighbor_recall(perfect, truth, item_ids=ids, k=4)
    assert result.metrics["recall"] == pytest.approx(1.0)  # the item itself is masked and not a neighbor
    shuffled = neighbor_recall(perfect[np.random.default_rng(1).permutation(20)], truth, item_ids=ids, k=4)
    assert shuffled.metrics["recall"] < 0.6
    only = neighbor_recall(perfect, truth, item_ids=ids, k=4, queries=np.array([0, 7]))
    assert only.n_users == 2 and only.metrics["recall"] == pytest.approx(1.0)


def test_neighbor_recall_checks_shapes():
    with pytest.raises(ValueError, match="must be"):
        neighbor_recall(np.ones((3, 2)), sp.identity(4, format="csr"), item_ids=list("abcd"))
