"""The GNN's warm-started refit (the pipeline's final phase): the epoch rule, the behaviour, the notes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from eval import evaluate
from tests.conftest import make_structured_graph
from training.gnn import LightGCN
from training.gnn.adjacency import NodeLayout
from training.gnn.init import NodeEmbedding
from training.gnn.schedule import warm_epochs
from training.pipeline.config import TrainConfig
from training.pipeline.runner import Pipeline


def test_warm_epochs_is_the_best_epoch_times_the_new_share():
    assert warm_epochs(40, 80_000, 100_000) == 8
    assert warm_epochs(40, 81_000, 100_000) == 8  # 7.6 rounds up
    assert warm_epochs(10, 100, 100) == 1  # nothing new: one pass still sees the final graph
    assert warm_epochs(3, 10, 1_000) == 3  # never more than a cold refit
    assert warm_epochs(0, 50, 100) == 1


def _split_train(graph, share: float, seed: int = 0) -> sp.csr_matrix:
    """``train`` without a seeded ``share`` of its entries (the simulated fit phase's data)."""
    train = graph.matrix("train").tocoo()
    keep = np.random.default_rng(seed).random(train.nnz) >= share
    return sp.csr_matrix((train.data[keep], (train.row[keep], train.col[keep])), shape=train.shape, dtype=np.float32)


def _valid_ndcg(learner, graph) -> float:
    result = evaluate(
        lambda users: learner.score(users), train=graph.matrix("train"), test=graph.matrix("valid"),
        item_ids=graph.item_ids, k=20,
    )  # fmt: skip
    return result.metrics["ndcg"]


def test_warm_refit_scores_like_a_cold_refit_in_a_fraction_of_the_epochs():
    graph = make_structured_graph(num_users=160, num_items=90, per_user=14, seed=3)
    train = graph.matrix("train")
    sub = _split_train(graph, 0.2)

    def make(epochs: int) -> LightGCN:
        return LightGCN(init="random", epochs=epochs, eval_every=2, patience=3, lr=1e-2, seed=0, device="cpu")

    fitted = make(60).fit(graph, sub, valid_items=graph.matrix("valid"))
    best = fitted.best_epoch_
    epochs = warm_epochs(best, sub.nnz, train.nnz)
    assert 1 <= epochs < best
    warm = make(epochs).fit(graph, train, warm_start=fitted)
    cold = make(best).fit(graph, train)
    short = make(epochs).fit(graph, train)
    assert warm.warm_started_ and not cold.warm_started_
    assert len(warm.history_) == epochs
    # It continues where the fit stopped (its first loss is already low), ...
    assert warm.history_[0]["loss"] < 0.7 * short.history_[0]["loss"]
    # ... learns from the interactions the fit had not seen (it beats the model it started
    # from), scores on validation as well as the cold refit of best_epoch epochs (0.4206 vs
    # 0.4196 when written) and better than a cold fit of as few epochs (0.4072).
    models = {"warm": warm, "cold": cold, "short": short, "fitted": fitted}
    scores = {name: _valid_ndcg(model, graph) for name, model in models.items()}
    assert scores["warm"] >= scores["cold"] - 0.005, scores
    assert scores["warm"] > scores["fitted"] + 0.005, scores
    assert scores["warm"] > scores["short"] + 0.005, scores


def test_warm_start_of_another_architecture_is_a_clear_error(structured_graph):
    train = structured_graph.matrix("train")
    fitted = LightGCN(init="random", embedding_dim=8, epochs=1, device="cpu").fit(structured_graph, train)
    with pytest.raises(ValueError, match="do not fit this model.*embedding_dim"):
        LightGCN(init="random", embedding_dim=16, epochs=1, device="cpu").fit(
            structured_graph, train, warm_start=fitted
        )
    with pytest.raises(ValueError, match="must be a fitted LightGCN"):
        LightGCN(init="random", epochs=1, device="cpu").fit(structured_graph, train, warm_start=LightGCN())


def test_unseen_users_start_at_their_items_mean_and_the_others_keep_their_vectors(structured_graph):
    train = structured_graph.matrix("train")
    embedding = NodeEmbedding(
        NodeLayout(structured_graph.num_users, structured_graph.num_items, 0), 8, item_features=None,
        entity_features=None, user_items=None, user_init="learned", init_std=0.1,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    before = embedding.user.detach().clone()
    chosen = np.zeros(structured_graph.num_users, bool)
    chosen[[3, 7]] = True
    embedding.start_users_at_item_means(train, chosen)
    after = embedding.user.detach()
    torch.testing.assert_close(after[~torch.from_numpy(chosen)], before[~torch.from_numpy(chosen)])
    expected = embedding.item.detach()[torch.from_numpy(train[7].indices.astype(np.int64))].mean(0)
    torch.testing.assert_close(after[7], expected)


def test_pipeline_final_phase_is_warm_started_and_noted(tmp_path):
    graph = make_structured_graph(num_users=40, num_items=30, per_user=6)
    config = TrainConfig(device="cpu").with_overrides(
        ["gnn.init=random", "gnn.epochs=6", "gnn.eval_every=1", "gnn.embedding_dim=8", "gnn.num_layers=1"]
    )
    lines: list[str] = []
    pipeline = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="g", stages=("gnn",), log=lines.append)
    result = pipeline.run()
    fit, final = pipeline.phases["fit"].sources["gnn"], result.final.sources["gnn"]
    best = result.notes["gnn_best_epoch"]
    expected = warm_epochs(best, graph.matrix("train").nnz, graph.matrix("train", "valid").nnz)
    assert result.notes["gnn_final"] == {"warm_start": "fit phase", "epochs": expected, "rule": "best epoch x new share"}
    assert len(final.history_) == expected and final.warm_started_
    assert any("warm start from the fit phase" in line for line in lines)
    assert final.user_embeddings().shape == fit.user_embeddings().shape
    # A resumed run loads both phases as they were.
    again = Pipeline(graph, config, tmp_path / "work", graph_fingerprint="g", stages=("gnn",), resume=True,
                     log=lambda line: None).run()  # fmt: skip
    np.testing.assert_array_equal(again.final.sources["gnn"].item_embeddings(), final.item_embeddings())
