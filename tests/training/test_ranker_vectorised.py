"""The vectorised featurisation equals a straightforward per-pair reference on a small random graph.

The reference computes the content, KG and context features pair by pair from their
definitions (training/ranker/features.py's table) with plain numpy loops; the batch
code must give the same values (float tolerance) whatever its chunking.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from kg.graph import ENTITY, ITEM, Graph
from training.ranker import features as F
from training.ranker import history_features as H
from training.ranker.candidates import generate_candidates, history_mask

DAY = 86400.0


@pytest.fixture(scope="module")
def random_case():
    rng = np.random.default_rng(7)
    num_users, num_items, num_entities = 40, 60, 12
    pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, num_users, 500), rng.integers(0, num_items, 500))}
    users, items = np.array(sorted(pairs)).T
    times = rng.uniform(0, 300, len(users)) * DAY
    times[rng.random(len(users)) < 0.1] = np.nan  # some interactions without a timestamp
    heads = rng.integers(0, num_items - 5, 90)  # the last 5 items have no entity
    tails = rng.integers(0, num_entities, 90)
    triples = pd.DataFrame({"head": heads, "head_type": ITEM, "relation": 0, "tail": tails, "tail_type": ENTITY})
    graph = Graph(
        interactions=pd.DataFrame(
            {"user": users, "item": items, "weight": 1.0, "count": 1, "timestamp": times, "split": 0}
        ),
        items=pd.DataFrame({"item_id": [str(i) for i in range(num_items)]}),
        users=pd.DataFrame({"user_id": [f"u{u}" for u in range(num_users + 2)]}),  # two users without history
        entities=pd.DataFrame(
            {"entity_id": [f"e{e}" for e in range(num_entities)], "name": "e", "source": "kg"}
        ),
        relations=pd.DataFrame({"relation": ["r"]}),
        triples=triples.drop_duplicates(["head", "tail"]),
    )
    history = graph.matrix("train", weighted=True)
    history_times = graph.timestamp_matrix("train")
    text = rng.normal(size=(num_items, 8)).astype(np.float32)
    text[3] = text[4]  # identical texts: ties in the most similar history item
    stats = F.item_stats(graph, history, item_text_embeddings=text, history_times=history_times)
    scores = {"a": torch.from_numpy(rng.normal(size=history.shape).astype(np.float32)),
              "b": torch.from_numpy(rng.normal(size=history.shape).astype(np.float32))}  # fmt: skip
    scores["b"][rng.random(history.shape) < 0.2] = float("-inf")  # items a source cannot rank
    scores["b"][3] = float("-inf")  # a row it cannot rank at all
    candidates = generate_candidates(scores, history_mask(history), 15)
    return graph, history, history_times, stats, scores, candidates


def reference(rows, items, history, times, stats):
    """Per-pair content, KG and context features from their definitions."""
    text = stats.text.numpy().astype(np.float64)
    entities = stats.item_entities.tocsr()
    dense_times = times.toarray() if times is not None else None
    names = ("content.max", "content.mean", "content.missing", "kg.overlap", "kg.count", "ctx.user_idle",
             "ctx.entity_gap", "ctx.text_gap")  # fmt: skip
    out = {name: np.zeros(len(items)) for name in names}
    for p, (row, item) in enumerate(zip(rows, items)):
        hist = history.indices[history.indptr[row] : history.indptr[row + 1]]
        if len(hist):
            cosine = text[hist] @ text[item]
            out["content.max"][p], out["content.mean"][p] = cosine.max(), cosine.mean()
        else:
            out["content.missing"][p] = 1.0
        own = entities.indices[entities.indptr[item] : entities.indptr[item + 1]]
        holders = [sum(e in entities.indices[entities.indptr[h] : entities.indptr[h + 1]] for h in hist) for e in own]
        if len(own):
            out["kg.overlap"][p] = np.mean([c > 0 for c in holders])
            out["kg.count"][p] = np.log1p(np.mean(holders))
        if dense_times is None:
            continue
        row_times = dense_times[row]
        timed = [h for h in hist if np.isfinite(row_times[h])]
        if not timed:
            continue
        last = max(row_times[h] for h in timed)
        out["ctx.user_idle"][p] = np.log1p((stats.now - last) / DAY)
        sharing = [h for h in timed if set(own) & set(entities.indices[entities.indptr[h] : entities.indptr[h + 1]])]
        if sharing:
            out["ctx.entity_gap"][p] = np.log1p((last - max(row_times[h] for h in sharing)) / DAY)
        if len(hist):
            most_similar = hist[int(np.argmax(text[hist] @ text[item]))]
            if np.isfinite(row_times[most_similar]):
                out["ctx.text_gap"][p] = np.log1p(max(last - row_times[most_similar], 0.0) / DAY)
    return out


@pytest.mark.parametrize("chunk_elements", [1 << 22, 50])  # one chunk; a chunk per few rows
@pytest.mark.parametrize("with_times", [True, False])
@pytest.mark.parametrize("cosine_table", [True, False])  # item-item table gathers; per-chunk products
def test_vectorised_features_match_the_reference(
    random_case, monkeypatch, chunk_elements, with_times, cosine_table
):
    monkeypatch.setattr(H, "_CHUNK_ELEMENTS", chunk_elements)
    graph, history, history_times, stats, scores, candidates = random_case
    assert stats.text_cosine is not None and stats.entity_shared is not None  # 60 items: the tables are built
    if not cosine_table:
        stats = dataclasses.replace(stats, text_cosine=None, entity_shared=None)
    times = history_times if with_times else None
    matrix = F.build_features(
        candidates.rows, candidates.items, source_scores=scores, ranks=candidates.ranks, history=history,
        history_times=times, stats=stats, now=stats.now if with_times else None, source_names=["a", "b"],
        groups=F.ALL_GROUPS,
    )  # fmt: skip
    names = F.feature_names(["a", "b"], F.ALL_GROUPS)
    got = {name: matrix[:, j].numpy() for j, name in enumerate(names)}
    expected = reference(candidates.rows.numpy(), candidates.items.numpy(), history, times, stats)
    for name, rows in scores.items():  # z-score within the row over its finite entries; the row's lowest else
        z = np.zeros(rows.shape)
        for r, row in enumerate(rows.numpy().astype(np.float64)):
            finite = np.isfinite(row)
            if finite.any():
                std = max(row[finite].std(), 1e-8)
                mean = row[finite].mean()
                z[r] = np.where(finite, (row - mean) / std, (row[finite].min() - mean) / std)
        expected[f"{name}.z"] = z[candidates.rows.numpy(), candidates.items.numpy()]
    assert expected["content.missing"].sum() > 0 and expected["content.missing"].sum() < len(candidates.items)
    for name, values in expected.items():
        np.testing.assert_allclose(got[name], values, atol=1e-5, err_msg=name)


def test_batch_rows_are_independent(random_case):
    """A user's features do not depend on which other users share its batch."""
    graph, history, history_times, stats, scores, _ = random_case

    def features(users):
        batch_scores = {name: s[users] for name, s in scores.items()}
        cands = generate_candidates(batch_scores, history_mask(history[users]), 15)
        matrix = F.build_features(
            cands.rows, cands.items, source_scores=batch_scores, ranks=cands.ranks, history=history[users],
            history_times=history_times[users], stats=stats, now=stats.now, source_names=["a", "b"],
            groups=F.ALL_GROUPS,
        )  # fmt: skip
        return cands, matrix

    users = np.arange(history.shape[0])
    together, matrix = features(users)
    for user in (0, 5, history.shape[0] - 1):
        alone, row_matrix = features(users[user : user + 1])
        lo, hi = int(together.offsets[user]), int(together.offsets[user + 1])
        assert torch.equal(alone.items, together.items[lo:hi])
        np.testing.assert_allclose(row_matrix.numpy(), matrix[lo:hi].numpy(), atol=1e-6)


def test_inner_validator_equals_full_ranking_evaluate():
    """The ranker's early-stopping NDCG on candidate pairs equals eval.evaluate on dense rows."""
    import scipy.sparse as sp

    from eval import evaluate
    from training.ranker.fitting import CandidateLists, inner_validator

    rng = np.random.default_rng(0)
    num_users, num_items = 50, 300
    history = sp.random(num_users, num_items, density=0.05, random_state=1, format="csr")
    labels = sp.random(num_users, num_items, density=0.03, random_state=2, format="csr")
    labels = sp.csr_matrix(labels - labels.multiply(history))
    labels.eliminate_zeros()
    users = np.flatnonzero(np.diff(labels.indptr) > 0)
    items, targets, sizes = [], [], []
    for user in users:
        pool = np.setdiff1d(np.arange(num_items), history[user].indices)
        chosen = np.sort(rng.choice(pool, int(rng.integers(5, 60)), replace=False))
        items.append(chosen)
        targets.append(np.isin(chosen, labels[user].indices).astype(np.float32))
        sizes.append(len(chosen))
    offsets = torch.zeros(len(users) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(torch.tensor(sizes), 0)
    lists = CandidateLists(
        users=users, items=torch.from_numpy(np.concatenate(items)), features=torch.randn(int(offsets[-1]), 4),
        labels=torch.from_numpy(np.concatenate(targets)), offsets=offsets,
    )  # fmt: skip
    torch.manual_seed(0)
    scorer = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    ours = inner_validator(lists, history, labels, k=20, device=torch.device("cpu"))(scorer)
    rows = torch.repeat_interleave(torch.arange(len(users)), offsets[1:] - offsets[:-1])
    dense = torch.full((len(users), num_items), float("-inf"))
    with torch.no_grad():
        dense[rows, lists.items] = scorer(lists.features)
    full = evaluate(
        lambda b: dense[torch.as_tensor(b)], train=history[users], test=labels[users], item_ids=np.arange(num_items),
        k=20,
    )  # fmt: skip
    assert ours > 0
    assert ours == pytest.approx(full.metrics["ndcg"], rel=1e-9)
