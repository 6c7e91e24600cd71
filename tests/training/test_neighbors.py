"""Item-KNN and EASE (training/neighbors, knn, ease): the contract, the maths against dense solves, the memory guard."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.training.contract import LearnerContract
from training.base import GraphrecWarning
from training.sources import ease
from training.sources.ease import EASE, ease_memory_bytes
from training.sources.knn import ItemKNN, _top_neighbors


class TestItemKNNCosineContract(LearnerContract):
    bare_fit_equals_graph_fit = True
    min_gain_over_mostpop = 0.05

    def make_learner(self, seed: int) -> ItemKNN:
        return ItemKNN(similarity="cosine", neighbors=20)


class TestItemKNNBM25Contract(LearnerContract):
    bare_fit_equals_graph_fit = True
    min_gain_over_mostpop = 0.05

    def make_learner(self, seed: int) -> ItemKNN:
        return ItemKNN(similarity="bm25", neighbors=20)


class TestEASEContract(LearnerContract):
    bare_fit_equals_graph_fit = True
    min_gain_over_mostpop = 0.05

    def make_learner(self, seed: int) -> EASE:
        return EASE(regularization=200.0)


# -- item-KNN -----------------------------------------------------------------------------
def _dense_cosine(user_items: sp.csr_matrix) -> np.ndarray:
    x = user_items.toarray().astype(np.float64)
    norms = np.linalg.norm(x, axis=0)
    norms[norms == 0] = 1.0
    return (x / norms).T @ (x / norms)


@pytest.mark.parametrize("k", [1, 5, 30])
def test_knn_keeps_the_k_most_similar_other_items(structured_graph, k):
    train = structured_graph.matrix("train", weighted=True)
    model = ItemKNN(similarity="cosine", neighbors=k).fit(structured_graph, train)
    similarity = model.similarity_
    assert similarity.shape == (80, 80) and similarity.dtype == np.float32
    counts = np.diff(similarity.indptr)
    assert counts.max() == k and (counts <= k).all()
    assert not similarity.diagonal().any(), "an item is not its own neighbor"
    dense = _dense_cosine(train)
    np.fill_diagonal(dense, -np.inf)
    for item in range(0, 80, 7):
        row = similarity[item]
        np.testing.assert_allclose(row.data, dense[item, row.indices], rtol=1e-5)
        # every dropped item is no more similar than the weakest kept one
        others = np.setdiff1d(np.arange(80), np.append(row.indices, item))
        assert dense[item, others].max() <= row.data.min() + 1e-6


@pytest.mark.parametrize("k", [1, 4, 12])
def test_top_neighbors_trims_long_rows_by_value_then_column(k):
    rng = np.random.default_rng(0)
    # Rows longer than k (the trimmed path), ties (values on a grid of 0.25), zeros and a diagonal.
    matrix = sp.random(40, 40, density=0.4, random_state=rng, format="csr", dtype=np.float32)
    matrix.data = np.round(matrix.data * 4) / 4
    matrix.setdiag(1.0)
    trimmed = _top_neighbors(matrix, k)
    dense = matrix.toarray()
    for row in range(40):
        cells = [(-dense[row, col], col) for col in range(40) if col != row and dense[row, col] != 0]
        expected = sorted(col for _, col in sorted(cells)[:k])
        assert trimmed[row].indices.tolist() == expected
        np.testing.assert_array_equal(trimmed[row].data, dense[row, expected])
    assert trimmed.has_sorted_indices and trimmed.dtype == np.float32


def test_knn_scores_are_history_times_similarity(structured_graph):
    train = structured_graph.matrix("train", weighted=True)
    model = ItemKNN(similarity="tfidf", neighbors=10).fit(structured_graph, train)
    users = np.array([2, 50, 119], dtype=np.int64)
    expected = train[users].toarray() @ model.similarity_.toarray()
    np.testing.assert_allclose(model.score(users).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score_new_users(train[users]).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_knn_keeps_its_own_copy_of_the_training_matrix(structured_graph):
    train = structured_graph.matrix("train", weighted=True)
    model = ItemKNN(neighbors=10).fit(structured_graph, train)
    before = model.score(np.array([0])).numpy()
    train.data[:] = 100.0
    np.testing.assert_array_equal(model.score(np.array([0])).numpy(), before)


def test_knn_similarities_differ(structured_graph):
    train = structured_graph.matrix("train", weighted=True)
    fitted = {s: ItemKNN(similarity=s, neighbors=10).fit(structured_graph, train).similarity_ for s in ("cosine", "bm25", "tfidf")}
    assert abs(fitted["cosine"] - fitted["bm25"]).sum() > 1.0
    assert abs(fitted["cosine"] - fitted["tfidf"]).sum() > 1.0


@pytest.mark.parametrize("similarity", ["cosine", "bm25", "tfidf"])
def test_knn_stored_zero_weights_stay_finite(structured_graph, similarity):
    train = structured_graph.matrix("train", weighted=True)
    item = train.indices[0]
    train.data[train.indices == item] = 0.0  # an item whose every stored weight is 0
    model = ItemKNN(similarity=similarity, neighbors=10).fit(structured_graph, train)
    assert np.isfinite(model.similarity_.data).all()
    assert model.similarity_[item].nnz == 0
    assert torch.isfinite(model.score(np.arange(structured_graph.num_users))).all()


def test_knn_callback_called_once(structured_graph):
    calls = []
    ItemKNN().fit(structured_graph, structured_graph.matrix("train"), callback=lambda *a: calls.append(a))
    assert len(calls) == 1 and calls[0][0] == 0 and calls[0][2] == 0.0


@pytest.mark.parametrize(
    "overrides, argument",
    [
        ({"similarity": "jaccard"}, "similarity"),
        ({"neighbors": 0}, "neighbors"),
        ({"bm25_k1": 0.0}, "bm25_k1"),
        ({"bm25_b": 1.5}, "bm25_b"),
        ({"num_threads": -2}, "num_threads"),
    ],
)
def test_knn_bad_hyper_parameters_name_the_argument(overrides, argument):
    with pytest.raises(ValueError, match=argument):
        ItemKNN(**overrides)


# -- EASE ---------------------------------------------------------------------------------
def _tiny_graph_and_matrix():
    from tests.conftest import make_structured_graph

    graph = make_structured_graph(num_users=30, num_items=12, per_user=5, seed=3)
    return graph, graph.matrix("train", weighted=True)


def test_ease_matches_dense_closed_form():
    graph, train = _tiny_graph_and_matrix()
    reg = 3.0
    losses = []
    model = EASE(regularization=reg).fit(graph, train, callback=lambda *a: losses.append(a[2]))
    x = train.toarray().astype(np.float64)
    gram = x.T @ x
    p = np.linalg.inv(gram + reg * np.eye(12))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    weights = model.weights_.numpy()
    np.testing.assert_allclose(weights, b, rtol=1e-5, atol=1e-6)
    assert np.all(np.diag(weights) == 0.0)
    # the reported loss is the objective at the solution
    objective = np.sum((x - x @ b) ** 2) + reg * np.sum(b**2)
    assert losses == [pytest.approx(objective, rel=1e-6)]
    users = np.arange(30, dtype=np.int64)
    np.testing.assert_allclose(model.score(users).numpy(), x @ b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.score_new_users(train).numpy(), x @ b, rtol=1e-4, atol=1e-5)


def test_ease_solution_is_the_constrained_optimum():
    """Perturbing any off-diagonal weight raises the objective (B is the minimiser)."""
    graph, train = _tiny_graph_and_matrix()
    reg = 3.0
    x = train.toarray().astype(np.float64)
    b = EASE(regularization=reg).fit(graph, train).weights_.numpy().astype(np.float64)

    def objective(weights):
        return np.sum((x - x @ weights) ** 2) + reg * np.sum(weights**2)

    base = objective(b)
    rng = np.random.default_rng(0)
    for _ in range(5):
        bumped = b.copy()
        i, j = rng.choice(12, 2, replace=False)
        bumped[i, j] += 1e-2
        assert objective(bumped) > base


def test_ease_memory_estimate():
    assert ease_memory_bytes(1000, torch.float64) == 1000**2 * 28
    assert ease_memory_bytes(1000, torch.float32) == 1000**2 * 16


def test_ease_refuses_more_items_than_max_items(structured_graph):
    with pytest.raises(ValueError, match=r"num_items=80 exceeds max_items=50.*ItemKNN"):
        EASE(max_items=50).fit(structured_graph, structured_graph.matrix("train"))


def test_ease_falls_back_to_float32_then_refuses(structured_graph, monkeypatch):
    train = structured_graph.matrix("train", weighted=True)
    exact = EASE(regularization=200.0).fit(structured_graph, train).weights_.numpy()
    between = (ease_memory_bytes(80, torch.float32) + ease_memory_bytes(80, torch.float64)) // 2
    monkeypatch.setattr(ease, "_available_bytes", lambda device: between)
    with pytest.warns(GraphrecWarning, match="float32"):
        fallback = EASE(regularization=200.0).fit(structured_graph, train)
    np.testing.assert_allclose(fallback.weights_.numpy(), exact, rtol=1e-3, atol=1e-5)
    monkeypatch.setattr(ease, "_available_bytes", lambda device: ease_memory_bytes(80, torch.float32) - 1)
    with pytest.raises(ValueError, match=r"num_items=80 needs .* GiB even in float32 \(max_items=15000\)"):
        EASE(regularization=200.0).fit(structured_graph, train)


@pytest.mark.parametrize(
    "overrides, argument",
    [({"regularization": 0.0}, "regularization"), ({"max_items": 0}, "max_items"), ({"max_items": 2.5}, "max_items")],
)
def test_ease_bad_hyper_parameters_name_the_argument(overrides, argument):
    with pytest.raises((TypeError, ValueError), match=argument):  # a wrong type is a TypeError (eval.checks)
        EASE(**overrides)


def test_corrupt_saved_state_is_a_clear_error(structured_graph, tmp_path):
    from safetensors.numpy import load_file, save_file

    model = EASE(regularization=200.0).fit(structured_graph, structured_graph.matrix("train"))
    model.save(tmp_path / "ease")
    arrays = load_file(str(tmp_path / "ease" / "state.safetensors"))
    arrays["weights"] = arrays["weights"][:10]
    save_file(arrays, str(tmp_path / "ease" / "state.safetensors"))
    with pytest.raises(ValueError, match="weights have shape"):
        EASE.load(tmp_path / "ease")
    with pytest.raises(ValueError, match="holds a 'ease' learner"):
        ItemKNN.load(tmp_path / "ease")


@pytest.mark.gpu
def test_ease_on_cuda_matches_cpu(structured_graph):
    train = structured_graph.matrix("train", weighted=True)
    cpu = EASE(regularization=200.0).fit(structured_graph, train)
    cuda = EASE(regularization=200.0, device="cuda").fit(structured_graph, train)
    users = np.arange(40, dtype=np.int64)
    scores = cuda.score(users)
    assert scores.device.type == "cuda" and scores.dtype == torch.float32
    np.testing.assert_allclose(cuda.weights_.cpu().numpy(), cpu.weights_.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scores.cpu().numpy(), cpu.score(users).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        cuda.score_new_users(train[users]).cpu().numpy(), cpu.score(users).numpy(), rtol=1e-4, atol=1e-5
    )
