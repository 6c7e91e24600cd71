"""The evaluator: a hand-computed case, scorer/TopK agreement, docs/PROTOCOL.md properties, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from eval import METRIC_KEYS, MostPop, RandomScorer, TopK, evaluate, head_tail


def _csr(rows: dict[int, list[int]], shape: tuple[int, int]) -> sp.csr_matrix:
    users = [u for u, items in rows.items() for _ in items]
    items = [i for u in rows for i in rows[u]]
    return sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=shape)


# Four users, six items "a".."f". Train counts: item 0 three times, items 1 and 2 once
# -> popularity order 0, 1, 2 (tie b < c), 3, 4, 5; head = ceil(0.2 * 6) = 2 items {0, 1}.
TRAIN = _csr({0: [0], 1: [0, 1], 2: [0, 2]}, (4, 6))
TEST = _csr({0: [1, 3], 1: [4], 2: [1, 5]}, (4, 6))  # user 3 has no test items: skipped
ITEM_IDS = list("abcdef")
SCORES = np.array(
    [
        [9, 1, 2, 8, 3, 0],  # item 0 masked -> top-2 [3, 4]: one hit of 2
        [0, 0, 5, 1, 7, 6],  # items 0, 1 masked -> [4, 5]: one hit of 1
        [0, 3, 9, 1, 2, 4],  # items 0, 2 masked -> [5, 1]: two hits of 2
        [1, 1, 1, 1, 1, 1],
    ],
    dtype=np.float32,
)
IDCG2 = 1 + 1 / math.log2(3)


def test_hand_computed_case():
    result = evaluate(lambda u: SCORES[u], train=TRAIN, test=TEST, item_ids=ITEM_IDS, k=2, sparse_max_train=1)
    expected = {
        "recall": (0.5 + 1 + 1) / 3,
        "ndcg": (1 / IDCG2 + 1 + 1) / 3,
        "precision": (0.5 + 0.5 + 1) / 3,
        "hit_rate": 1.0,
        "mrr": 1.0,
        "map": (0.5 + 1 + 1) / 3,
        "tail_recall": 1.0,  # tail test items 3, 4, 5 are all hit
        "aplt": (1 + 1 + 0.5) / 3,  # user 2's list [5, 1] holds head item 1
        "coverage": 4 / 6,
        "gini": 16 / 30,  # counts sorted [0, 0, 1, 1, 2, 2]
    }
    assert result.metrics == pytest.approx(expected)
    assert list(result.metrics) == list(METRIC_KEYS)
    assert (result.k, result.n_users, result.n_tail_users, result.head_size) == (2, 3, 3, 2)
    assert result.rec_counts.tolist() == [0, 1, 0, 1, 2, 2]
    assert result.train_counts.tolist() == [3, 1, 1, 0, 0, 0]
    assert result.sparse == {"threshold": 1, "n_users": 1, "recall": 0.5, "ndcg": pytest.approx(1 / IDCG2)}
    deciles = result.deciles
    assert [d["n_items"] for d in deciles] == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    # Decile 1 is item 1: test item of users 0 and 2, hit only by user 2.
    assert (deciles[1]["recall"], deciles[1]["n_users"], deciles[1]["n_test_items"]) == (0.5, 2, 2)
    assert [deciles[d]["recall"] for d in (3, 4, 5)] == [1.0, 1.0, 1.0]
    assert math.isnan(deciles[0]["recall"]) and deciles[0]["n_users"] == 0
    assert deciles[5]["rec_share"] == pytest.approx(2 / 6)
    assert (result.n_short_lists, result.n_empty_lists, result.n_train_listed) == (0, 0, 0)


def test_topk_table_gives_the_same_numbers():
    from_scores = evaluate(lambda u: SCORES[u], train=TRAIN, test=TEST, item_ids=ITEM_IDS, k=2)
    table = TopK(users=[2, 0, 1, 3], items=[[5, 1, 4], [3, 4, 2], [4, 5, 2], [0, 1, 2]])  # cut to k = 2
    from_table = evaluate(table, train=TRAIN, test=TEST, item_ids=ITEM_IDS, k=2)
    assert from_table.metrics == pytest.approx(from_scores.metrics)
    assert from_table.n_users == 3


def test_topk_short_missing_and_train_items_are_counted_not_hidden():
    # User 0: one item; user 1: absent (an empty list); user 2: lists its train item 2 first.
    table = TopK(users=[0, 2], items=[[3, -1], [2, 5]])
    result = evaluate(table, train=TRAIN, test=TEST, item_ids=ITEM_IDS, k=2)
    assert (result.n_short_lists, result.n_empty_lists, result.n_train_listed) == (2, 1, 1)
    assert result.metrics["recall"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert result.metrics["precision"] == pytest.approx((0.5 + 0 + 0.5) / 3)  # short lists still divide by K
    assert result.metrics["aplt"] == pytest.approx((1 + 0 + 1) / 3)  # over the list's own length
    assert any("evaluated as given" in note for note in result.notes())


def test_scorer_and_table_agree_on_a_real_graph(structured_graph):
    train = structured_graph.matrix("train", "valid")
    test = structured_graph.matrix("test")
    ids = structured_graph.item_ids
    scorer = RandomScorer(seed=3).fit(train)
    by_scorer = evaluate(scorer, train=train, test=test, item_ids=ids, k=10, batch_size=17)
    users = np.arange(structured_graph.num_users)
    from eval import topk

    items, _ = topk(scorer, users, 10, exclude=train)
    by_table = evaluate(TopK(users=users, items=items), train=train, test=test, item_ids=ids, k=10)
    assert by_table.metrics == pytest.approx(by_scorer.metrics)
    torch_scorer = lambda u: torch.from_numpy(scorer(u))  # noqa: E731
    by_torch = evaluate(torch_scorer, train=train, test=test, item_ids=ids, k=10, batch_size=1000)
    assert by_torch.metrics == pytest.approx(by_scorer.metrics)
    assert by_scorer.n_users == int((np.diff(test.indptr) > 0).sum())


@st.composite
def problems(draw):
    n_users = draw(st.integers(2, 14))
    n_items = draw(st.integers(2, 20))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    state = rng.random((n_users, n_items))
    train = sp.csr_matrix((state < 0.3).astype(np.float32))
    test = sp.csr_matrix(((state >= 0.3) & (state < 0.5)).astype(np.float32))
    k = draw(st.integers(1, n_items))
    return train, test, k, seed


@settings(max_examples=30, deadline=None)
@given(problems(), st.randoms(use_true_random=False), st.integers(1, 5))
def test_permuting_users_changes_nothing(problem, rnd, batch_size):
    train, test, k, seed = problem
    assume(test.nnz)
    ids = [f"i{j}" for j in range(train.shape[1])]
    scorer = RandomScorer(seed).fit(train)
    base = evaluate(scorer, train=train, test=test, item_ids=ids, k=k)
    # The same users in another order and other batches...
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    rnd.shuffle(users)
    reordered = evaluate(scorer, train=train, test=test, item_ids=ids, k=k, users=users, batch_size=batch_size)
    assert reordered.metrics == pytest.approx(base.metrics, nan_ok=True)
    # ...and with users relabelled (rows permuted, the scorer following them).
    perm = np.arange(train.shape[0])
    rnd.shuffle(perm)
    relabelled = evaluate(
        lambda u: scorer(perm[u]), train=train[perm], test=test[perm], item_ids=ids, k=k, batch_size=batch_size
    )
    assert relabelled.metrics == pytest.approx(base.metrics, nan_ok=True)
    for key in ("recall", "n_users", "n_test_items"):
        assert [d[key] for d in relabelled.deciles] == pytest.approx([d[key] for d in base.deciles], nan_ok=True)


@settings(max_examples=30, deadline=None)
@given(problems())
def test_metrics_lie_in_unit_interval_and_a_perfect_ranking_scores_one(problem):
    train, test, k, seed = problem
    assume(test.nnz)
    ids = [str(j) for j in range(train.shape[1])]
    oracle_scores = test.toarray() + np.random.default_rng(seed).random(test.shape) * 0.5
    result = evaluate(lambda u: oracle_scores[u], train=train, test=test, item_ids=ids, k=k)
    for key, value in result.metrics.items():
        assert math.isnan(value) or 0.0 <= value <= 1.0 + 1e-12, key
    n_test = np.diff(test.indptr)[np.diff(test.indptr) > 0]
    assert result.metrics["ndcg"] == pytest.approx(1.0)
    assert result.metrics["map"] == pytest.approx(1.0)
    assert result.metrics["hit_rate"] == 1.0
    assert result.metrics["recall"] == pytest.approx(np.mean(np.minimum(n_test, k) / n_test))


@settings(max_examples=30, deadline=None)
@given(st.integers(5, 40), st.integers(0, 2**16), st.booleans(), st.data())
def test_mostpop_recommends_no_tail_item_when_the_head_has_room(n_items, seed, numeric_ids, data):
    rng = np.random.default_rng(seed)
    state = rng.random((12, n_items)) ** 3  # skewed: some items much more popular
    train = sp.csr_matrix((state > 0.8).astype(np.float32))
    test = sp.csr_matrix(((state > 0.5) & (state <= 0.8)).astype(np.float32))
    assume(test.nnz)
    ids = [str((j * 7) % 41) if numeric_ids else f"x{(j * 7) % 41}" for j in range(n_items)]
    is_head = head_tail(np.bincount(train.indices, minlength=n_items), ids)
    evaluated = np.flatnonzero(np.diff(test.indptr) > 0)
    # Masked head items push MostPop's list down the order; K must fit in what is left of the head.
    room = int(is_head.sum()) - max(int(is_head[train[u].indices].sum()) for u in evaluated)
    assume(room >= 1)
    k = data.draw(st.integers(1, room))
    result = evaluate(MostPop().fit(train, item_ids=ids), train=train, test=test, item_ids=ids, k=k)
    assert result.metrics["aplt"] == 0.0
    assert not result.rec_counts[~is_head].any()


def test_users_argument_restricts_and_skips_users_without_test_items():
    result = evaluate(lambda u: SCORES[u], train=TRAIN, test=TEST, item_ids=ITEM_IDS, k=2, users=[2, 3])
    assert result.n_users == 1
    assert result.metrics["recall"] == 1.0


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"test": TEST[:3]}, ValueError, "train has shape \\(4, 6\\) but test has shape \\(3, 6\\)"),
        ({"k": 7}, ValueError, "k=7 is larger than the catalogue \\(6 items\\)"),
        ({"k": 0}, ValueError, "k must be an integer >= 1"),
        ({"k": 2.0}, TypeError, "k must be an integer"),
        ({"item_ids": ITEM_IDS[:5]}, ValueError, "item_ids has 5 entries but train/test have 6"),
        ({"users": [0, 0]}, ValueError, "more than once"),
        ({"users": [9]}, ValueError, "users holds indices outside \\[0, 4\\)"),
        ({"train": TRAIN.toarray()}, TypeError, "train must be a scipy sparse"),
        ({"sparse_max_train": -1}, ValueError, "sparse_max_train"),
        ({"source": "scores.csv"}, TypeError, "source must be a scorer"),
        ({"source": TopK(users=[0], items=[[6]])}, ValueError, "item index 6; the catalogue has 6"),
        ({"source": TopK(users=[4], items=[[1]])}, ValueError, "user index 4; there are 4 users"),
    ],
)
def test_bad_arguments_name_the_argument(change, error, match):
    arguments = {"source": lambda u: SCORES[u], "train": TRAIN, "test": TEST, "item_ids": ITEM_IDS, "k": 2}
    arguments.update(change)
    source = arguments.pop("source")
    with pytest.raises(error, match=match):
        evaluate(source, **arguments)
