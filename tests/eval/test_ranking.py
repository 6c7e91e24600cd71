"""eval.ranking: the top-K routine: masking, padding, both masking paths, device-agnostic input, TopK checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import eval.ranking as ranking
from eval import TopK, iter_topk, topk


def _random_exclude(rng, n_users, n_items, density):
    return sp.random(n_users, n_items, density=density, format="csr", random_state=rng, dtype=np.float32)


def _brute_force(scores, exclude, k):
    """Reference: full argsort of every row after setting excluded items to -inf."""
    masked = scores.astype(np.float64).copy()
    if exclude is not None:
        masked[exclude.toarray() != 0] = -np.inf
    items = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(masked, items, axis=1)
    items = np.where(np.isinf(values), -1, items)
    return items, values


@settings(max_examples=60, deadline=None)
@given(
    n_users=st.integers(1, 12),
    n_items=st.integers(1, 60),
    k=st.integers(1, 30),
    levels=st.integers(1, 4),
    density=st.sampled_from([0.0, 0.2, 0.6]),
    batch_size=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    limit=st.sampled_from([4, 512]),
)
def test_exact_ties_are_ordered_by_item_index_whatever_the_batch(
    n_users, n_items, k, levels, density, batch_size, seed, limit
):
    """Scores on a few levels tie everywhere; the lists must be the stable full sort's (ties: lower item first),
    on the candidate path and the copy path, for any batch size (torch.topk alone picks among ties as it goes)."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, size=(n_users, n_items)).astype(np.float32)
    exclude = _random_exclude(rng, n_users, n_items, density)
    users = rng.permutation(n_users)
    original, ranking.CANDIDATE_LIMIT = ranking.CANDIDATE_LIMIT, limit
    try:
        items, _ = topk(lambda u: scores[u], users, k, exclude=exclude, batch_size=batch_size)
    finally:
        ranking.CANDIDATE_LIMIT = original
    expected_items, _ = _brute_force(scores[users], exclude[users], min(k, n_items))
    assert (items[:, : min(k, n_items)] == expected_items).all()


def test_a_tie_at_the_cut_past_the_candidates_takes_the_lowest_items():
    # Row 0 excludes item 0, so 2 + 1 candidates are taken; ten items tie at the cut, most past the candidates.
    scores = np.array([[9.0] + [1.0] * 10 + [5.0]], dtype=np.float32)
    exclude = sp.csr_matrix(np.array([[1] + [0] * 11], dtype=np.float32))
    items, values = topk(lambda u: scores[u], [0], 3, exclude=exclude)
    assert items.tolist() == [[11, 1, 2]]
    np.testing.assert_allclose(values, [[5.0, 1.0, 1.0]])


def test_by_hand_with_masking_and_padding():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.4, 0.3, 0.2, 0.1]], dtype=np.float32)
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 1, 1, 0]], dtype=np.float32))
    items, values = topk(lambda u: scores[u], np.array([0, 1]), 3, exclude=exclude)
    assert items.tolist() == [[3, 2, 0], [3, -1, -1]]
    np.testing.assert_allclose(values, [[0.7, 0.5, 0.1], [0.1, -np.inf, -np.inf]])
    assert items.dtype == np.int64 and values.dtype == np.float32


def test_k_larger_than_catalogue_pads_and_minus_inf_is_not_recommendable():
    scores = np.array([[1.0, -np.inf, 3.0]], dtype=np.float32)
    items, values = topk(lambda u: scores[u], [0], 5)
    assert items.tolist() == [[2, 0, -1, -1, -1]]
    assert np.isneginf(values[0, 2:]).all()


@settings(max_examples=40, deadline=None)
@given(
    n_users=st.integers(1, 30),
    n_items=st.integers(1, 40),
    k=st.integers(1, 45),
    density=st.sampled_from([0.0, 0.1, 0.5, 0.95]),
    batch_size=st.integers(1, 16),
    seed=st.integers(0, 10_000),
    limit=st.sampled_from([4, 512]),
)
def test_matches_a_full_sort_and_never_lists_a_masked_item(n_users, n_items, k, density, batch_size, seed, limit):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n_users, n_items)).astype(np.float32)  # continuous: no ties
    exclude = _random_exclude(rng, n_users, n_items, density)
    users = rng.permutation(n_users)
    original, ranking.CANDIDATE_LIMIT = ranking.CANDIDATE_LIMIT, limit  # limit 4 forces the copy path
    try:
        items, values = topk(lambda u: scores[u], users, k, exclude=exclude, batch_size=batch_size)
    finally:
        ranking.CANDIDATE_LIMIT = original
    expected_items, expected_values = _brute_force(scores[users], exclude[users], min(k, n_items))
    width = min(k, n_items)
    assert (items[:, :width] == expected_items).all()
    np.testing.assert_allclose(values[:, :width], expected_values, rtol=1e-6)
    assert (items[:, width:] == -1).all()
    dense_exclude = exclude[users].toarray() != 0
    listed = items >= 0
    assert not dense_exclude[np.nonzero(listed)[0], items[listed]].any()


def test_scorer_output_is_never_modified():
    rng = np.random.default_rng(0)
    cached = rng.random((6, 50)).astype(np.float32)
    cached.setflags(write=False)  # a read-only buffer works and stays untouched
    tensor = torch.from_numpy(rng.random((6, 50)).astype(np.float32))
    before = tensor.clone()
    exclude = _random_exclude(rng, 6, 50, 0.6)
    original, ranking.CANDIDATE_LIMIT = ranking.CANDIDATE_LIMIT, 8
    try:
        topk(lambda u: cached, np.arange(6), 5, exclude=exclude, batch_size=6)
        topk(lambda u: tensor, np.arange(6), 5, exclude=exclude, batch_size=6)
    finally:
        ranking.CANDIDATE_LIMIT = original
    assert torch.equal(tensor, before)


def test_torch_half_and_integer_scores_are_accepted():
    scores = torch.tensor([[1, 5, 3], [2, 0, 9]])
    items, values = topk(lambda u: scores[torch.as_tensor(u)], [0, 1], 2)
    assert items.tolist() == [[1, 2], [2, 0]]
    items, _ = topk(lambda u: scores[torch.as_tensor(u)].half(), [0, 1], 2)
    assert items.tolist() == [[1, 2], [2, 0]]


def test_iter_topk_streams_batches_in_order():
    scores = np.arange(7 * 5, dtype=np.float32).reshape(7, 5)
    batches = list(iter_topk(lambda u: scores[u], np.arange(7), 2, batch_size=3))
    assert [b[0].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert all(b[1].tolist() == [[4, 3]] * len(b[0]) for b in batches)


def test_nan_scores_are_an_error_unless_masked():
    scores = np.array([[0.1, np.nan, 0.3]], dtype=np.float32)
    with pytest.raises(ValueError, match="NaN scores for users \\[4\\]"):
        topk(lambda u: scores, np.array([4]), 2, exclude=sp.csr_matrix((5, 3), dtype=np.float32))
    exclude = sp.csr_matrix(([1.0], ([4], [1])), shape=(5, 3))
    items, _ = topk(lambda u: scores, np.array([4]), 2, exclude=exclude)
    assert items.tolist() == [[2, 0]]


def test_bad_arguments_and_scorer_output():
    good = lambda u: np.zeros((len(u), 4), dtype=np.float32)  # noqa: E731
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        topk(good, [0], 0)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        topk(good, [0], 1, batch_size=2.5)
    with pytest.raises(ValueError, match="users holds indices outside \\[0, 3\\)"):
        topk(good, [3], 1, exclude=sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="5 columns; expected one per item \\(4\\)"):
        topk(lambda u: np.zeros((len(u), 5)), [0], 1, exclude=sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="shape \\(1, 4\\) for 2 users"):
        topk(lambda u: np.zeros((1, 4)), [0, 1], 1)
    with pytest.raises(TypeError, match="returned list"):
        topk(lambda u: [[0.0]], [0], 1)


def test_topk_table_validation():
    table = TopK(users=[2, 0], items=[[1, 0, -1], [3, -1, -1]])
    assert table.k == 3 and table.users.dtype == np.int64
    with pytest.raises(ValueError, match="user index 2 more than once"):
        TopK(users=[2, 2], items=[[1], [0]])
    with pytest.raises(ValueError, match="row 0 \\(user 2\\) has an item after -1"):
        TopK(users=[2], items=[[-1, 4]])
    with pytest.raises(ValueError, match="row 1 \\(user 5\\) lists an item twice"):
        TopK(users=[2, 5], items=[[1, 2], [3, 3]])
    with pytest.raises(ValueError, match="one row per user"):
        TopK(users=[2, 5], items=[[1, 2]])
    with pytest.raises(ValueError, match="TopK.scores has shape"):
        TopK(users=[2], items=[[1, 2]], scores=[[0.5]])


@pytest.mark.gpu
def test_cuda_scores_are_ranked_on_the_device_and_match_cpu():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((300, 700)).astype(np.float32)
    exclude = _random_exclude(rng, 300, 700, 0.3)  # ~210 per row: both masking paths below
    on_gpu = torch.from_numpy(scores).cuda()
    original, ranking.CANDIDATE_LIMIT = ranking.CANDIDATE_LIMIT, 220
    try:
        gpu_items, gpu_values = topk(lambda u: on_gpu[torch.as_tensor(u, device="cuda")], np.arange(300), 15,
                                     exclude=exclude, batch_size=128)  # fmt: skip
    finally:
        ranking.CANDIDATE_LIMIT = original
    cpu_items, cpu_values = topk(lambda u: scores[u], np.arange(300), 15, exclude=exclude)
    assert isinstance(gpu_items, np.ndarray) and gpu_items.dtype == np.int64
    assert (gpu_items == cpu_items).all()
    np.testing.assert_allclose(gpu_values, cpu_values)
