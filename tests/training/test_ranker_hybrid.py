"""The hybrid ranker end to end on the structured graph: fit on valid, refit sources, score test.

What every ranker configuration must do is tests/training/ranker_contract.py; here: fusion quality,
diagnostics, ensembles, explanations, the ablation and the arguments.

Sources: item co-occurrence (collaborative), title bag-of-words similarity to the
user's history (content) and MostPop. They are complementary on the structured
graph (the titles carry the taste clusters' topic words), so the learned fusion
must beat each of them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval import evaluate
from tests.training.ranker_sources import sources, title_vectors
from training.base import GraphrecWarning
from training.ranker import ALL_GROUPS, HybridRanker, RankerInputs, ablation
from training.ranker.ablation import REFERENCE
from training.ranker.context import RankerContext
from training.ranker.model import listwise_loss

SMALL = dict(candidates_per_source=25, hidden=32, epochs=25, patience=25, train_batch_users=16, ensemble=1)
#: The shared fixture's ranker averages two members (seeds 2026 and 2027).
ENSEMBLE = 2


@pytest.fixture(scope="module")
def setup(structured_graph):
    graph = structured_graph
    vectors = title_vectors(graph)
    fit_history = graph.matrix("train", weighted=True)
    full_history = graph.matrix("train", "valid", weighted=True)
    fit = RankerInputs(fit_history, sources(fit_history, vectors), graph.timestamp_matrix("train"))
    full = RankerInputs(full_history, sources(full_history, vectors), graph.timestamp_matrix("train", "valid"))
    users = np.arange(graph.num_users, dtype=np.int64)
    return graph, vectors, fit, full, users


def fitted(setup, text: bool = True, **config) -> tuple[HybridRanker, list[float]]:
    graph, vectors, fit, full, users = setup
    vectors = vectors if text else None
    losses: list[float] = []
    ranker = HybridRanker(**{**SMALL, **config})
    ranker.fit(fit.context(graph, vectors), users, graph.matrix("valid"), callback=lambda e, s, loss: losses.append(loss))
    ranker.bind(full.context(graph, vectors))
    return ranker, losses


@pytest.fixture(scope="module")
def hybrid(setup):
    return fitted(setup, ensemble=ENSEMBLE)


def test_hybrid_beats_each_source_on_test(setup, hybrid):
    graph, _, _, full, _ = setup
    ranker, _ = hybrid
    test = graph.matrix("test")
    ours = evaluate(ranker.score, train=full.history, test=test, item_ids=graph.item_ids, k=10).metrics["ndcg"]
    for name, source in full.source_scorers.items():
        theirs = evaluate(source, train=full.history, test=test, item_ids=graph.item_ids, k=10).metrics["ndcg"]
        assert ours > theirs, (name, ours, theirs)
    assert ours > 0.45  # cooc alone is ~0.41 on this graph


def test_score_rows_serves_rows_like_score(setup, hybrid):
    graph, _, _, full, _ = setup
    ranker, _ = hybrid
    users = np.array([5, 0, 17], dtype=np.int64)
    rows = {name: scorer(users) for name, scorer in full.source_scorers.items()}
    history, times = full.history[users], full.history_times[users]
    torch.testing.assert_close(ranker.score_rows(rows, history, history_times=times), ranker.score(users))
    with pytest.warns(GraphrecWarning, match=r"sources \['extra'\] are ignored"):
        ranker.score_rows({**rows, "extra": rows["pop"]}, history, history_times=times)
    with pytest.raises(ValueError, match=r"sources \['cooc'\] are missing"):
        ranker.score_rows({k: v for k, v in rows.items() if k != "cooc"}, history)
    with pytest.raises(ValueError, match="source 'pop' gave scores of shape"):
        ranker.score_rows({**rows, "pop": rows["pop"][:2]}, history)
    with pytest.raises(ValueError, match="history_times must be"):
        ranker.score_rows(rows, history, history_times=full.history_times[:2])


def test_fit_diagnostics(hybrid):
    ranker, losses = hybrid
    d = ranker.diagnostics_
    recall = d["candidate_recall"]
    assert set(recall) == {"cooc", "title", "pop", "union"}
    assert max(recall["cooc"], recall["title"], recall["pop"]) <= recall["union"] <= 1.0
    assert d["users_with_positive_candidate"] + d["users_without_positive_candidate"] == d["users_with_labels"]
    members = d["members"]
    assert [m["seed"] for m in members] == [2026, 2027]
    for member in members:
        assert member["inner_valid_users"] == round(0.1 * d["users_with_positive_candidate"])
        assert member["inner_train_users"] + member["inner_valid_users"] == d["users_with_positive_candidate"]
        assert member["epochs_run"] == SMALL["epochs"]  # patience = epochs: no early stop
        assert member["valid_ndcg_curve"][member["best_epoch"]] == member["best_valid_ndcg"]
    assert len(losses) == d["epochs_run"] == ENSEMBLE * SMALL["epochs"]
    first = losses[: SMALL["epochs"]]
    assert first[-1] < 0.9 * first[0]  # the listwise loss decreases


def test_ensemble_averages_differently_seeded_members(hybrid):
    ranker, _ = hybrid
    first, second = ranker.scorer_.members
    assert not torch.equal(first.skip.weight, second.skip.weight)
    features = torch.randn(5, len(ranker.feature_names_))
    torch.testing.assert_close(ranker.scorer_(features), (first(features) + second(features)) / 2)


def test_listwise_loss_value():
    scores = torch.tensor([[0.0, 0.0, 5.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False]])  # the padded 5.0 must not count
    assert listwise_loss(scores, labels, mask).item() == pytest.approx(np.log(2.0))


def test_a_loaded_ranker_names_the_sources_it_misses(setup, hybrid, tmp_path):
    """Save/load round trips are the contract's (ranker_contract.py); here: a context without a fitted source."""
    graph, vectors, _, full, users = setup
    ranker, _ = hybrid
    ranker.save(tmp_path / "ranker")
    loaded = HybridRanker.load(tmp_path / "ranker")
    partial = {k: v for k, v in full.source_scorers.items() if k != "title"}
    loaded.bind(RankerContext.build(graph, full.history, item_text_embeddings=vectors, source_scorers=partial))
    with pytest.raises(ValueError, match=r"sources \['title'\] are missing"):
        loaded.score(users[:2])


def test_binding_another_context_changes_item_statistics_not_weights(setup):
    graph, vectors, fit, full, users = setup
    ranker, _ = fitted(setup, epochs=2)
    weights = {k: v.clone() for k, v in ranker.scorer_.state_dict().items()}
    def relative(history):
        counts = np.bincount(history.indices, minlength=graph.num_items)
        return np.log1p(counts) - np.log1p(counts.mean())

    np.testing.assert_allclose(ranker.stats_.log_popularity.numpy(), relative(full.history), rtol=1e-5, atol=1e-6)
    ranker.bind(RankerContext.build(graph, fit.history, item_text_embeddings=vectors, source_scorers=fit.source_scorers))
    np.testing.assert_allclose(ranker.stats_.log_popularity.numpy(), relative(fit.history), rtol=1e-5, atol=1e-6)
    assert ranker.stats_.now is None  # no history_times this time: the context group is flagged missing
    for key, value in ranker.scorer_.state_dict().items():
        torch.testing.assert_close(value, weights[key])
    assert torch.isneginf(ranker.score(np.array([0]))[0, fit.history[0].indices]).all()


def test_linear_bpr_explain_is_additive(setup):
    graph, _, _, full, _ = setup
    ranker, _ = fitted(setup, model="linear", loss="bpr", epochs=8, feature_groups=ALL_GROUPS)
    user, scores = 3, None
    scores = ranker.score(np.array([user]))[0]
    item = int(torch.argmax(scores))
    parts = ranker.explain_user(user, item)
    assert parts["candidate"] == 1.0
    assert parts["score"] == pytest.approx(float(scores[item]), abs=1e-5)
    groups = sum(parts[f"group:{g}"] for g in ALL_GROUPS)
    assert parts["bias"] + groups == pytest.approx(parts["score"], abs=1e-4)
    assert {f"source:{s}" for s in ("cooc", "title", "pop")} <= set(parts)
    seen = int(full.history[user].indices[0])
    assert ranker.explain_user(user, seen)["candidate"] == 0.0


def test_ablation_rows(setup):
    graph, vectors, fit, full, users = setup
    ranker, _ = fitted(setup, text=False, feature_groups=("sources", "popularity", "content"))
    assert ranker.diagnostics_["constant_features"] == ["content.max", "content.mean", "content.missing"]
    table = ablation(
        ranker, graph, fit_inputs=fit, fit_users=users, labels=graph.matrix("valid"), eval_inputs=full,
        test=graph.matrix("test"), k=10,
    )  # fmt: skip
    rows = table.rows
    assert table.sample_users is None and set(table.results) == {"cooc", "title", "pop", "hybrid"}
    # No text: the content group is constant, so it gets no ablation row.
    assert [r["name"] for r in rows] == ["cooc", "title", "pop", "hybrid", "hybrid - sources", "hybrid - popularity"]
    assert [r["kind"] for r in rows] == ["source"] * 3 + ["hybrid", "ablation", "ablation"]
    by_name = {r["name"]: r for r in rows}

    def ndcg(scorer) -> float:
        result = evaluate(scorer, train=full.history, test=graph.matrix("test"), item_ids=graph.item_ids, k=10)
        return result.metrics["ndcg"]

    assert by_name["hybrid"]["ndcg"] == pytest.approx(ndcg(ranker.score))  # left prepared on eval_inputs
    assert by_name["cooc"]["ndcg"] == pytest.approx(ndcg(full.source_scorers["cooc"]))
    # Without the source scores only popularity is left: far below the hybrid.
    assert by_name["hybrid - sources"]["ndcg"] < by_name["hybrid"]["ndcg"] - 0.05
    for row in rows:
        assert 0.0 <= row["ndcg"] <= 1.0 and row["users"] > 0 and "tail_recall" in row and "sparse_ndcg" in row


def test_ablation_budget_adds_a_reference_refit(setup):
    """Cheaper refits (one member) are compared with the full hybrid refitted under the same budget."""
    graph, vectors, fit, full, users = setup
    ranker, _ = fitted(setup, text=False, ensemble=2, feature_groups=("sources", "popularity"))
    table = ablation(
        ranker, graph, fit_inputs=fit, fit_users=users, labels=graph.matrix("valid"), eval_inputs=full,
        test=graph.matrix("test"), k=10, budget={"ensemble": 1},
    )  # fmt: skip
    rows = {r["name"]: r for r in table.rows}
    assert [r["kind"] for r in table.rows][-3:] == ["reference", "ablation", "ablation"]
    assert rows[REFERENCE]["budget"] == {"ensemble": 1}
    # The reference is one member of the same lists: the member the full hybrid fitted first.
    single, _ = fitted(setup, text=False, ensemble=1, feature_groups=("sources", "popularity"))
    expected = evaluate(single.score, train=full.history, test=graph.matrix("test"), item_ids=graph.item_ids, k=10)
    assert rows[REFERENCE]["ndcg"] == pytest.approx(expected.metrics["ndcg"], abs=1e-6)
    # The same configuration as the ranker's: no reference row.
    same = ablation(
        ranker, graph, fit_inputs=fit, fit_users=users, labels=graph.matrix("valid"), eval_inputs=full,
        test=graph.matrix("test"), k=10, budget={"ensemble": 2},
    )  # fmt: skip
    assert "reference" not in [r["kind"] for r in same.rows]


def test_bad_arguments(setup):
    graph, vectors, fit, _, users = setup
    with pytest.raises(ValueError, match="feature_groups"):
        HybridRanker(feature_groups=("sources", "colour"))
    with pytest.raises(ValueError, match="model must be one of"):
        HybridRanker(model="tree")
    with pytest.raises(ValueError, match="candidates_per_source"):
        HybridRanker(candidates_per_source=0)
    ranker = HybridRanker(**SMALL)
    with pytest.raises(TypeError, match="RankerContext"):
        ranker.fit(fit.source_scorers, users, graph.matrix("valid"))
    context = fit.context(graph)
    with pytest.raises(TypeError, match="users must be integer"):
        ranker.fit(context, np.array([0.5]), graph.matrix("valid"))
    with pytest.raises(ValueError, match="no source_scorers"):
        ranker.fit(context.with_scorers({}), users, graph.matrix("valid"))
    with pytest.raises(ValueError, match="labels has 79 columns"):
        ranker.fit(context, users, graph.matrix("valid")[:, :-1].tocsr())
    with pytest.raises(ValueError, match="item_text_embeddings"):
        RankerContext.build(graph, fit.history, item_text_embeddings=vectors[:-1])


@pytest.mark.gpu
def test_cuda_scores_match_cpu_and_fit_runs_on_cuda(setup, hybrid, tmp_path):
    graph, vectors, _, full, _ = setup
    ranker, _ = hybrid
    ranker.save(tmp_path / "ranker")
    on_gpu = HybridRanker.load(tmp_path / "ranker", device="cuda")
    on_gpu.bind(full.context(graph, vectors))
    users = np.arange(graph.num_users, dtype=np.int64)
    scores = on_gpu.score(users)
    assert scores.device.type == "cuda"
    torch.testing.assert_close(scores.cpu(), ranker.score(users), rtol=1e-4, atol=1e-4)

    fitted_on_gpu, _ = fitted(setup, device="cuda")
    gpu_scores = fitted_on_gpu.score(users)
    assert gpu_scores.device.type == "cuda"
    test = graph.matrix("test")
    ours = evaluate(fitted_on_gpu.score, train=full.history, test=test, item_ids=graph.item_ids, k=10)
    assert ours.metrics["ndcg"] > 0.45


def test_reusing_the_full_rankers_lists_fits_the_same_reduced_ranker(setup):
    """Ablation refits reuse the full hybrid's featurised lists: same columns, same scorer."""
    graph, vectors, fit, _, users = setup
    full_ranker, _ = fitted(setup, ensemble=1, epochs=5)
    groups = [g for g in full_ranker.feature_groups if g != "popularity"]
    fresh, reused = full_ranker.with_groups(groups), full_ranker.with_groups(groups)
    for model, lists in ((fresh, None), (reused, full_ranker.fitting_lists_)):
        model.fit(fit.context(graph, vectors), users, graph.matrix("valid"), lists=lists)
    torch.testing.assert_close(reused.fitting_lists_.lists.features, fresh.fitting_lists_.lists.features)
    assert reused.fitting_lists_.feature_names == tuple(reused.feature_names_)
    with pytest.raises(ValueError, match="not in the cached lists"):
        full_ranker.fitting_lists_.select(["no.such.feature"])
    probe = users[:20]
    torch.testing.assert_close(reused.score(probe), fresh.score(probe))
