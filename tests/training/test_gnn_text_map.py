"""The GNN's text map (training.gnn.init.fit_text_map): whitening, determinism, saved state, new items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.gnn import LightGCN
from training.gnn.adjacency import NodeLayout
from training.gnn.init import NodeEmbedding, apply_text_map, fit_text_map, standardize_features


def cone(n: int = 300, d: int = 24, seed: int = 0) -> np.ndarray:
    """Encoder-like vectors: a large shared offset, a few dominant directions, a flat rest."""
    rng = np.random.default_rng(seed)
    spread = np.r_[np.full(3, 5.0), np.linspace(1.0, 0.1, d - 3)]
    return (3.0 + rng.normal(size=(n, d)) * spread @ np.linalg.qr(rng.normal(size=(d, d)))[0]).astype(np.float32)


def test_shapes_and_dtypes():
    features = cone()
    mean, basis = fit_text_map(features, components=8)
    assert mean.shape == (24,) and basis.shape == (24, 8)
    assert mean.dtype == basis.dtype == np.float32
    out = apply_text_map(features[:5], mean, basis)
    assert out.shape == (5, 8) and out.dtype == np.float32
    # More components than dimensions: every dimension, no more.
    assert fit_text_map(features, components=100)[1].shape == (24, 24)


@pytest.mark.parametrize("components, scale", [(8, 1.0), (24, 1.0), (8, 2.5)])
def test_whitened_rows_have_identity_covariance_and_rms_norm_scale(components, scale):
    features = cone()
    mapped = apply_text_map(features, *fit_text_map(features, components=components, scale=scale))
    np.testing.assert_allclose(mapped.mean(axis=0), 0.0, atol=1e-4)
    covariance = np.cov(mapped.astype(np.float64), rowvar=False, bias=True)
    np.testing.assert_allclose(covariance * components / scale**2, np.eye(components), atol=1e-4)
    assert np.sqrt((mapped**2).sum(axis=1).mean()) == pytest.approx(scale, rel=1e-4)


def test_whitening_keeps_the_top_principal_directions():
    features = cone()
    _, basis = fit_text_map(features, components=3)
    centred = features - features.mean(axis=0)
    top = np.linalg.svd(centred, full_matrices=False)[2][:3]
    # The kept subspace is the top-3 principal one (the three large directions of ``cone``).
    unit = basis / np.linalg.norm(basis, axis=0)
    np.testing.assert_allclose(np.abs(unit.T @ top.T).max(axis=1), 1.0, atol=1e-3)


def test_directions_without_variance_are_dropped():
    rng = np.random.default_rng(1)
    features = (rng.normal(size=(50, 3)) @ rng.normal(size=(3, 10))).astype(np.float32)  # rank 3 in 10 dims
    mean, basis = fit_text_map(features, components=8)
    assert basis.shape == (10, 3)
    assert np.isfinite(apply_text_map(features, mean, basis)).all()
    same = np.ones((4, 6), np.float32)
    assert not apply_text_map(same, *fit_text_map(same)).any()  # one text only: nothing to tell apart


def test_map_is_deterministic_with_fixed_signs():
    features = cone()
    mean, basis = fit_text_map(features, components=8)
    again_mean, again_basis = fit_text_map(features.copy(), components=8)
    assert np.array_equal(mean, again_mean) and np.array_equal(basis, again_basis)
    # Signs do not depend on the order of the rows: the largest entry of each column is positive.
    _, shuffled = fit_text_map(features[np.random.default_rng(2).permutation(len(features))], components=8)
    np.testing.assert_allclose(shuffled, basis, rtol=1e-3, atol=1e-5)
    assert (basis[np.abs(basis).argmax(axis=0), np.arange(8)] > 0).all()


def test_zero_components_is_standardize_features():
    features = cone()
    mean, basis = fit_text_map(features, components=0)
    assert basis.shape == (24, 24)
    np.testing.assert_allclose(apply_text_map(features, mean, basis), standardize_features(features), atol=1e-5)


def test_bad_input_is_named():
    features = cone()
    with pytest.raises(ValueError, match="finite"):
        fit_text_map(np.full((3, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="components"):
        fit_text_map(features, components=-1)
    with pytest.raises(ValueError, match="scale"):
        fit_text_map(features, scale=0.0)
    with pytest.raises(ValueError, match=r"\[n, 24\]"):
        apply_text_map(features[:, :5], *fit_text_map(features))
    with pytest.raises(ValueError, match="text_components"):
        LightGCN(text_components=-2)
    with pytest.raises(ValueError, match="text_scale"):
        LightGCN(text_scale=-1.0)


def test_node_embedding_keeps_the_maps_as_saved_buffers(structured_graph):
    graph = structured_graph
    item_features = cone(graph.num_items, 24, seed=3)
    entity_features = np.full((graph.num_entities, 24), np.nan, np.float32)
    entity_features[::2] = cone(len(entity_features[::2]), 24, seed=4)  # the others have no text
    embedding = NodeEmbedding(
        NodeLayout(graph.num_users, graph.num_items, graph.num_entities),
        16,
        item_features=item_features,
        entity_features=entity_features,
        user_items=None,
        user_init="learned",
        init_std=0.1,
        generator=torch.Generator().manual_seed(0),
        text_components=8,
    )
    state = embedding.state_dict()
    mean, basis = fit_text_map(item_features, components=8)
    np.testing.assert_array_equal(state["item_text_mean"].numpy(), mean)
    np.testing.assert_array_equal(state["item_text_basis"].numpy(), basis)
    assert state["entity_text_basis"].shape == (24, 8)
    assert "item_features" not in state and "entity_features" not in state  # recomputed, not saved
    assert embedding.item_projection.weight.shape == (16, 8)
    torch.testing.assert_close(embedding.item_features, torch.from_numpy(apply_text_map(item_features, mean, basis)))


def topic_text(graph, seed: int = 0) -> np.ndarray:
    """Item text whose topic (item % 4, the graph's taste clusters) sits in low-variance directions.

    Four one-hot topic columns plus two columns of large noise that says nothing about
    the topic (an encoder's style/length directions): centring alone leaves cosine
    similarity dominated by the noise, whitening weighs every direction alike.
    """
    rng = np.random.default_rng(seed)
    topics = np.eye(4, dtype=np.float32)[np.arange(graph.num_items) % 4]
    noise = rng.normal(0.0, 30.0, size=(graph.num_items, 2)).astype(np.float32)
    return np.hstack([topics, noise])


@pytest.fixture(scope="module")
def topic_learner(structured_graph):
    features = topic_text(structured_graph)
    learner = LightGCN(epochs=40, eval_every=5, seed=0, device="cpu").fit(
        structured_graph,
        structured_graph.matrix("train", weighted=True),
        valid_items=structured_graph.matrix("valid"),
        item_features=features,
    )
    return learner, features


def nearest_topics(learner, features: np.ndarray, new: np.ndarray) -> np.ndarray:
    items = learner.item_embeddings()
    vectors = learner.embed_new_items(new, features)
    cosine = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ (
        items / np.linalg.norm(items, axis=1, keepdims=True)
    ).T
    return cosine.argmax(axis=1) % 4


def test_saved_map_round_trips_and_embed_new_items_uses_it(topic_learner, tmp_path):
    learner, features = topic_learner
    learner.save(tmp_path / "m")
    loaded = LightGCN.load(tmp_path / "m", device="cpu")
    assert (loaded.text_components, loaded.text_scale) == (learner.text_components, learner.text_scale)
    for key in ("embedding.item_text_mean", "embedding.item_text_basis"):
        assert torch.equal(loaded.parameters_[key], learner.parameters_[key])
    np.testing.assert_array_equal(
        loaded.parameters_["embedding.item_text_basis"].numpy(), fit_text_map(features, components=64)[1]
    )
    # New items: each topic's one-hot with noise drawn as the known items' was.
    new = np.hstack([np.eye(4, dtype=np.float32), np.random.default_rng(5).normal(0.0, 30.0, (4, 2))])
    new = new.astype(np.float32)
    np.testing.assert_allclose(loaded.embed_new_items(new, features), learner.embed_new_items(new, features))
    # Through the whitened map the nearest known item is of the new item's topic.
    assert nearest_topics(loaded, features, new).tolist() == [0, 1, 2, 3]
    # Without the saved map (a learner saved before it was kept) neighbors are chosen by
    # centred cosine, which the noise column dominates: some land in another topic.
    legacy = LightGCN.load(tmp_path / "m", device="cpu")
    for key in ("embedding.item_text_mean", "embedding.item_text_basis"):
        del legacy.parameters_[key]
    assert nearest_topics(legacy, features, new).tolist() != [0, 1, 2, 3]


def test_embed_new_items_checks_the_text_width(topic_learner):
    learner, features = topic_learner
    with pytest.raises(ValueError, match=r"\[n, 6\]"):
        learner.embed_new_items(np.zeros((1, 3), np.float32), features)
