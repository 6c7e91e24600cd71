"""The graph-filter source (training/sources/graphfilter.py): the contract, the filter against a dense reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.training.contract import LearnerContract
from training.base import NotFittedError
from training.sources.graphfilter import (
    GraphFilter,
    auto_rank,
    chebyshev_coefficients,
    normalised_matrix,
    randomized_svd,
)


class TestGraphFilterDenseContract(LearnerContract):
    """Small catalogue: ``P~`` and the whole filter held as one dense operator."""

    min_gain_over_mostpop = 0.05

    def make_learner(self, seed: int) -> GraphFilter:
        return GraphFilter(alpha=0.5, rank=8, seed=seed)


class TestGraphFilterSparseContract(LearnerContract):
    """``dense_max_items=0``: every product sparse, as on a large catalogue; sharpening on."""

    min_gain_over_mostpop = 0.05

    def make_learner(self, seed: int) -> GraphFilter:
        return GraphFilter(alpha=0.5, rank=8, sharpen=0.3, dense_max_items=0, neighbors=0, seed=seed)


class TestGraphFilterOperatorContract(LearnerContract):
    """``dense_max_items=0, neighbors=16``: the filter held as a sparse top-16-per-item operator."""

    min_gain_over_mostpop = 0.05

    def make_learner(self, seed: int) -> GraphFilter:
        return GraphFilter(alpha=0.5, rank=8, sharpen=0.3, dense_max_items=0, neighbors=16, seed=seed)


def _reference(user_items: sp.csr_matrix, rows: np.ndarray, *, alpha, rank, exponent, sharpen) -> np.ndarray:
    """The filter written out densely in float64 from its definition (numpy SVD)."""
    r = user_items.toarray().astype(np.float64)
    du, di = r.sum(1), r.sum(0)
    su = np.where(du > 0, du ** -exponent, 0.0) if exponent else np.ones_like(du)
    si = np.where(di > 0, di ** -exponent, 0.0) if exponent else np.ones_like(di)
    norm = su[:, None] * r * si[None, :]
    _, values, vt = np.linalg.svd(norm)
    gram = norm.T @ norm / values[0] ** 2
    v = vt[:rank].T
    inverse = np.where(si > 0, 1.0 / np.where(si > 0, si, 1.0), 0.0)
    operator = gram + alpha * (si[:, None] * v) @ (v.T * inverse[None, :])
    operator = operator - sharpen * operator @ gram
    return r[rows] @ operator


@pytest.mark.parametrize("dense_max_items", [10_000, 0])
@pytest.mark.parametrize(
    ("alpha", "rank", "exponent", "sharpen"), [(0.3, 6, 0.5, 0.0), (1.0, 3, 0.3, 0.5), (0.0, 6, 0.5, 0.2)]
)
def test_scores_match_the_dense_definition(structured_graph, dense_max_items, alpha, rank, exponent, sharpen):
    train = structured_graph.matrix("train")
    model = GraphFilter(alpha=alpha, rank=rank, exponent=exponent, sharpen=sharpen, sharpen_order=1,
                        dense_max_items=dense_max_items, neighbors=0)  # fmt: skip
    model.fit(structured_graph, train)
    users = np.arange(0, structured_graph.num_users, 5)
    expected = _reference(train, users, alpha=alpha, rank=rank, exponent=exponent, sharpen=sharpen)
    np.testing.assert_allclose(model.score(users).numpy(), expected, rtol=2e-4, atol=2e-5)


def test_a_batch_across_cpu_column_blocks_equals_user_by_user(structured_graph):
    """The CPU filter works in blocks of COLUMN_BLOCK users: a batch spanning several blocks
    (with a ragged last one) scores every user as scoring that user alone does."""
    from training.sources.spectral import COLUMN_BLOCK

    train = structured_graph.matrix("train")
    model = GraphFilter(alpha=0.4, rank=6, sharpen=0.5, sharpen_order=4, dense_max_items=0, neighbors=0).fit(structured_graph, train)
    users = np.resize(np.arange(structured_graph.num_users), 2 * COLUMN_BLOCK + 7)
    batch = model.score(users).numpy()
    alone = np.concatenate([model.score(users[i : i + 1]).numpy() for i in range(len(users))])
    assert batch.shape == (len(users), structured_graph.num_items)
    np.testing.assert_allclose(batch, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("degree_power", [0.0, 0.3])
def test_one_thread_torch_passes_equal_the_scipy_passes(structured_graph, degree_power):
    """On one torch thread the CPU filter's sparse passes use torch's CSR product on
    PASS_BLOCK columns, otherwise scipy's on the whole block: the same sums, so serving and
    training agree up to float rounding (bit for bit where MKL sums in row order, as on AMD
    EPYC; not on Intel Xeon, where its kernel orders them differently)."""
    from training.sources.spectral import COLUMN_BLOCK, PASS_BLOCK

    train = structured_graph.matrix("train")
    model = GraphFilter(alpha=0.4, rank=6, sharpen=0.7, sharpen_order=4, degree_power=degree_power,
                        dense_max_items=0, neighbors=0).fit(structured_graph, train)  # fmt: skip
    users = np.resize(np.arange(structured_graph.num_users), COLUMN_BLOCK + PASS_BLOCK + 3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = model.score(users).numpy()
        torch.set_num_threads(2)
        two = model.score(users).numpy()
    finally:
        torch.set_num_threads(threads)
    assert np.isfinite(one).all() and np.abs(one).max() > 0
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-6)


def test_fold_in_is_the_same_filter(structured_graph):
    train = structured_graph.matrix("train")
    model = GraphFilter(rank=8, dense_max_items=0, neighbors=0).fit(structured_graph, train)
    users = np.array([1, 4, 9, 30])
    folded = model.score_new_users(train[users]).numpy()
    np.testing.assert_allclose(folded, model.score(users).numpy(), rtol=1e-5, atol=1e-6)


def test_with_filter_reuses_the_svd(structured_graph):
    train = structured_graph.matrix("train")
    base = GraphFilter(rank=12).fit(structured_graph, train)
    users = np.arange(20)
    derived = base.with_filter(rank=5, alpha=2.0, sharpen=0.4)
    fresh = GraphFilter(rank=5, alpha=2.0, sharpen=0.4).fit(structured_graph, train)
    assert derived.get_config() == fresh.get_config()
    np.testing.assert_allclose(derived.score(users).numpy(), fresh.score(users).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="rank=20 needs 20 singular vectors; this fit kept 12"):
        base.with_filter(rank=20)
    with pytest.raises(NotFittedError):
        GraphFilter().with_filter(rank=1)


def test_sparse_operator_keeps_each_items_largest_entries(structured_graph, tmp_path):
    train = structured_graph.matrix("train")
    exact = GraphFilter(rank=8, sharpen=0.3, dense_max_items=0, neighbors=0).fit(structured_graph, train)
    num_items = train.shape[1]
    operator = exact.score_new_users(sp.identity(num_items, dtype=np.float32, format="csr")).numpy()
    users = np.arange(train.shape[0])
    # every entry kept: the exact filter, up to float rounding
    whole = exact.with_filter(neighbors=num_items)
    np.testing.assert_allclose(whole.score(users).numpy(), exact.score(users).numpy(), rtol=1e-5, atol=1e-6)
    m = 7
    model = exact.with_filter(neighbors=m)
    kept = model._sparse.toarray()
    assert (np.diff(model._sparse.indptr) == m).all()
    for item in range(num_items):  # row i keeps the m largest |entries| of the operator's row i
        cut = np.sort(np.abs(operator[item]))[-m]
        assert np.count_nonzero(kept[item]) <= m
        assert (np.abs(operator[item][kept[item] != 0]) >= cut - 1e-6).all()
    np.testing.assert_allclose(model.score(users).numpy(), (train @ kept).astype(np.float32), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score_new_users(train[:5]).numpy(), model.score(users[:5]).numpy())
    assert not np.allclose(model.score(users).numpy(), exact.score(users).numpy(), atol=1e-3)  # an approximation
    # built at fit like with_filter's copy; saved with the model, not rebuilt at load
    fitted = GraphFilter(rank=8, sharpen=0.3, dense_max_items=0, neighbors=m).fit(structured_graph, train)
    assert (fitted._sparse != model._sparse).nnz == 0
    model.save(tmp_path / "gf")
    back = GraphFilter.load(tmp_path / "gf")
    assert back.neighbors == m
    np.testing.assert_array_equal(back.score(users).numpy(), model.score(users).numpy())


def test_sparse_operator_is_the_same_on_any_thread_count(structured_graph):
    train = structured_graph.matrix("train")
    exact = GraphFilter(rank=8, sharpen=0.3, sharpen_order=4, dense_max_items=0, neighbors=0).fit(structured_graph, train)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = exact.with_filter(neighbors=9)._sparse
        torch.set_num_threads(2)
        two = exact.with_filter(neighbors=9)._sparse
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    np.testing.assert_array_equal(one.indices, two.indices)
    np.testing.assert_array_equal(one.data, two.data)


def test_neighbors_leave_a_dense_catalogue_dense(structured_graph):
    model = GraphFilter(rank=8, neighbors=4).fit(structured_graph, structured_graph.matrix("train"))
    assert model._dense is not None and model._sparse is None


def test_filter_is_scaled_to_spectral_radius_one(structured_graph):
    """Exponents other than 1/2 leave sigma_1 != 1; P~ is divided by sigma_1^2, so sharpening stays mild."""
    train = structured_graph.matrix("train")
    model = GraphFilter(alpha=0.0, exponent=0.2, dense_max_items=0, neighbors=0).fit(structured_graph, train)
    assert model.singular_values_[0] > 2.0
    eigenvalues = np.linalg.eigvalsh((model._normalised.T @ model._normalised).toarray().astype(np.float64))
    assert eigenvalues.max() == pytest.approx(1.0, rel=1e-4)


def test_callback_reports_the_energy_the_svd_leaves_out(structured_graph):
    losses = {}
    for rank in (2, 20):
        calls = []
        train = structured_graph.matrix("train")
        GraphFilter(rank=rank).fit(structured_graph, train, callback=lambda *args: calls.append(args))
        assert len(calls) == 1 and calls[0][0] == 0 and calls[0][1] >= 0
        losses[rank] = calls[0][2]
    assert 0.0 < losses[20] < losses[2] < 1.0


def test_rank_is_capped_by_the_matrix(structured_graph):
    model = GraphFilter(rank=10_000).fit(structured_graph, structured_graph.matrix("train"))
    assert model.vectors_.shape == (structured_graph.num_items, structured_graph.num_items - 1)
    assert model.item_embeddings().shape == model.vectors_.shape


def test_auto_rank_follows_the_catalogue(structured_graph):
    assert [auto_rank(n) for n in (80, 1682, 4489, 40981, 100_000)] == [16, 21, 56, 512, 512]
    model = GraphFilter().fit(structured_graph, structured_graph.matrix("train"))
    assert model.rank == "auto" and model.vectors_.shape[1] == 16


def test_randomized_svd_recovers_the_top_spectrum():
    rng = np.random.default_rng(0)
    left, _ = np.linalg.qr(rng.standard_normal((300, 60)))
    right, _ = np.linalg.qr(rng.standard_normal((500, 60)))
    values = 0.9 ** np.arange(60)
    matrix = sp.csr_matrix((left * values) @ right.T)
    found, vectors = randomized_svd(matrix, 10, seed=3)
    np.testing.assert_allclose(found, values[:10], rtol=1e-5)
    # The same subspace: the projector V V^T agrees (signs of single vectors do not matter).
    np.testing.assert_allclose(vectors @ vectors.T, right[:, :10] @ right[:, :10].T, atol=1e-4)


def test_normalisation_handles_empty_rows_and_columns():
    matrix = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 0], [1, 0, 0]], dtype=np.float32))
    normalised, scale = normalised_matrix(matrix, 0.5)
    assert np.isfinite(normalised.data).all() and scale[1] == 0.0
    np.testing.assert_allclose(normalised.toarray()[0], [1 / np.sqrt(2 * 2), 0, 1 / np.sqrt(2 * 1)], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": -0.1}, "alpha"), ({"sharpen": float("nan")}, "sharpen"), ({"rank": -1}, "rank"),
        ({"rank": 2.5}, "rank"), ({"rank": "big"}, "rank"), ({"exponent": 1.5}, "exponent"),
        ({"dense_max_items": True}, "dense_max_items"), ({"kind": "cubic"}, "kind"), ({"order": 0}, "order"),
        ({"sharpen_order": 9}, "sharpen_order"), ({"flatness": 0.0}, "flatness"), ({"degree_power": 2.0}, "degree_power"),
        ({"ideal_exponent": -0.1}, "ideal_exponent"), ({"neighbors": -1}, "neighbors"),
        ({"neighbors": 1.5}, "neighbors"),
    ],
)  # fmt: skip
def test_rejects_bad_hyper_parameters(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):  # a wrong type is a TypeError (eval.checks)
        GraphFilter(**kwargs)


def test_load_rejects_vectors_of_the_wrong_shape(structured_graph, tmp_path):
    from safetensors.numpy import load_file, save_file

    model = GraphFilter(rank=4).fit(structured_graph, structured_graph.matrix("train"))
    model.save(tmp_path / "gf")
    state = load_file(str(tmp_path / "gf" / "state.safetensors"))
    state["vectors"] = state["vectors"][:-1]
    save_file(state, str(tmp_path / "gf" / "state.safetensors"))
    with pytest.raises(ValueError, match="vectors have shape"):
        GraphFilter.load(tmp_path / "gf")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dense_max_items, neighbors", [(10_000, 0), (0, 0), (0, 16)])
def test_scores_on_cuda_match_cpu(structured_graph, tmp_path, dense_max_items, neighbors):
    model = GraphFilter(rank=8, sharpen=0.3, dense_max_items=dense_max_items, neighbors=neighbors).fit(
        structured_graph, structured_graph.matrix("train")
    )
    model.save(tmp_path / "gf")
    on_cuda = GraphFilter.load(tmp_path / "gf", device="cuda")
    users = np.arange(30)
    scores = on_cuda.score(users)
    assert scores.device.type == "cuda"
    np.testing.assert_allclose(scores.cpu().numpy(), model.score(users).numpy(), rtol=1e-4, atol=1e-5)


def _polynomial_reference(user_items, rows, *, alpha, rank, sharpen, sharpen_order, order, flatness, degree_power,
                          ideal_exponent) -> np.ndarray:  # fmt: skip
    """The Chebyshev filter written out from its definition: the plateau response on P~'s eigenvalues."""
    r = user_items.toarray().astype(np.float64)
    du, di = r.sum(1), r.sum(0)
    su = np.where(du > 0, du**-0.5, 0.0)
    si = np.where(di > 0, di**-0.5, 0.0)
    norm = su[:, None] * r * si[None, :]
    _, values, vt = np.linalg.svd(norm)
    gram = norm.T @ norm / values[0] ** 2
    eigenvalues, basis = np.linalg.eigh(gram)
    x = 1.0 - 2.0 * np.clip(eigenvalues, 0.0, 1.0)
    response = np.polynomial.chebyshev.chebval(x, chebyshev_coefficients(order, flatness))
    filtered = basis @ np.diag(response) @ basis.T
    pre = np.where(di > 0, di ** -degree_power, 0.0)
    post = np.where(di > 0, di**degree_power, 0.0)
    ci = np.where(di > 0, di ** -ideal_exponent, 0.0)
    ce = np.where(di > 0, di**ideal_exponent, 0.0)
    v = vt[:rank].T
    operator = (pre[:, None] * filtered * post[None, :]) + alpha * (ci[:, None] * v) @ (v.T * ce[None, :])
    sharpening = sum(np.linalg.matrix_power(-sharpen * gram, j) / math.factorial(j) for j in range(sharpen_order + 1))
    return r[rows] @ operator @ sharpening


def test_chebyshev_coefficients_interpolate_the_plateau():
    nodes = np.cos(np.pi * (np.arange(9) + 0.5) / 9)
    target = 0.5 - 0.5 * np.sign(nodes) * np.abs(nodes) ** 1.5
    np.testing.assert_allclose(np.polynomial.chebyshev.chebval(nodes, chebyshev_coefficients(8, 1.5)), target, atol=1e-12)
    # flatness 1 is the linear response 1/2 - x/2 = l (x = 1 - 2 l): exactly two coefficients
    np.testing.assert_allclose(chebyshev_coefficients(6, 1.0), [0.5, -0.5, 0, 0, 0, 0, 0], atol=1e-12)


@pytest.mark.parametrize("dense_max_items", [10_000, 0])
@pytest.mark.parametrize(
    ("sharpen", "sharpen_order", "degree_power", "ideal_exponent"), [(0.0, 1, 0.4, 0.4), (1.5, 4, 0.0, 0.5), (0.5, 2, 0.2, 0.3)]
)
def test_chebyshev_filter_matches_its_spectral_definition(
    structured_graph, dense_max_items, sharpen, sharpen_order, degree_power, ideal_exponent
):
    train = structured_graph.matrix("train")
    kwargs = dict(alpha=0.3, rank=6, sharpen=sharpen, sharpen_order=sharpen_order, order=8, flatness=1.5,
                  degree_power=degree_power, ideal_exponent=ideal_exponent)  # fmt: skip
    model = GraphFilter(kind="chebyshev", dense_max_items=dense_max_items, neighbors=0, **kwargs).fit(structured_graph, train)
    users = np.arange(0, structured_graph.num_users, 5)
    expected = _polynomial_reference(train, users, **kwargs)
    np.testing.assert_allclose(model.score(users).numpy(), expected, rtol=2e-4, atol=2e-5)


def test_taylor_sharpening_is_exp_of_the_filter_to_its_order(structured_graph):
    """sharpen_order=4 is one Runge-Kutta step of ds/dt = -s P~: s (I - tP + (tP)^2/2 - (tP)^3/6 + (tP)^4/24)."""
    train = structured_graph.matrix("train")
    users = np.arange(12)
    base = GraphFilter(alpha=0.0, sharpen=0.0, dense_max_items=0, neighbors=0).fit(structured_graph, train)
    blurred = base.score(users).numpy().astype(np.float64)
    gram = (base._normalised.T @ base._normalised).toarray().astype(np.float64)
    step = sum(np.linalg.matrix_power(-2.5 * gram, j) / math.factorial(j) for j in range(5))
    sharpened = base.with_filter(sharpen=2.5, sharpen_order=4).score(users).numpy()
    np.testing.assert_allclose(sharpened, blurred @ step, rtol=2e-4, atol=2e-5)


def test_score_settings_equals_each_filter(structured_graph):
    train = structured_graph.matrix("train")
    base = GraphFilter(rank=12, dense_max_items=0, neighbors=0).fit(structured_graph, train)
    settings = [
        {}, {"alpha": 0.0}, {"rank": 5, "alpha": 0.7, "sharpen": 2.0, "sharpen_order": 4},
        {"sharpen": 0.0, "degree_power": 0.3}, {"sharpen": 1.0, "sharpen_order": 2, "degree_power": 0.2},
        {"kind": "chebyshev", "order": 6, "flatness": 2.0, "degree_power": 0.4, "ideal_exponent": 0.4, "sharpen": 0.0},
        {"kind": "chebyshev", "order": 4, "flatness": 1.5, "sharpen": 0.5, "sharpen_order": 2},
    ]  # fmt: skip
    rows = train[np.arange(0, 40, 3)]
    for setting, scores in zip(settings, base.score_settings(rows, settings), strict=True):
        expected = base.with_filter(**setting).score_new_users(rows).numpy()
        np.testing.assert_allclose(scores.numpy(), expected, rtol=2e-4, atol=2e-5, err_msg=str(setting))
    with pytest.raises(ValueError, match="exponent"):
        list(base.score_settings(rows, [{"exponent": 0.3}]))
    with pytest.raises(ValueError, match="rank=20"):
        list(base.score_settings(rows, [{"rank": 20}]))
    with pytest.raises(ValueError, match="unknown settings"):
        base.with_filter(colour="red")


def test_artifacts_saved_before_sharpen_order_load_with_one_euler_step(structured_graph, tmp_path):
    import json

    train = structured_graph.matrix("train")
    euler = GraphFilter(rank=4, sharpen=0.5, sharpen_order=1).fit(structured_graph, train)
    euler.save(tmp_path / "gf")
    assert GraphFilter.load(tmp_path / "gf").sharpen_order == 1
    # an old artifact: neither the config nor the state knows sharpen_order
    stored = json.loads((tmp_path / "gf" / "config.json").read_text())
    text = json.dumps(stored)
    assert "sharpen_order" in text
    for section in stored.values():
        if isinstance(section, dict):
            section.pop("sharpen_order", None)
    (tmp_path / "gf" / "config.json").write_text(json.dumps(stored))
    old = GraphFilter.load(tmp_path / "gf")
    assert old.sharpen_order == 1
    users = np.arange(10)
    np.testing.assert_allclose(old.score(users).numpy(), euler.score(users).numpy(), rtol=1e-6, atol=1e-7)
