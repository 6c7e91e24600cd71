"""DotScorer and iter_topk_parallel: same lists as the plain iter_topk path."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from eval.ranking import iter_topk
from graphrec.serving.dot_scorer import DotScorer
from graphrec.serving.topk_workers import iter_topk_parallel


def factors(n_users: int = 70, n_items: int = 90, dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(n_users, dim)).astype(np.float32)
    items = rng.normal(size=(n_items, dim)).astype(np.float32)
    seen = sp.random(n_users, n_items, density=0.1, format="csr", random_state=seed)
    return users, items, seen


def collect(batches):
    parts = list(batches)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def test_dot_scorer_matches_matmul_and_reuses_its_buffer():
    users, items, _ = factors()
    scorer = DotScorer(users, items)
    expected = torch.from_numpy(users) @ torch.from_numpy(items).T
    for batch in (np.arange(10, 30), np.array([5, 3, 60]), np.array([7])):
        torch.testing.assert_close(scorer(batch), expected[torch.from_numpy(batch)])
    first = scorer(np.arange(0, 20))
    second = scorer(np.arange(20, 40))
    assert first.data_ptr() == second.data_ptr()  # one buffer, overwritten
    fork = scorer.fork()
    assert fork(np.arange(3)).data_ptr() != scorer(np.arange(3)).data_ptr()
    assert fork.items_t.data_ptr() == scorer.items_t.data_ptr()  # vectors shared


def test_dot_scorer_bad_input():
    users, items, _ = factors()
    with pytest.raises(ValueError, match="columns"):
        DotScorer(users, items[:, :3])
    with pytest.raises(ValueError, match="2-d"):
        DotScorer(users[0], items)
    with pytest.raises(TypeError, match="floating point"):
        DotScorer(users.astype(np.int64), items)
    with pytest.raises(IndexError, match=r"\[0, 70\)"):
        DotScorer(users, items)(np.array([3, 70]))


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("batch_size", [7, 64])
def test_parallel_equals_sequential(workers, batch_size):
    users, items, seen = factors()
    order = np.random.default_rng(1).permutation(len(users))
    scorer = DotScorer(users, items)
    expected = collect(iter_topk(scorer, order, 5, exclude=seen, batch_size=batch_size))
    got = collect(iter_topk_parallel(scorer.fork, order, 5, exclude=seen, batch_size=batch_size, workers=workers))
    np.testing.assert_array_equal(got[0], expected[0])  # users, in order
    np.testing.assert_array_equal(got[1], expected[1])  # the same lists
    # The scores may differ in the last float32 bit: with several torch threads, a batch's
    # matmul splits its work differently by batch shape, so compare them with a tolerance.
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-5, atol=1e-6)
    assert (got[0] == order).all()


def test_parallel_raises_scorer_errors_and_bad_arguments():
    users, items, seen = factors()

    def broken():
        return lambda batch: torch.zeros((len(batch), 3))

    with pytest.raises(ValueError, match="columns"):
        list(iter_topk_parallel(broken, np.arange(70), 5, exclude=seen, batch_size=8, workers=2))
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        list(iter_topk_parallel(broken, np.arange(70), 5, workers=0))
    with pytest.raises(ValueError, match="outside"):
        list(iter_topk_parallel(broken, np.arange(71), 5, exclude=seen, workers=2))


def test_parallel_can_stop_early():
    users, items, seen = factors()
    scorer = DotScorer(users, items)
    stream = iter_topk_parallel(scorer.fork, np.arange(70), 5, exclude=seen, batch_size=4, workers=2)
    first = next(stream)
    stream.close()  # cancels the rest, joins the threads
    assert first[0].tolist() == [0, 1, 2, 3]
