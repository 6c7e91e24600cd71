"""graphrec.serving.filters and batch_topk: request masks, seen padding, the thread-count guard."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from eval.ranking import iter_topk
from graphrec.serving.batch_topk import parallel_dot_topk
from graphrec.serving.dot_scorer import DotScorer
from graphrec.serving.filters import ItemFilter, item_filter, pad_seen

IDS = np.array(["a", "b", "c", "d", "e"], dtype=object)


def index_of(ids):
    found = [int(np.flatnonzero(IDS == str(i))[0]) if str(i) in IDS else -1 for i in ids]
    if min(found, default=0) < 0:
        raise KeyError("unknown item")
    return np.asarray(found, dtype=np.int64)


def test_filter_masks_banned_and_outside_candidates_without_touching_the_input():
    request = item_filter(2, 5, index_of, exclude=["b"], candidates=["a", "b", "d"])
    scores = torch.arange(10, dtype=torch.float32).reshape(2, 5)
    masked = request.apply(scores)
    assert not request.empty
    assert torch.isfinite(masked).tolist() == [[True, False, False, True, False]] * 2
    assert masked[1, 3] == 8.0 and torch.isfinite(scores).all()  # a copy: the scorer's buffer stays intact
    assert item_filter(5, 5, index_of, None, None).empty and ItemFilter().apply(scores).equal(scores)


@pytest.mark.parametrize(
    ("k", "exclude", "candidates", "message"),
    [
        (0, None, None, "positive integer"),
        (True, None, None, "positive integer"),
        (6, None, None, "larger than the catalogue"),
        (1, None, [], "candidates is empty"),
        (2, ["a"], ["a", "b"], "1 candidate items left"),
    ],
)
def test_filter_refuses_bad_requests(k, exclude, candidates, message):
    with pytest.raises(ValueError, match=message):
        item_filter(k, 5, index_of, exclude, candidates)


def test_pad_seen_widens_to_added_items():
    seen = sp.csr_matrix(np.eye(3, 4, dtype=np.float32))
    assert pad_seen(seen, 4) is seen
    padded = pad_seen(seen, 6)
    assert padded.shape == (3, 6) and (padded[:, :4] != seen).nnz == 0 and padded[:, 4:].nnz == 0


def test_parallel_dot_topk_equals_iter_topk_and_restores_torch_threads():
    rng = np.random.default_rng(3)
    users, items = rng.normal(size=(40, 6)).astype(np.float32), rng.normal(size=(30, 6)).astype(np.float32)
    seen = sp.random(40, 30, density=0.2, format="csr", random_state=3)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # two workers, and a count that the guard must put back
    try:
        got = list(parallel_dot_topk(DotScorer(users, items), np.arange(40), 5, seen, 7, False))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    want = list(iter_topk(DotScorer(users, items), np.arange(40), 5, exclude=seen, batch_size=7))
    assert np.array_equal(np.concatenate([g[1] for g in got]), np.concatenate([w[1] for w in want]))
    np.testing.assert_allclose(np.concatenate([g[2] for g in got]), np.concatenate([w[2] for w in want]), rtol=1e-5)
