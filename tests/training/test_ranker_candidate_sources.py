"""Which sources' top-N the hybrid ranks (``candidate_sources``), and factor sources scored at the candidates only.

The fit always learns from the union of every source's top-N; ranking takes the candidates of
``candidate_sources`` ("auto": all but the factor models, unless one has the best candidate recall). A source
outside them that is a factor model (ALS here, real implicit) or MostPop is not scored over the
catalogue: its ``{s}.z`` feature comes from its factors (:class:`training.base.FactorScores`),
which must give the same numbers as the dense rows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eval import MostPop
from tests.conftest import make_structured_graph
from tests.training.ranker_sources import sources, title_vectors
from training.base import FactorScores
from training.pipeline.config import TrainConfig
from training.pipeline.runner import Pipeline
from training.ranker import HybridRanker, RankerInputs
from training.ranker.candidates import top_n_items
from training.ranker.features import _standardised_at
from training.ranker.scoring import factor_scores
from training.sources.als import ALS
from training.sources.knn import ItemKNN

SMALL = dict(candidates_per_source=10, hidden=16, epochs=8, patience=8, train_batch_users=16, ensemble=1)


def factors(seed: int, num_users: int = 7, num_items: int = 40, dim: int = 5) -> FactorScores:
    generator = torch.Generator().manual_seed(seed)
    users = torch.randn(num_users, dim, generator=generator)
    items = torch.randn(num_items, dim, generator=generator) + 0.5  # a non-zero mean: var != second moment
    return FactorScores(users, *FactorScores.item_moments(items))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), dim=st.integers(1, 12), num_items=st.integers(2, 60))
def test_factor_moments_and_pairs_equal_the_dense_rows(seed, dim, num_items):
    scores = factors(seed, num_items=num_items, dim=dim)
    dense = scores.dense()
    var, mean = scores.var_mean()
    torch.testing.assert_close(mean, dense.mean(dim=1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(var, dense.var(dim=1, unbiased=False), rtol=1e-4, atol=1e-4)
    rows = torch.randint(scores.shape[0], (50,), generator=torch.Generator().manual_seed(seed))
    items = torch.randint(num_items, (50,), generator=torch.Generator().manual_seed(seed + 1))
    torch.testing.assert_close(scores.at(rows, items), dense[rows, items], rtol=1e-5, atol=1e-5)
    rows = torch.sort(rows).values
    torch.testing.assert_close(
        _standardised_at(scores, rows, items), _standardised_at(dense, rows, items), rtol=1e-3, atol=1e-3
    )


@pytest.fixture(scope="module")
def setup(structured_graph):
    graph = structured_graph
    vectors = title_vectors(graph)

    def inputs(*splits):
        history = graph.matrix(*splits, weighted=True)
        als = ALS(factors=8, iterations=5, regularization=1.0, num_threads=1, seed=0).fit(graph, history)
        scorers = {**sources(history, vectors), "als": als.score}
        return RankerInputs(history, scorers, graph.timestamp_matrix(*splits)), als

    (fit, _), (full, als) = inputs("train"), inputs("train", "valid")
    return graph, vectors, fit, full, als


def fitted(setup, **config) -> HybridRanker:
    graph, vectors, fit, full, _ = setup
    ranker = HybridRanker(**{**SMALL, **config})
    ranker.fit(fit.context(graph, vectors), np.arange(graph.num_users), graph.matrix("valid"))
    return ranker.bind(full.context(graph, vectors))


def test_learners_give_their_scores_as_factors(setup):
    graph, _, _, full, als = setup
    users = np.array([3, 0, 11], dtype=np.int64)
    torch.testing.assert_close(als.score_factors(users).dense(), als.score(users), rtol=1e-5, atol=1e-5)
    assert factor_scores(als.score, users) is not None
    assert factor_scores(als.recalculate_users, users) is None  # only the learner's own score is a factor product
    knn = ItemKNN().fit(graph, full.history)
    assert knn.score_factors(users) is None and factor_scores(knn.score, users) is None
    pop = full.source_scorers["pop"]
    assert isinstance(pop, MostPop)
    np.testing.assert_allclose(factor_scores(pop, users).dense().numpy(), pop(users))


def test_auto_leaves_out_the_factor_models_that_are_not_the_best_source(setup):
    graph, _, _, full, _ = setup
    ranker = fitted(setup)
    recall = {s: r for s, r in ranker.diagnostics_["candidate_recall"].items() if s != "union"}
    best = max(recall, key=recall.get)
    chosen = [s for s in ranker.source_names_ if s in {"cooc", "title", best}]  # als and pop are factor models
    assert ranker.candidate_sources_ == chosen == ranker.diagnostics_["candidate_sources"]
    assert len(chosen) < len(ranker.source_names_)
    users = np.arange(graph.num_users, dtype=np.int64)
    scores = ranker.score(users)
    top = [
        top_n_items(torch.as_tensor(full.source_scorers[s](users)).float(), full.history, SMALL["candidates_per_source"])
        for s in chosen
    ]
    for row in range(0, graph.num_users, 7):
        candidates = torch.isfinite(scores[row]).nonzero().squeeze(1)
        union = torch.unique(torch.cat([t[row] for t in top]))
        assert torch.equal(candidates, union[union >= 0])
    items, _ = ranker.topk(users, 10)
    ranked = torch.topk(scores, 10, dim=1).indices.numpy()
    assert (items == ranked).mean() > 0.99  # the same lists up to the order of exact ties


def test_factor_sources_score_as_their_dense_rows(setup):
    """score() takes ALS and MostPop as factors (they are not candidate sources); score_rows gets their dense rows."""
    graph, _, _, full, _ = setup
    ranker = fitted(setup, candidate_sources="cooc,title")
    assert ranker.candidate_sources_ == ["cooc", "title"]
    users = np.array([1, 4, 9, 30], dtype=np.int64)
    inputs = ranker._ranking_rows(users)
    assert {n for n, v in inputs.items() if isinstance(v, FactorScores)} == {"als", "pop"}
    rows = {name: scorer(users) for name, scorer in full.source_scorers.items()}
    dense = ranker.score_rows(rows, full.history[users], history_times=full.history_times[users])
    torch.testing.assert_close(ranker.score(users), dense, rtol=1e-4, atol=1e-4)


def test_all_ranks_the_union_as_the_fit_did(setup):
    graph, _, _, _, _ = setup
    everything = fitted(setup, candidate_sources="all")
    assert everything.candidate_sources_ == everything.source_names_
    fewer = fitted(setup, candidate_sources=["cooc"])
    users = np.arange(graph.num_users, dtype=np.int64)
    union = torch.isfinite(everything.score(users)).sum(dim=1)
    single = torch.isfinite(fewer.score(users)).sum(dim=1)
    assert (single <= SMALL["candidates_per_source"]).all() and (union >= single).all() and union.sum() > single.sum()


def test_settings_round_trip_and_old_rankers_rank_the_union(setup, tmp_path):
    graph, vectors, _, full, _ = setup
    ranker = fitted(setup)
    ranker.save(tmp_path / "r")
    loaded = HybridRanker.load(tmp_path / "r").bind(full.context(graph, vectors))
    assert loaded.candidate_sources_ == ranker.candidate_sources_
    users = np.arange(20, dtype=np.int64)
    torch.testing.assert_close(loaded.score(users), ranker.score(users))
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    del config["scalars"]["candidate_sources"]
    del config["config"]["candidate_sources"]
    (tmp_path / "r" / "config.json").write_text(json.dumps(config))
    old = HybridRanker.load(tmp_path / "r")
    assert old.candidate_sources == "auto"
    assert old.candidate_sources_ == old.source_names_


def test_bad_candidate_sources(setup):
    graph, vectors, fit, _, _ = setup
    with pytest.raises(ValueError, match="ranks feature group needs every source"):
        HybridRanker(candidate_sources=["cooc"], feature_groups=("sources", "ranks"))
    with pytest.raises(TypeError, match="candidate_sources must be"):
        HybridRanker(candidate_sources=3)
    with pytest.raises(ValueError, match="non-empty source names"):
        HybridRanker(candidate_sources="cooc,")
    with pytest.raises(ValueError, match=r"candidate_sources \['nope'\] are not sources"):
        HybridRanker(**SMALL, candidate_sources="nope").fit(
            fit.context(graph, vectors), np.arange(graph.num_users), graph.matrix("valid")
        )
    ranks = HybridRanker(**SMALL, feature_groups=("sources", "ranks")).fit(
        fit.context(graph, vectors), np.arange(graph.num_users), graph.matrix("valid")
    )
    assert ranks.candidate_sources_ == ranks.source_names_  # auto with ranks: every source's top-N


def test_the_pipeline_says_which_candidates_the_ranker_ranks(tmp_path):
    config = TrainConfig(device="cpu").with_overrides(
        ["als.factors=8", "als.iterations=3", "ranker.ensemble=1", "ranker.epochs=2", "ranker.refit=false",
         "tune.budget_minutes=0"]  # fmt: skip
    )
    lines: list[str] = []
    graph = make_structured_graph(num_users=40, num_items=30, per_user=6)
    pipeline = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="g", stages=("als", "ranker"), log=lines.append)
    pipeline.run()
    said = [line for line in lines if "ranks the top" in line]
    ranker = pipeline.context.ranker
    assert len(said) == 1 and ", ".join(ranker.candidate_sources_) in said[0] and "candidate_sources=auto" in said[0]
    left_out = [s for s in ranker.source_names_ if s not in ranker.candidate_sources_]
    assert left_out and all(s in said[0] for s in left_out)  # als and pop are both factor models: one is left out
