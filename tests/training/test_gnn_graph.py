"""The propagation graph (edges, normalisation, symmetric SpMM) and the neighbor sampler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.gnn.adjacency import (
    GraphView,
    build_edges,
    layer_mean,
    normalized_adjacency,
    to_torch_csr,
    unique_columns,
)
from training.gnn.lightgcn import LightGCNEncoder
from training.gnn.sampled import NeighborSampler

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def edges(structured_graph):
    return build_edges(structured_graph, structured_graph.matrix("train"), use_kg=True, use_social=True)


def test_edges_hold_every_link_in_both_directions(structured_graph, edges):
    train = structured_graph.matrix("train")
    layout = edges.layout
    assert layout.num_nodes == structured_graph.num_users + structured_graph.num_items + structured_graph.num_entities
    names = edges.relation_names
    counts = np.bincount(edges.edge_type, minlength=len(names))
    assert names[:2] == ("interacts", "rev_interacts")
    assert counts[0] == counts[1] == train.nnz
    # Two triples per item (genre, creator), each stored forward and reverse.
    assert names[2:6] == ("genre", "rev_genre", "created_by", "rev_created_by")
    assert counts[2:6].tolist() == [structured_graph.num_items] * 4
    social = structured_graph.social_matrix()
    assert names[-1] == "follows" and counts[-1] == social.nnz
    assert not (edges.src == edges.dst).any()
    pairs = set(zip(edges.src.tolist(), edges.dst.tolist()))
    assert all((d, s) in pairs for s, d in pairs)
    user, item = 3, train[3].indices[0]
    assert (user, layout.item_offset + item) in pairs


def test_edges_without_kg_or_social_are_the_bipartite_graph(structured_graph):
    train = structured_graph.matrix("train")
    plain = build_edges(structured_graph, train, use_kg=False, use_social=False)
    assert plain.num_edges == 2 * train.nnz
    assert plain.relation_names == ("interacts", "rev_interacts")
    assert plain.dst.max() < structured_graph.num_users + structured_graph.num_items


def test_normalized_adjacency_is_symmetric_degree_normalised(edges):
    norm = normalized_adjacency(edges).toarray()
    binary = edges.csr().toarray()
    degree = binary.sum(axis=1)
    inv = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1)), 0.0)
    np.testing.assert_allclose(norm, inv[:, None] * binary * inv[None, :], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(norm, norm.T, atol=1e-7)


@pytest.mark.parametrize("num_layers", [0, 1, 2, 3])
@pytest.mark.parametrize("symmetric", [True, False])
def test_layer_mean_and_its_gradient_equal_dense_autograd(edges, num_layers, symmetric):
    norm = normalized_adjacency(edges)
    sparse = to_torch_csr(norm, CPU)
    dense = torch.from_numpy(norm.toarray())
    x = torch.randn(norm.shape[0], 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    weight = torch.randn(norm.shape[0], 5, generator=torch.Generator().manual_seed(1))
    ours = layer_mean(sparse, x, num_layers, symmetric=symmetric)
    (ours * weight).sum().backward()
    ours_grad = x.grad.clone()
    x.grad = None
    layers, h = [x], x
    for _ in range(num_layers):
        h = dense @ h
        layers.append(h)
    expected = torch.stack(layers).mean(0)
    (expected * weight).sum().backward()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_grad, x.grad, rtol=1e-5, atol=1e-5)


def test_layer_mean_ignores_what_its_reused_buffers_held(edges, monkeypatch):
    """The fused path writes products into uninitialised buffers (``beta=0``): what they held must not leak."""
    sparse = to_torch_csr(normalized_adjacency(edges), CPU)
    x = torch.randn(sparse.shape[0], 4, generator=torch.Generator().manual_seed(2), requires_grad=True)
    expected = layer_mean(sparse, x, 3, symmetric=False)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    empty_like = torch.empty_like
    monkeypatch.setattr(torch, "empty_like", lambda t, **kw: empty_like(t, **kw).fill_(float("nan")))
    ours = layer_mean(sparse, x, 3, symmetric=True)
    (ours_grad,) = torch.autograd.grad(ours.sum(), x)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(ours_grad, expected_grad)


def test_target_csr_keeps_parallel_edges_in_edge_order(edges):
    csr = edges.target_csr()
    assert csr.nnz == edges.num_edges
    np.testing.assert_array_equal(csr.indices, edges.src)
    np.testing.assert_array_equal(np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr)), edges.dst)


def _sampler(edges, num_neighbors: int, *, weighted: bool) -> NeighborSampler:
    adjacency = normalized_adjacency(edges) if weighted else edges.target_csr()
    return NeighborSampler(
        adjacency,
        edge_type=None if weighted else edges.edge_type,
        num_neighbors=num_neighbors,
        num_layers=2,
        weighted=weighted,
        device=CPU,
    )


def test_sampling_every_neighbor_reproduces_full_propagation_at_the_seeds(edges):
    norm = normalized_adjacency(edges)
    degree_cap = int(np.diff(norm.indptr).max())
    sampler = _sampler(edges, degree_cap, weighted=True)
    seeds = torch.tensor([0, 7, edges.layout.item_offset + 3, edges.layout.entity_offset + 1])
    sub = sampler.sample(seeds, torch.Generator().manual_seed(0))
    assert torch.equal(sub.nodes[: len(seeds)], seeds)
    x = torch.randn(edges.layout.num_nodes, 4, generator=torch.Generator().manual_seed(3))
    encoder = LightGCNEncoder(2)
    full = encoder(x, GraphView(num_nodes=len(x), adjacency=to_torch_csr(norm, CPU), symmetric=True))
    local = encoder(x[sub.nodes], sub.view)
    torch.testing.assert_close(local[: len(seeds)], full[seeds], rtol=1e-5, atol=1e-6)


def test_sampled_propagation_is_unbiased(edges):
    norm = normalized_adjacency(edges)
    sampler = _sampler(edges, 2, weighted=True)
    hub = int(np.argmax(np.diff(norm.indptr)))
    seeds = torch.tensor([hub])
    x = torch.randn(edges.layout.num_nodes, 3, generator=torch.Generator().manual_seed(4))
    expected = torch.from_numpy(norm[hub] @ x.numpy()).squeeze(0)
    generator = torch.Generator().manual_seed(5)
    draws = []
    for _ in range(400):
        sub = sampler.sample(seeds, generator)
        draws.append(torch.sparse.mm(sub.view.adjacency, x[sub.nodes])[0])
    draws = torch.stack(draws)
    standard_error = draws.std(0) / len(draws) ** 0.5
    assert np.diff(norm.indptr)[hub] > 2 and (draws.std(0) > 0).all()
    assert ((draws.mean(0) - expected).abs() < 4 * standard_error).all(), (draws.mean(0), expected)


def test_sampler_caps_neighbors_and_keeps_real_typed_edges(edges):
    sampler = _sampler(edges, 3, weighted=False)
    seeds = torch.arange(0, 20)
    sub = sampler.sample(seeds, torch.Generator().manual_seed(1))
    src, dst = sub.nodes[sub.view.edge_index[0]], sub.nodes[sub.view.edge_index[1]]
    known = set(zip(edges.src.tolist(), edges.dst.tolist(), edges.edge_type.tolist()))
    assert all(t in known for t in zip(src.tolist(), dst.tolist(), sub.view.edge_type.tolist()))
    in_degree = torch.bincount(sub.view.edge_index[1], minlength=len(sub.nodes))
    assert int(in_degree.max()) <= 3
    assert set(dst.tolist()) >= set(seeds.tolist()) - {u for u in seeds.tolist() if edges.dst.tolist().count(u) == 0}
    assert len(torch.unique(sub.nodes)) == len(sub.nodes)
    again = sampler.sample(seeds, torch.Generator().manual_seed(1))
    assert torch.equal(again.nodes, sub.nodes) and torch.equal(again.view.edge_index, sub.view.edge_index)


def test_leaf_entities_are_left_out_of_the_propagation(structured_graph):
    from kg.graph import ENTITY, ITEM, Graph

    g = structured_graph
    leaf = g.num_entities
    entities = pd.concat(
        [g.entities, pd.DataFrame({"entity_id": ["actor:solo"], "name": ["solo"], "source": ["kg"]})],
        ignore_index=True,
    )
    extra = pd.DataFrame({"head": [5], "head_type": [ITEM], "relation": [1], "tail": [leaf], "tail_type": [ENTITY]})
    graph = Graph(
        interactions=g.interactions,
        items=g.items,
        users=g.users,
        entities=entities,
        relations=g.relations,
        triples=pd.concat([g.triples, extra], ignore_index=True),
        social=g.social,
    )
    edges = build_edges(graph, graph.matrix("train"), use_kg=True, use_social=False)
    leaf_node = edges.layout.entity_offset + leaf
    assert edges.layout.num_entities == g.num_entities + 1
    assert leaf_node not in set(edges.src.tolist()) | set(edges.dst.tolist())
    # Entities linked to several items keep their edges.
    assert edges.layout.entity_offset in set(edges.dst.tolist())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 2)), max_size=40),
    st.booleans(),
)
def test_unique_columns_equals_numpy_unique_along_axis(columns, huge_bounds):
    rows = tuple(np.array([c[i] for c in columns], np.int64) for i in range(3))
    bounds = (2**40, 2**40, 3) if huge_bounds else (7, 7, 3)  # the first overflows int64 keys: numpy's path
    ours = unique_columns(rows, bounds)
    expected = np.unique(np.stack(rows), axis=1) if columns else np.zeros((3, 0), np.int64)
    assert [r.tolist() for r in ours] == expected.tolist()
