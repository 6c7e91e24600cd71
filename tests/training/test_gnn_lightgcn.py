"""LightGCN learner: the shared contract, the propagation against torch_geometric's, mechanics."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tests.training.contract import LearnerContract
from training.base import NotFittedError
from training.gnn import LightGCN
from training.gnn.adjacency import GraphView, build_edges, normalized_adjacency, to_torch_csr
from training.gnn.lightgcn import LightGCNEncoder

EPOCHS = 40


def bag_of_words(texts: list[str]) -> np.ndarray:
    """Word-count vectors of ``texts`` (vocabulary in sorted order), float32 ``[n, V]``."""
    tokens = [re.findall(r"[a-z]+[0-9]*", text.lower()) for text in texts]
    vocabulary = {word: i for i, word in enumerate(sorted({w for words in tokens for w in words}))}
    counts = np.zeros((len(texts), len(vocabulary)), np.float32)
    for row, words in enumerate(tokens):
        for word in words:
            counts[row, vocabulary[word]] += 1.0
    return counts


def text_features(graph) -> dict[str, np.ndarray]:
    """Item features from the titles; entity features from attribute names, NaN for KG entities."""
    entity_features = bag_of_words(graph.entities["name"].astype(str).tolist())
    entity_features[(graph.entities["source"] == "kg").to_numpy()] = np.nan
    return {
        "item_features": bag_of_words(graph.items["title"].astype(str).tolist()),
        "entity_features": entity_features,
    }


class TestLightGCNContract(LearnerContract):
    def make_learner(self, seed: int) -> LightGCN:
        return LightGCN(epochs=EPOCHS, eval_every=5, seed=seed, device="cpu")

    def fit_kwargs(self, graph) -> dict:
        return text_features(graph)


class TestSampledLightGCNContract(LearnerContract):
    def make_learner(self, seed: int) -> LightGCN:
        return LightGCN(epochs=EPOCHS, eval_every=5, mode="sampled", num_neighbors=5, seed=seed, device="cpu")

    def fit_kwargs(self, graph) -> dict:
        return text_features(graph)


class TestRandomInitContract(LearnerContract):
    def make_learner(self, seed: int) -> LightGCN:
        return LightGCN(epochs=EPOCHS, eval_every=5, init="random", user_init="learned", seed=seed, device="cpu")


def test_propagation_matches_torch_geometric_lightgcn(structured_graph):
    from torch_geometric.nn import LightGCN as PygLightGCN

    matrix = structured_graph.matrix("train")
    edges = build_edges(structured_graph, matrix, use_kg=False, use_social=False)
    n = edges.layout.num_nodes
    reference = PygLightGCN(num_nodes=n, embedding_dim=8, num_layers=3)
    expected = reference.get_embedding(edges.edge_index())
    adjacency = to_torch_csr(normalized_adjacency(edges), torch.device("cpu"))
    view = GraphView(num_nodes=n, adjacency=adjacency, symmetric=True)
    ours = LightGCNEncoder(3)(reference.embedding.weight, view)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_history_loss_goes_down_and_validation_improves(structured_graph):
    learner = TestRandomInitContract().fitted(structured_graph)
    losses = [h["loss"] for h in learner.history_]
    assert losses[-1] < 0.8 * losses[0], losses
    scores = [h["ndcg"] for h in learner.history_ if "ndcg" in h]
    assert max(scores) > scores[0]
    assert 1 <= learner.best_epoch_ <= EPOCHS
    assert learner.history_[learner.best_epoch_ - 1]["ndcg"] == max(scores)


def test_embeddings_are_final_propagated_and_finite(structured_graph):
    learner = TestLightGCNContract().fitted(structured_graph)
    users, items = learner.user_embeddings(), learner.item_embeddings()
    assert users.shape == (structured_graph.num_users, 64) and items.shape == (structured_graph.num_items, 64)
    assert learner.entity_embeddings().shape == (structured_graph.num_entities, 64)
    assert np.isfinite(users).all() and np.isfinite(items).all()
    np.testing.assert_allclose(learner.score(np.array([5])).numpy()[0], items @ users[5], rtol=1e-5, atol=1e-5)


def test_without_validation_trains_all_epochs(structured_graph):
    learner = LightGCN(epochs=6, eval_every=2, init="random", seed=1, device="cpu")
    learner.fit(structured_graph, structured_graph.matrix("train"))
    assert learner.best_epoch_ == 6
    assert [h["epoch"] for h in learner.history_] == list(range(1, 7))
    assert not any("ndcg" in h for h in learner.history_)


def test_callback_sees_every_epoch(structured_graph):
    seen = []
    LightGCN(epochs=3, init="random", device="cpu").fit(
        structured_graph, structured_graph.matrix("train"), callback=lambda e, s, loss: seen.append((e, loss))
    )
    assert [e for e, _ in seen] == [1, 2, 3]
    assert all(np.isfinite(loss) and loss > 0 for _, loss in seen)


def test_text_init_without_features_is_a_clear_error(structured_graph):
    with pytest.raises(ValueError, match="init='text' needs item_features"):
        LightGCN(epochs=1, device="cpu").fit(structured_graph, structured_graph.matrix("train"))


@pytest.mark.parametrize(
    "features, error, message",
    [
        (np.ones((3, 4), np.float32), ValueError, r"item_features must have shape \[80, d\]"),
        ([[1.0]] * 80, TypeError, "item_features must be a numpy array"),
        (np.full((80, 4), np.inf, np.float32), ValueError, "item_features row 0 holds non-finite"),
    ],
)
def test_bad_item_features_are_rejected(structured_graph, features, error, message):
    with pytest.raises(error, match=message):
        LightGCN(epochs=1, device="cpu").fit(structured_graph, structured_graph.matrix("train"), item_features=features)


def test_partially_nan_entity_row_is_rejected(structured_graph):
    kwargs = text_features(structured_graph)
    kwargs["entity_features"][0, 0] = np.nan
    with pytest.raises(ValueError, match="entity_features row 0"):
        LightGCN(epochs=1, device="cpu").fit(structured_graph, structured_graph.matrix("train"), **kwargs)


def test_rejects_valid_items_of_wrong_height(structured_graph):
    short = structured_graph.matrix("valid")[:-1]
    with pytest.raises(ValueError, match="valid_items has 119 rows"):
        LightGCN(epochs=1, init="random", device="cpu").fit(
            structured_graph, structured_graph.matrix("train"), valid_items=short
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_layers": 0}, "num_layers must be an integer >= 1"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"init": "glove"}, "init must be one of"),
        ({"mode": "minibatch"}, "mode must be one of"),
        ({"user_init": "zeros"}, "user_init must be one of"),
        ({"epochs": 0}, "epochs must be an integer >= 1 or 'auto'"),
    ],
)
def test_bad_hyper_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LightGCN(**kwargs)


def test_a_setting_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="batch_size must be an integer >= 1 or 'auto', got float 1.5"):
        LightGCN(batch_size=1.5)
    with pytest.raises(TypeError, match="use_kg must be a bool"):
        LightGCN(use_kg=1)


def test_score_rejects_out_of_range_users(structured_graph):
    learner = TestLightGCNContract().fitted(structured_graph)
    with pytest.raises(ValueError, match="outside"):
        learner.score(np.array([structured_graph.num_users]))
    with pytest.raises(NotFittedError):
        LightGCN().item_embeddings()


def test_loaded_learner_scores_without_graph_and_keeps_parameters(structured_graph, tmp_path):
    learner = TestLightGCNContract().fitted(structured_graph)
    learner.save(tmp_path / "m")
    loaded = LightGCN.load(tmp_path / "m", device="cpu")
    assert loaded.best_epoch_ == learner.best_epoch_
    assert loaded.history_ == learner.history_
    assert set(loaded.parameters_) == set(learner.parameters_)
    torch.testing.assert_close(loaded.parameters_["embedding.item"], learner.parameters_["embedding.item"])
    rows = structured_graph.matrix("train")[:5]
    torch.testing.assert_close(loaded.score_new_users(rows), learner.score_new_users(rows))


def test_new_item_with_a_known_items_text_lands_next_to_it(structured_graph):
    learner = TestLightGCNContract().fitted(structured_graph)
    features = text_features(structured_graph)["item_features"]
    items = learner.item_embeddings()
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    for known in (0, 3, 7):
        (vector,) = learner.embed_new_items(features[[known]], features)
        assert vector.shape == (items.shape[1],) and np.isfinite(vector).all()
        cosine = unit @ (vector / np.linalg.norm(vector))
        same_text = np.flatnonzero((features == features[known]).all(axis=1))  # titles repeat in this graph
        assert int(np.argmax(cosine)) in set(same_text.tolist()) and known in same_text
    with pytest.raises(ValueError, match="rows"):
        learner.embed_new_items(features[:1], features[:-1])
    random = TestRandomInitContract().fitted(structured_graph)
    with pytest.raises(ValueError, match="init='random'"):
        random.embed_new_items(features[:1], features)
