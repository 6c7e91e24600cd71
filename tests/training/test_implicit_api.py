"""The implicit-style light path checked against implicit itself (training/sources/implicit_api.py).

The contract mixin runs recommend/similar_items against every learner; here ALS's
answers are compared with implicit's own ``recommend``/``similar_items`` on the same
factors, so "implicit-compatible" means the same lists, not a similar signature.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kg.graph import Graph
from training.base import NotFittedError
from training.sources.als import ALS


def _matrix(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((60, 40)) < 0.15) * rng.integers(1, 5, (60, 40))
    return sp.csr_matrix(dense.astype(np.float32))


def _implicit_twin(model: ALS):
    import implicit.cpu.als

    twin = implicit.cpu.als.AlternatingLeastSquares(factors=model.factors, num_threads=1)
    twin.user_factors = model.user_embeddings()
    twin.item_factors = model.item_embeddings()
    return twin


def test_graph_from_csr_round_trip():
    matrix = _matrix()
    graph = Graph.from_csr(matrix)
    assert (graph.num_users, graph.num_items) == matrix.shape
    assert (graph.matrix("train", weighted=True) != matrix).nnz == 0
    assert graph.matrix("valid").nnz == 0 and graph.matrix("test").nnz == 0
    assert graph.item_ids[3] == "3"
    with pytest.raises(TypeError, match="user_items"):
        Graph.from_csr(matrix.toarray())
    bad = matrix.copy()
    bad.data[0] = -1
    with pytest.raises(ValueError, match="non-negative"):
        Graph.from_csr(bad)


def test_fit_none_csr_as_in_the_issue():
    matrix = _matrix()
    model = ALS(factors=8, iterations=3, regularization=0.1, seed=0).fit(None, matrix)
    assert model.user_embeddings().shape == (60, 8)
    again = ALS(factors=8, iterations=3, regularization=0.1, seed=0).fit(matrix)
    np.testing.assert_allclose(model.item_embeddings(), again.item_embeddings(), rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="needs user_items"):
        ALS(factors=8).fit(None)


def test_recommend_matches_implicit():
    matrix = _matrix()
    model = ALS(factors=8, iterations=5, regularization=0.1, seed=0).fit(matrix)
    twin = _implicit_twin(model)
    users = np.arange(0, 60, 7)
    ours, our_scores = model.recommend(users, matrix[users], N=6)
    theirs, their_scores = twin.recommend(users, matrix[users], N=6)
    np.testing.assert_allclose(our_scores, their_scores, rtol=1e-4, atol=1e-5)
    # ids agree wherever the score is not tied with a neighbor
    untied = np.abs(np.diff(their_scores, axis=1)) > 1e-5
    assert (ours[:, :-1][untied] == theirs[:, :-1][untied]).all()
    one, _ = model.recommend(5, matrix[5], N=6)
    one_theirs, _ = twin.recommend(5, matrix[5], N=6)
    assert one.shape == one_theirs.shape == (6,)
    subset = [1, 2, 3, 5, 8, 13]
    ours_sub, _ = model.recommend(users, matrix[users], N=10, items=subset)
    theirs_sub, their_sub_scores = twin.recommend(users, matrix[users], N=10, items=subset)
    assert ours_sub.shape == theirs_sub.shape == (len(users), len(subset))
    # implicit fills a list short of N with filtered ids scored -FLT_MAX; we pad with -1
    for row, their_row, their_row_scores in zip(ours_sub, theirs_sub, their_sub_scores):
        assert row[row >= 0].tolist() == their_row[their_row_scores > -1e38].tolist()


def test_similar_items_matches_implicit():
    matrix = _matrix()
    model = ALS(factors=8, iterations=5, regularization=0.1, seed=0).fit(matrix)
    twin = _implicit_twin(model)
    ours, our_scores = model.similar_items(np.array([0, 7]), N=5)
    theirs, their_scores = twin.similar_items(np.array([0, 7]), N=5)
    np.testing.assert_allclose(our_scores, their_scores, rtol=1e-4, atol=1e-5)
    assert (ours[:, 0] == [0, 7]).all()


def test_recalculate_user_folds_in():
    matrix = _matrix()
    model = ALS(factors=8, iterations=5, regularization=0.1, seed=0).fit(matrix)
    ids, scores = model.recommend(np.array([0, 1]), matrix[:2], N=5, recalculate_user=True)
    assert ids.shape == (2, 5) and np.isfinite(scores).all()
    assert not np.isin(ids[0], matrix[0].indices).any()


def test_errors_name_the_argument():
    with pytest.raises(NotFittedError):
        ALS(factors=8).recommend(0, _matrix()[0])
    model = ALS(factors=8, iterations=2, regularization=0.1).fit(_matrix())
    with pytest.raises(ValueError, match="1 row for every user"):
        model.recommend([0, 1], _matrix())
    with pytest.raises(ValueError, match="not both"):
        model.recommend(0, _matrix()[0], items=[1], filter_items=[2])
    with pytest.raises(IndexError, match="userid"):
        model.recommend(999, _matrix()[0])
    with pytest.raises(IndexError, match="itemid"):
        model.similar_items(40)
