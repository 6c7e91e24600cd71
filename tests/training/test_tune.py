"""Validation tuning (training/pipeline/tune.py) and its place in the pipeline (``tune.budget_minutes``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from eval import evaluate
from tests.conftest import make_structured_graph
from training.pipeline import tune as tune_module
from training.pipeline.config import TrainConfig, TuneConfig
from training.pipeline.runner import Pipeline
from training.pipeline.tune import SPACES, tune_source
from training.sources.als import ALS
from training.sources.graphfilter import GraphFilter


def _valid_ndcg(learner, graph) -> float:
    train, valid = graph.matrix("train"), graph.matrix("valid")
    return float(evaluate(learner.score, train=train, test=valid, item_ids=graph.item_ids, k=20).metrics["ndcg"])


@pytest.mark.parametrize(
    ("name", "make", "trials"),
    [
        # a filter with a useless ideal term drowned in alpha and no sharpening
        ("graphfilter", lambda **kw: GraphFilter(**{"alpha": 50.0, "rank": 2, "sharpen": 0.0, **kw}), 25),
        # ALS with far too few factors and a crushing regularisation
        ("als", lambda **kw: ALS(**{"factors": 2, "regularization": 5000.0, "iterations": 5, "seed": 0,
                                    "num_threads": 1, **kw}), 12),  # fmt: skip
    ],
)
def test_the_tuner_beats_a_bad_configured_setting_on_validation(structured_graph, name, make, trials):
    graph = structured_graph
    train, valid = graph.matrix("train"), graph.matrix("valid")
    lines: list[str] = []
    result = tune_source(name, graph, train, valid, make, budget_seconds=60, seed=0, max_trials=trials,
                         log=lines.append)  # fmt: skip
    assert len(result.history) == trials == len(lines)
    assert result.history[0]["params"] == "configured"
    assert result.default_value == pytest.approx(_valid_ndcg(make().fit(graph, train), graph), abs=0.02)
    assert result.best_value >= result.default_value + 0.03, result.history
    # the returned learner is the best trial's, fitted on train, and scores what the search recorded
    assert result.best_value == pytest.approx(_valid_ndcg(result.learner, graph), abs=1e-6)
    assert result.changed and set(result.changed) <= set(result.best)
    summary = result.to_dict()
    assert summary["trials"] == trials and summary["best_valid_ndcg"] == result.best_value


def test_the_budget_stops_the_search(structured_graph):
    graph = structured_graph
    result = tune_source("ease", graph, graph.matrix("train"), graph.matrix("valid"),
                         lambda **kw: __import__("training.sources.ease", fromlist=["EASE"]).EASE(**kw),
                         budget_seconds=1.0, seed=0)  # fmt: skip
    assert 1 <= len(result.history) and result.seconds < 20


def test_graphfilter_ranks_are_shares_of_the_configured_rank(structured_graph):
    graph = structured_graph
    result = tune_source("graphfilter", graph, graph.matrix("train"), graph.matrix("valid"),
                         lambda **kw: GraphFilter(**{"rank": 12, **kw}), budget_seconds=60, seed=1, max_trials=8)  # fmt: skip
    ranks = [entry["params"]["rank"] for entry in result.history[1:]]
    assert set(ranks) <= {6, 12, 18, 24}  # shares of twice the configured rank


def test_graphfilter_trials_run_exact_and_the_chosen_filter_gets_its_operator(structured_graph):
    graph = structured_graph
    made = []

    def make(**kw):
        made.append(kw.get("neighbors", 5))
        return GraphFilter(**{"rank": 8, "dense_max_items": 0, "neighbors": 5, **kw})

    result = tune_source("graphfilter", graph, graph.matrix("train"), graph.matrix("valid"), make,
                         budget_seconds=60, seed=1, max_trials=3)  # fmt: skip
    assert 0 in made  # the trials' base is fitted without an operator
    assert result.learner.neighbors == 5 and result.best["neighbors"] == 5
    assert result.learner._sparse is not None and (np.diff(result.learner._sparse.indptr) == 5).all()


def test_bad_arguments_are_named(structured_graph):
    graph = structured_graph
    train, valid = graph.matrix("train"), graph.matrix("valid")
    with pytest.raises(ValueError, match="no tuner for source 'gnn'"):
        tune_source("gnn", graph, train, valid, GraphFilter, budget_seconds=1, seed=0)
    with pytest.raises(ValueError, match="budget_seconds"):
        tune_source("als", graph, train, valid, ALS, budget_seconds=0, seed=0)
    with pytest.raises(ValueError, match="no items"):
        tune_source("als", graph, train, sp.csr_matrix(valid.shape), ALS, budget_seconds=1, seed=0)
    with pytest.raises(ValueError, match="tune.sources"):
        TuneConfig(sources=("gnn",))
    with pytest.raises(ValueError, match="budget_minutes"):
        TuneConfig(budget_minutes=-1)
    assert sorted(SPACES) == ["als", "ease", "graphfilter", "itemknn"]


def test_pipeline_tunes_on_train_and_valid_only_and_notes_the_search(tmp_path, monkeypatch):
    """The tuner receives train (fit) and valid matrices: no test pair reaches it; the final phase refits the choice."""
    graph = make_structured_graph(num_users=60, num_items=40, per_user=10)
    seen: list[tuple[str, sp.csr_matrix, sp.csr_matrix]] = []
    real = tune_module.tune_source

    def spy(name, graph_, fit_items, valid_items, make, **kwargs):
        seen.append((name, fit_items, valid_items))
        return real(name, graph_, fit_items, valid_items, make, **kwargs)

    monkeypatch.setattr(tune_module, "tune_source", spy)
    config = TrainConfig(device="cpu").with_overrides(
        ["tune.budget_minutes=0.2", "tune.max_trials=4", "tune.sources=[graphfilter,als]", "als.iterations=3",
         "als.factors=8", "als.num_threads=1"]
    )  # fmt: skip
    lines: list[str] = []
    pipeline = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="tune", stages=("als", "neighbors"),
                        log=lines.append)  # fmt: skip
    pipeline.run()
    assert sorted(name for name, _, _ in seen) == ["als", "graphfilter"]
    test = graph.matrix("test").tocoo()
    test_pairs = set(zip(test.row.tolist(), test.col.tolist()))
    for name, fit_items, valid_items in seen:
        expected_fit = graph.matrix("train", weighted=getattr(config, name).weighted)
        assert (fit_items != expected_fit).nnz == 0
        assert (valid_items != graph.matrix("valid")).nnz == 0
        for matrix in (fit_items, valid_items):
            coo = matrix.tocoo()
            assert not test_pairs & set(zip(coo.row.tolist(), coo.col.tolist()))
    notes = pipeline.work.notes()
    for name in ("als", "graphfilter"):
        note = notes[f"tune_{name}"]
        assert note["trials"] == 4 and len(note["history"]) == 4 and note["best_valid_ndcg"] >= note["default_valid_ndcg"]
        fitted = pipeline.phases["fit"].sources[name]
        final = pipeline.phases["final"].sources[name]
        # the final phase refits the chosen settings on train+valid
        assert {k: v for k, v in final.get_config().items() if k != "device"} == {
            k: v for k, v in fitted.get_config().items() if k != "device"
        }
        for key, value in note["best"].items():
            assert fitted.get_config()[key] == value
    assert "tune_itemknn" not in notes and any("graphfilter tuned" in line for line in lines)
    assert np.isfinite(pipeline.phases["final"].sources["graphfilter"].score(np.arange(5)).numpy()).all()


def test_pipeline_without_a_validation_split_skips_tuning_with_a_note(tmp_path):
    import dataclasses

    graph = make_structured_graph(num_users=40, num_items=30, per_user=8)
    interactions = graph.interactions.assign(split=graph.interactions["split"].replace({1: 0}))
    graph = dataclasses.replace(graph, interactions=interactions)
    config = TrainConfig(device="cpu").with_overrides(["tune.budget_minutes=1", "ranker.refit=false"])
    lines: list[str] = []
    pipeline = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="no-valid", stages=("neighbors",),
                        log=lines.append)  # fmt: skip
    pipeline.run()
    assert pipeline.work.notes()["tune_graphfilter"].startswith("skipped")
    assert any("graphfilter not tuned" in line for line in lines)
    assert "graphfilter" in pipeline.phases["fit"].sources


def test_a_skipped_ease_takes_no_share_of_the_budget(tmp_path, monkeypatch):
    from training.pipeline import tune as tune_module

    graph = make_structured_graph(num_users=60, num_items=40, per_user=10)
    budgets: dict[str, float] = {}
    real = tune_module.tune_source

    def spy(name, *args, **kwargs):
        budgets[name] = kwargs["budget_seconds"]
        return real(name, *args, **kwargs)

    monkeypatch.setattr(tune_module, "tune_source", spy)
    config = TrainConfig(device="cpu").with_overrides(["tune.budget_minutes=0.3", "tune.max_trials=2", "ease.max_items=10"])
    pipeline = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="ease-skip", stages=("neighbors",),
                        log=lambda line: None)  # fmt: skip
    pipeline.run()
    assert pipeline.work.notes()["ease"].startswith("skipped: 40 items > ease.max_items=10")
    # item-KNN and the graph filter split the 18 s; EASE, skipped on this catalogue, is not tuned
    assert budgets == {"itemknn": 9.0, "graphfilter": 9.0}
