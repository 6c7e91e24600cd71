"""Candidate generation of the hybrid ranker: union of top-N per source, history excluded."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.ranker.candidates import candidate_recall, generate_candidates, history_mask, top_n_ranks


def random_case(seed: int, rows: int = 6, items: int = 30, sources: int = 3):
    rng = np.random.default_rng(seed)
    history = sp.random(rows, items, density=0.2, format="csr", random_state=seed, dtype=np.float32)
    history.data[:] = 1.0
    scores = {f"s{i}": torch.from_numpy(rng.normal(size=(rows, items)).astype(np.float32)) for i in range(sources)}
    return history, scores


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 35))
def test_candidates_are_the_union_of_top_n_outside_history(seed, n):
    history, scores = random_case(seed)
    candidates = generate_candidates(scores, history_mask(history), n)
    dense_history = history.toarray() > 0
    for row in range(history.shape[0]):
        expected = set()
        for name, values in scores.items():
            row_scores = values[row].numpy().copy()
            row_scores[dense_history[row]] = -np.inf
            ranked = [i for i in np.argsort(-row_scores, kind="stable") if np.isfinite(row_scores[i])][:n]
            expected |= set(ranked)
            got_ranks = candidates.ranks[name][row].numpy()
            assert sorted(np.flatnonzero(got_ranks)) == sorted(ranked)
            assert got_ranks[ranked].tolist() == list(range(1, len(ranked) + 1))
        lo, hi = candidates.offsets[row], candidates.offsets[row + 1]
        got = candidates.items[lo:hi].tolist()
        assert got == sorted(expected)
        assert (candidates.rows[lo:hi] == row).all()
        assert not dense_history[row, got].any()


def test_minus_inf_scores_are_never_ranked_and_nan_is_rejected():
    scores = torch.tensor([[3.0, float("-inf"), 1.0, 2.0]])
    exclude = torch.tensor([[False, False, False, True]])
    ranks = top_n_ranks(scores, exclude, 4)
    assert ranks.tolist() == [[1.0, 0.0, 2.0, 0.0]]
    with pytest.raises(ValueError, match="'bad' returned NaN"):
        top_n_ranks(torch.tensor([[float("nan"), 1.0]]), torch.zeros(1, 2, dtype=torch.bool), 1, name="bad")
    with pytest.raises(ValueError, match="shape"):
        top_n_ranks(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.bool), 1)


def test_candidate_recall_counts_positives_per_source_and_union():
    scores = {
        "a": torch.tensor([[5.0, 4.0, 3.0, 0.0, -1.0]]),
        "b": torch.tensor([[0.0, 0.0, 0.0, 5.0, 4.0]]),
    }
    history = sp.csr_matrix(np.array([[1.0, 0, 0, 0, 0]], dtype=np.float32))
    candidates = generate_candidates(scores, history_mask(history), 2)
    assert candidates.items.tolist() == [1, 2, 3, 4]
    labels = sp.csr_matrix(np.array([[0, 1.0, 1.0, 1.0, 0]], dtype=np.float32))
    recall = candidate_recall(candidates, labels)
    # a's top-2 outside the history (item 0) are items 1, 2; b's are 3, 4.
    assert recall == {"a": (2, 3), "b": (1, 3), "union": (3, 3)}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 35))
def test_sparse_history_exclusion_equals_the_mask_and_leaves_scores_intact(seed, n):
    """The CSR history path masks in place for the top-k and restores every score after it."""
    history, scores = random_case(seed)
    scores["s0"][0, :5] = float("-inf")  # items a source cannot rank
    before = {name: values.clone() for name, values in scores.items()}
    dense = generate_candidates(scores, history_mask(history), n)
    sparse = generate_candidates(scores, history, n)
    for name, values in scores.items():
        assert torch.equal(values, before[name])
        np.testing.assert_array_equal(sparse.top[name].numpy(), dense.top[name].numpy())
        assert torch.equal(sparse.ranks[name], dense.ranks[name])
    assert torch.equal(sparse.rows, dense.rows) and torch.equal(sparse.items, dense.items)
    assert torch.equal(sparse.offsets, dense.offsets)
    # in_top agrees with the dense ranks at every (row, item).
    rows, items = torch.meshgrid(torch.arange(history.shape[0]), torch.arange(history.shape[1]), indexing="ij")
    for name in scores:
        hit = sparse.in_top(name, rows.reshape(-1), items.reshape(-1))
        assert torch.equal(hit, sparse.ranks[name].reshape(-1) > 0)


def test_sparse_history_path_rejects_nan():
    scores = {"bad": torch.tensor([[1.0, float("nan"), 0.5]])}
    history = sp.csr_matrix(np.array([[1.0, 0.0, 0.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="'bad' returned NaN"):
        generate_candidates(scores, history, 2)
