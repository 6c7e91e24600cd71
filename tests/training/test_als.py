"""ALS: the learner contract, the confidence formula, fold-in, determinism, divergence."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.training.contract import LearnerContract
from training.base import ModelFitError
from training.sources.als import ALS, confidence_matrix


def small_als(seed: int = 0, **overrides) -> ALS:
    # One thread: on a busy shared machine OpenMP's spinning threads slow tiny fits 5-10x.
    config = dict(factors=8, regularization=5.0, alpha=0.5, iterations=10, seed=seed, num_threads=1)
    config.update(overrides)
    return ALS(**config)


class TestALSContract(LearnerContract):
    bare_fit_equals_graph_fit = True
    min_gain_over_mostpop = 0.05

    def make_learner(self, seed: int) -> ALS:
        return small_als(seed)


def test_loss_decreases_via_callback(structured_graph):
    calls = []
    small_als().fit(
        structured_graph, structured_graph.matrix("train", weighted=True), callback=lambda *args: calls.append(args)
    )
    assert [c[0] for c in calls] == list(range(10))
    losses = np.array([c[2] for c in calls])
    assert np.isfinite(losses).all() and all(c[1] >= 0 for c in calls)
    assert losses[-1] < 0.8 * losses[0]
    # CG sweeps are inexact, so allow a hair of noise, but no real increase.
    assert (np.diff(losses) <= 1e-4 * losses[0]).all(), losses


def _exact_user_factor(item_factors, weights_row, alpha, regularization):
    """argmin_x sum_i c_i (p_i - x.y_i)^2 + reg |x|^2, c_i = 1 + alpha w_i on stored items, 1 elsewhere."""
    items, weights = weights_row.indices, weights_row.data.astype(np.float64)
    y = item_factors.astype(np.float64)
    confidence = np.ones(len(y))
    confidence[items] = 1.0 + alpha * weights
    preference = np.zeros(len(y))
    preference[items] = 1.0
    a = (y.T * confidence) @ y + regularization * np.eye(y.shape[1])
    return np.linalg.solve(a, (y.T * confidence) @ preference)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 4.0])
def test_confidence_is_one_plus_alpha_weight(structured_graph, alpha):
    """Fold-in solves exactly the documented objective (checked by a dense least-squares solve)."""
    model = small_als(alpha=alpha)
    train = structured_graph.matrix("train", weighted=True)
    model.fit(structured_graph, train)
    rows = train[:6]
    folded = model.recalculate_users(rows)
    expected = np.stack(
        [_exact_user_factor(model.item_embeddings(), rows[r], alpha, model.regularization) for r in range(6)]
    )
    np.testing.assert_allclose(folded, expected, rtol=2e-3, atol=2e-4)


def test_fit_solves_the_same_objective(structured_graph):
    """After convergence each fitted item factor is the exact solve against the user factors."""
    model = small_als(iterations=40, alpha=2.0)
    train = structured_graph.matrix("train", weighted=True)
    model.fit(structured_graph, train)
    users, items = model.user_embeddings(), model.item_embeddings()
    item_users = train.T.tocsr()
    for item in (0, 5, 17, 42):
        expected = _exact_user_factor(users, item_users[item], 2.0, model.regularization)
        np.testing.assert_allclose(items[item], expected, rtol=0.02, atol=2e-3)


def test_confidence_matrix_keeps_pattern_and_copies():
    weights = sp.csr_matrix(np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]], dtype=np.float32))
    confidence = confidence_matrix(weights, 2.0)
    np.testing.assert_array_equal(confidence.toarray(), [[0, 5, 0], [3, 0, 7]])
    np.testing.assert_array_equal(weights.data, [2, 1, 3])


def test_fold_in_of_own_history_reproduces_fitted_scores(structured_graph):
    model = small_als()
    train = structured_graph.matrix("train", weighted=True)
    model.fit(structured_graph, train)
    users = np.arange(30, dtype=np.int64)
    fitted = model.score(users).numpy()
    folded = model.score_new_users(train[users]).numpy()
    for row in range(len(users)):
        assert np.corrcoef(fitted[row], folded[row])[0, 1] > 0.98
    np.testing.assert_allclose(folded, fitted, atol=0.05 * np.abs(fitted).max())


def test_scores_are_factor_products_and_embeddings_plain_arrays(structured_graph):
    model = small_als().fit(structured_graph, structured_graph.matrix("train", weighted=True))
    users, items = model.user_embeddings(), model.item_embeddings()
    assert isinstance(users, np.ndarray) and users.dtype == np.float32 and users.shape == (120, 8)
    assert isinstance(items, np.ndarray) and items.dtype == np.float32 and items.shape == (80, 8)
    np.testing.assert_allclose(model.score(np.array([4, 9])).numpy(), users[[4, 9]] @ items.T, rtol=1e-5, atol=1e-6)


def test_multithreaded_fit_is_bitwise_deterministic(structured_graph):
    train = structured_graph.matrix("train", weighted=True)
    one = small_als(num_threads=1).fit(structured_graph, train)
    many = small_als(num_threads=2).fit(structured_graph, train)
    np.testing.assert_array_equal(one.item_embeddings(), many.item_embeddings())
    other_seed = small_als(seed=1).fit(structured_graph, train)
    assert not np.allclose(one.item_embeddings(), other_seed.item_embeddings())


def test_non_finite_factors_raise_model_fit_error(structured_graph):
    # Confidences near float32's limit overflow the normal equations into inf/NaN.
    with pytest.raises(ModelFitError, match="ALS"):
        small_als(alpha=1e37).fit(structured_graph, structured_graph.matrix("train", weighted=True))


def test_confidence_overflow_is_a_value_error(structured_graph):
    with pytest.raises(ValueError, match="alpha=1e\\+39"):
        small_als(alpha=1e39).fit(structured_graph, structured_graph.matrix("train", weighted=True))


def test_rejects_wrong_row_count_and_empty_matrix(structured_graph):
    train = structured_graph.matrix("train")
    with pytest.raises(ValueError, match="rows"):
        small_als().fit(structured_graph, train[:-1])
    with pytest.raises(ValueError, match="no interactions"):
        small_als().fit(structured_graph, sp.csr_matrix(train.shape, dtype=np.float32))


def test_score_rejects_unknown_users(structured_graph):
    model = small_als().fit(structured_graph, structured_graph.matrix("train"))
    with pytest.raises(ValueError, match="users"):
        model.score(np.array([0, structured_graph.num_users]))


@pytest.mark.parametrize(
    "overrides, argument",
    [
        ({"factors": 0}, "factors"),
        ({"iterations": 1.5}, "iterations"),
        ({"regularization": 0.0}, "regularization"),
        ({"alpha": -1.0}, "alpha"),
        ({"num_threads": -1}, "num_threads"),
        ({"use_gpu": "yes"}, "use_gpu"),
    ],
)
def test_bad_hyper_parameters_name_the_argument(overrides, argument):
    with pytest.raises((TypeError, ValueError), match=argument):  # a wrong type is a TypeError (eval.checks)
        small_als(**overrides)


def test_use_gpu_without_cuda_is_a_clear_error(structured_graph):
    import implicit.gpu

    if implicit.gpu.HAS_CUDA and torch.cuda.is_available():
        pytest.skip("implicit has CUDA here")
    with pytest.raises(ValueError, match="use_gpu=True"):
        small_als(use_gpu=True).fit(structured_graph, structured_graph.matrix("train"))


@pytest.mark.gpu
def test_scores_on_cuda_match_cpu(structured_graph, tmp_path):
    model = small_als().fit(structured_graph, structured_graph.matrix("train", weighted=True))
    model.save(tmp_path / "als")
    on_cuda = ALS.load(tmp_path / "als", device="cuda")
    users = np.arange(20, dtype=np.int64)
    scores = on_cuda.score(users)
    assert scores.device.type == "cuda"
    np.testing.assert_allclose(scores.cpu().numpy(), model.score(users).numpy(), rtol=1e-4, atol=1e-5)
