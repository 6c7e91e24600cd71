"""Feature values of the hybrid ranker on a hand-built case whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from kg.graph import ENTITY, ITEM, Graph
from training.ranker.candidates import history_mask, top_n_ranks
from training.ranker.features import ALL_GROUPS, build_features, feature_groups, feature_names, item_stats

DAY = 86400.0


@pytest.fixture(scope="module")
def tiny():
    """5 items (numeric ids, so the tail tie-break is numeric), 3 users, 3 entities.

    Entities: item0 {e0}, item1 {e0, e1}, item2 {e1}, item3 {e2}, item4 none.
    History: user0 has item0 (day 10) and item3 (day 20); user1 has item1 (day 5); user2 nothing.
    """
    item_ids = ["5", "3", "9", "1", "7"]
    heads = [0, 1, 1, 2, 3]
    tails = [0, 0, 1, 1, 2]
    graph = Graph(
        interactions=pd.DataFrame(
            {
                "user": [0, 0, 1],
                "item": [0, 3, 1],
                "weight": [4.0, 1.0, 1.0],
                "count": [1, 1, 1],
                "timestamp": [10 * DAY, 20 * DAY, 5 * DAY],
                "split": [0, 0, 0],
            }
        ),
        items=pd.DataFrame({"item_id": item_ids}),
        users=pd.DataFrame({"user_id": ["a", "b", "c"]}),
        entities=pd.DataFrame({"entity_id": ["e0", "e1", "e2"], "name": ["e0", "e1", "e2"], "source": ["kg"] * 3}),
        relations=pd.DataFrame({"relation": ["r"]}),
        triples=pd.DataFrame(
            {"head": heads, "head_type": ITEM, "relation": 0, "tail": tails, "tail_type": ENTITY}
        ),
    )
    history = graph.matrix("train", weighted=True)
    times = graph.timestamp_matrix("train")
    text = np.array([[1, 0], [0.6, 0.8], [0, 1], [-1, 0], [2, 0]], dtype=np.float32)
    stats = item_stats(graph, history, item_text_embeddings=text, history_times=times)
    return graph, history, times, stats


def features_of(tiny, rows, items, groups=ALL_GROUPS, with_times=True):
    graph, history, times, stats = tiny
    scores = {"s": torch.arange(15, dtype=torch.float32).reshape(3, 5)}
    ranks = {"s": top_n_ranks(scores["s"], history_mask(history), 2)}
    matrix = build_features(
        torch.tensor(rows),
        torch.tensor(items),
        source_scores=scores,
        ranks=ranks,
        history=history,
        history_times=times if with_times else None,
        stats=stats,
        now=stats.now if with_times else None,
        source_names=["s"],
        groups=groups,
    )
    names = feature_names(["s"], groups)
    assert matrix.shape == (len(rows), len(names))
    return {name: matrix[:, j].numpy() for j, name in enumerate(names)}


def test_item_stats_popularity_tail_and_now(tiny):
    _, _, _, stats = tiny
    # Relative to the catalogue mean (0.6 users per item).
    np.testing.assert_allclose(stats.log_popularity.numpy(), np.log1p([1, 1, 0, 1, 0]) - np.log1p(0.6), rtol=1e-6)
    assert stats.log_mean_activity == pytest.approx(np.log1p(1.0))  # 3 history items over 3 users
    # Head = ceil(0.2 * 5) = 1 item: among the count-1 items, the smallest numeric id ("1" = item 3).
    assert stats.tail.tolist() == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert stats.now == 20 * DAY
    np.testing.assert_array_equal(stats.last_time, [10 * DAY, 5 * DAY, np.nan, 20 * DAY, np.nan])


def test_source_features(tiny):
    f = features_of(tiny, [0, 0, 0], [1, 2, 4])
    row = np.arange(5, dtype=np.float64)
    z = (row - row.mean()) / row.std()
    np.testing.assert_allclose(f["s.z"], z[[1, 2, 4]], rtol=1e-5)
    # user0's history is {0, 3}; the top-2 of the rest by score 0..4 are item 4, then item 2.
    np.testing.assert_allclose(f["s.rr"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(f["s.top"], [0.0, 1.0, 1.0])
    activity = math.log1p(2) - math.log1p(1)  # user0 has 2 items; users hold 1 on average
    np.testing.assert_allclose(f["act.log"], [activity] * 3, rtol=1e-6)
    np.testing.assert_allclose(f["act.s.z"], activity * z[[1, 2, 4]], rtol=1e-5)


def test_kg_and_content_features(tiny):
    f = features_of(tiny, [0, 0, 0, 2], [1, 2, 4, 1])
    # item1 {e0, e1} vs user0's entities {e0 (item0), e2 (item3)}: half its entities, mean count 0.5.
    np.testing.assert_allclose(f["kg.overlap"], [0.5, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(f["kg.count"], [math.log1p(0.5), 0.0, 0.0, 0.0], rtol=1e-6)
    assert f["kg.missing"].tolist() == [0.0, 0.0, 1.0, 1.0]  # item4 has no entity; user2 no history
    # cosines with user0's history (item0 = [1, 0], item3 = [-1, 0]).
    np.testing.assert_allclose(f["content.max"], [0.6, 0.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(f["content.mean"], [0.0, 0.0, 0.0, 0.0], atol=1e-6)
    assert f["content.missing"].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_context_features(tiny):
    f = features_of(tiny, [0, 0, 1], [1, 2, 2])
    # now = day 20. item1 last seen day 5; item2 never (the oldest last time, day 5).
    np.testing.assert_allclose(f["ctx.item_age"], np.log1p([15, 15, 15]), rtol=1e-6)
    np.testing.assert_allclose(f["ctx.user_idle"], np.log1p([0, 0, 15]), rtol=1e-6)
    # item1 first appeared on day 5, 15 days before user0's latest interaction; item2 never appeared.
    np.testing.assert_allclose(f["ctx.item_debut"], [-math.log1p(15), 0.0, 0.0], rtol=1e-6)
    # user0 last acted on day 20; item1 shares e0 with item0 (day 10); item2 shares nothing with {0, 3}.
    # user1 (item1, day 5) shares e1 with item2: gap 0.
    np.testing.assert_allclose(f["ctx.entity_gap"], np.log1p([10, 0, 0]), rtol=1e-6)
    assert f["ctx.entity_none"].tolist() == [0.0, 1.0, 0.0]
    # Most similar history item of item1 for user0 is item0 (day 10); of item2 is item0 too (cos 0 vs 0: first).
    np.testing.assert_allclose(f["ctx.text_gap"][0], math.log1p(10), rtol=1e-6)
    assert f["ctx.missing"].tolist() == [0.0, 0.0, 0.0]


def test_context_without_timestamps_is_zeros_and_flag(tiny):
    f = features_of(tiny, [0, 1], [1, 2], groups=("context",), with_times=False)
    zeros = ("ctx.item_age", "ctx.user_idle", "ctx.item_debut", "ctx.entity_gap", "ctx.entity_none", "ctx.text_gap")
    for name in zeros:
        assert f[name].tolist() == [0.0, 0.0], name
    assert f["ctx.missing"].tolist() == [1.0, 1.0]


def test_feature_layout_follows_groups():
    names = feature_names(["a", "b"], ("popularity", "ranks", "sources"))
    assert names == ["a.z", "b.z", "a.rr", "a.top", "b.rr", "b.top", "pop.log", "pop.tail"]
    groups = feature_groups(["a", "b"], ("popularity", "ranks", "sources"))
    assert groups == ["sources"] * 2 + ["ranks"] * 4 + ["popularity"] * 2
    assert len(feature_names(["a"], ALL_GROUPS)) == len(feature_groups(["a"], ALL_GROUPS))


def test_item_stats_rejects_wrong_text_shape(tiny):
    graph, history, _, _ = tiny
    with pytest.raises(ValueError, match="item_text_embeddings must have shape"):
        item_stats(graph, history, item_text_embeddings=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="history_times has shape"):
        item_stats(graph, history, history_times=sp.csr_matrix((2, 5)))
