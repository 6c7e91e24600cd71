"""Relation-aware GAT learner: the shared contract and the encoder's mechanics."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from tests.training.contract import LearnerContract
from tests.training.test_gnn_lightgcn import text_features
from training.gnn import GAT
from training.gnn.adjacency import GraphView, build_edges
from training.gnn.gat import RelationalGATEncoder

EPOCHS = 30


class TestGATContract(LearnerContract):
    def make_learner(self, seed: int) -> GAT:
        return GAT(epochs=EPOCHS, eval_every=5, seed=seed, device="cpu")

    def fit_kwargs(self, graph) -> dict:
        return text_features(graph)


class TestSampledGATContract(LearnerContract):
    def make_learner(self, seed: int) -> GAT:
        return GAT(epochs=EPOCHS, eval_every=5, mode="sampled", num_neighbors=5, seed=seed, device="cpu")

    def fit_kwargs(self, graph) -> dict:
        return text_features(graph)


@pytest.fixture(scope="module")
def view_and_encoder(structured_graph):
    edges = build_edges(structured_graph, structured_graph.matrix("train"), use_kg=True, use_social=True)
    view = GraphView(
        num_nodes=edges.layout.num_nodes,
        edge_index=edges.edge_index(),
        edge_type=torch.from_numpy(edges.edge_type),
    )
    encoder = RelationalGATEncoder(
        8, 2, edges.num_relations, heads=2, relation_dim=4, generator=torch.Generator().manual_seed(0)
    )
    return edges, view, encoder


def test_untrained_layer_is_an_attention_weighted_neighbor_mean(view_and_encoder):
    edges, view, encoder = view_and_encoder
    x = torch.randn(edges.layout.num_nodes, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = encoder.convs[0](x, view.edge_index, encoder.relation[view.edge_type])
    # W_s = identity and zero bias: each output lies in the convex hull of the node's neighbors.
    node = edges.layout.item_offset + 2
    neighbors = x[torch.from_numpy(edges.src[edges.dst == node])]
    assert (h[node] <= neighbors.max(0).values + 1e-5).all() and (h[node] >= neighbors.min(0).values - 1e-5).all()


def test_relation_embeddings_change_the_output(view_and_encoder):
    edges, view, encoder = view_and_encoder
    x = torch.randn(edges.layout.num_nodes, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = encoder(x, view)
        saved = encoder.relation.clone()
        encoder.relation[2:].mul_(-3.0)  # the genre / created_by relations
        after = encoder(x, view)
        encoder.relation.copy_(saved)
    item = edges.layout.item_offset + 5
    assert not torch.allclose(before[item], after[item])


def test_encoder_initialisation_is_seeded(view_and_encoder):
    edges, _, encoder = view_and_encoder
    twin = RelationalGATEncoder(
        8, 2, edges.num_relations, heads=2, relation_dim=4, generator=torch.Generator().manual_seed(0)
    )
    for (name, a), (_, b) in zip(encoder.state_dict().items(), twin.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)


def test_gat_trains_and_keeps_its_config(structured_graph, tmp_path):
    learner = TestGATContract().fitted(structured_graph)
    losses = [h["loss"] for h in learner.history_]
    assert losses[-1] < losses[0]
    assert np.isfinite(learner.item_embeddings()).all()
    assert any(k.startswith("encoder.relation") for k in learner.parameters_)
    learner.save(tmp_path / "gat")
    assert GAT.load(tmp_path / "gat").get_config()["heads"] == learner.heads


@pytest.mark.parametrize("kwargs, message", [({"heads": 0}, "heads"), ({"relation_dim": -2}, "relation_dim")])
def test_bad_gat_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GAT(**kwargs)


def test_gat_takes_every_graph_learner_argument_once():
    from training.gnn.learner import GraphLearner

    base = inspect.signature(GraphLearner.__init__).parameters
    own = inspect.signature(GAT.__init__).parameters
    assert list(own)[: len(base)] == list(base) and list(own)[len(base) :] == ["heads", "relation_dim"]
    schedule = {"num_layers": 2, "epochs": 200, "batch_size": 8192, "num_negatives": 4, "patience": 3, "eval_every": 5,
                "min_gain": 0.0}
    for name, parameter in base.items():
        assert own[name].default == schedule.get(name, parameter.default), name
    learner = GAT(lr=0.05, use_kg=False, heads=2)
    assert learner.get_config() == {
        **{name: p.default for name, p in own.items() if name != "self"}, "lr": 0.05, "use_kg": False, "heads": 2
    }
    with pytest.raises(TypeError, match="bogus"):
        GAT(bogus=1)


def test_extends_arguments_wants_keyword_only_arguments_and_options():
    from training.base import extends_arguments
    from training.gnn.learner import GraphLearner

    with pytest.raises(TypeError, match="must end in"):

        @extends_arguments
        class NoOptions(GraphLearner):
            def __init__(self, *, heads: int = 1) -> None:
                super().__init__()

    with pytest.raises(TypeError, match="keyword-only"):

        @extends_arguments
        class Positional(GraphLearner):
            def __init__(self, heads: int = 1, **options) -> None:
                super().__init__(**options)


@pytest.mark.gpu
def test_gat_and_lightgcn_fit_on_cuda(structured_graph):
    from training.gnn import LightGCN

    for cls in (GAT, LightGCN):
        learner = cls(epochs=5, device="cuda").fit(
            structured_graph, structured_graph.matrix("train"), **text_features(structured_graph)
        )
        scores = learner.score(np.arange(4))
        assert scores.device.type == "cuda" and torch.isfinite(scores).all()
        folded = learner.score_new_users(structured_graph.matrix("train")[:4])
        assert folded.device.type == "cuda" and folded.shape == scores.shape
