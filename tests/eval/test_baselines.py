"""MostPop and RandomScorer: popularity order, tie-breaks, per-user determinism."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from eval import MostPop, RandomScorer, evaluate

# Item counts (distinct users): item 0: 1, item 1: 3, item 2: 1, item 3: 0; weights must not matter.
TRAIN = sp.csr_matrix(
    (np.array([5.0, 1, 1, 1, 9], np.float32), ([0, 0, 1, 2, 2], [1, 2, 1, 1, 0])), shape=(3, 4)
)


def test_mostpop_scores_are_strict_ranks_of_popularity():
    pop = MostPop().fit(TRAIN)
    assert pop.item_counts_.tolist() == [1, 3, 1, 0]
    scores = pop(np.array([2, 0]))
    assert scores.shape == (2, 4) and scores.dtype == np.float32
    # Popularity 3 first, then the tie 0/2 by index, then item 3.
    assert scores[0].tolist() == [3.0, 4.0, 2.0, 1.0]
    assert (scores[0] == scores[1]).all()


def test_mostpop_breaks_ties_by_external_id_when_given():
    scores = MostPop().fit(TRAIN, item_ids=["9", "5", "3", "7"])(np.array([0]))[0]
    assert np.argsort(-scores).tolist() == [1, 2, 0, 3]  # tie between ids "9" and "3": 3 < 9


def test_mostpop_returns_fresh_arrays():
    pop = MostPop().fit(TRAIN)
    first = pop(np.array([0]))
    first[:] = 0
    assert pop(np.array([0]))[0].max() == 4.0


def test_random_scorer_is_deterministic_per_user_whatever_the_batch():
    scorer = RandomScorer(seed=11).fit(sp.csr_matrix((50, 30)))
    alone = scorer(np.array([7]))[0]
    in_batch = scorer(np.array([3, 7, 1]))[1]
    assert np.array_equal(alone, in_batch)
    assert alone.dtype == np.float32 and ((alone >= 0) & (alone < 1)).all()
    assert not np.array_equal(alone, scorer(np.array([8]))[0])
    assert not np.array_equal(alone, RandomScorer(seed=12).fit(sp.csr_matrix((50, 30)))(np.array([7]))[0])


def test_random_baseline_is_near_chance_on_a_real_graph(structured_graph):
    train = structured_graph.matrix("train", "valid")
    test = structured_graph.matrix("test")
    ids = structured_graph.item_ids
    rand = evaluate(RandomScorer(seed=0).fit(train), train=train, test=test, item_ids=ids, k=10)
    pop = evaluate(MostPop().fit(train, item_ids=ids), train=train, test=test, item_ids=ids, k=10)
    # Chance precision: about test items / unmasked items per user = 3 / (80 - 10) ~= 0.043.
    assert 0.02 < rand.metrics["precision"] < 0.07
    assert pop.metrics["recall"] > 2 * rand.metrics["recall"]
    assert rand.metrics["coverage"] == 1.0 and pop.metrics["coverage"] < 0.3
    assert rand.metrics["gini"] < 0.2 < 0.8 < pop.metrics["gini"]


def test_baselines_refuse_use_before_fit_and_bad_input():
    with pytest.raises(RuntimeError, match="MostPop is not fitted"):
        MostPop()(np.array([0]))
    with pytest.raises(RuntimeError, match="RandomScorer is not fitted"):
        RandomScorer()(np.array([0]))
    with pytest.raises(TypeError, match="user_items must be a scipy sparse"):
        MostPop().fit(np.ones((2, 2)))
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        RandomScorer(seed=-1)
    with pytest.raises(ValueError, match="item_ids has 2 entries"):
        MostPop().fit(TRAIN, item_ids=["a", "b"])
