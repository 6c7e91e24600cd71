"""What keeps the sources' training cost tied to the graph: the GNN's auto schedule, entity text vectors, EASE limits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tests.conftest import make_structured_graph
from tests.training.test_text_encoder import one_torch_thread, tiny_model_dir  # noqa: F401  (fixtures)
from training.gnn.schedule import MIN_BATCH, STEPS_PER_EPOCH, resolve_schedule, validation_sample
from training.sources.ease import AUTO_MAX_ITEMS, EASE
from training.text import TextEncoder, entity_item_links, entity_vectors

AUTO = dict(batch_size="auto", num_negatives="auto", epochs="auto", eval_every="auto", patience="auto")


@pytest.mark.parametrize("pairs", [1_000, 64_660, 810_128, 30_000_000])
def test_auto_batch_makes_an_epoch_a_bounded_number_of_propagations(pairs):
    schedule = resolve_schedule(pairs, **AUTO)
    assert schedule.batch_size >= MIN_BATCH
    assert schedule.steps_per_epoch <= STEPS_PER_EPOCH
    assert schedule.batch_size * schedule.steps_per_epoch >= pairs
    assert schedule.num_negatives == 1


def test_explicit_settings_are_honoured():
    schedule = resolve_schedule(64_660, batch_size=2048, num_negatives=4, epochs=7, eval_every=5, patience=3)
    assert (schedule.batch_size, schedule.num_negatives, schedule.epochs, schedule.eval_every, schedule.patience) == (
        2048, 4, 7, 5, 3,
    )  # fmt: skip
    assert schedule.steps_per_epoch == 32
    assert "32 steps/epoch" in schedule.describe()


def test_validation_sample_is_seeded_and_bounded():
    rng = np.random.default_rng(0)
    valid = sp.csr_matrix((rng.random((500, 40)) < 0.1).astype(np.float32))
    users = int((np.diff(valid.indptr) > 0).sum())
    small = validation_sample(valid, max_users=100, seed=3)
    assert small.shape == valid.shape and int((np.diff(small.indptr) > 0).sum()) == 100
    assert (small != validation_sample(valid, max_users=100, seed=3)).nnz == 0
    # A kept user keeps all their validation items.
    kept = np.flatnonzero(np.diff(small.indptr))
    assert (small[kept] != valid[kept]).nnz == 0
    assert validation_sample(valid, max_users=users) is valid


def _graph_with_opaque_entities():
    graph = make_structured_graph(num_users=40, num_items=24, per_user=6)
    entities = graph.entities.copy()
    # Entity 0 keeps a readable name; every creator gets a Freebase-style id; the last one no name.
    names = list(entities["name"].astype(object))
    names[1:] = [f"m.0x{i}" for i in range(1, len(names))]
    names[-1] = None
    entities["name"] = pd.array(names, dtype="string")
    return dataclasses.replace(graph, entities=entities)


def test_opaque_entities_take_the_mean_of_their_items(tiny_model_dir):
    graph = _graph_with_opaque_entities()
    encoder = TextEncoder(tiny_model_dir, max_length=16, batch_size=32)
    rng = np.random.default_rng(0)
    items = rng.normal(size=(graph.num_items, 8)).astype(np.float32)
    items[0] = 0.0  # an item without text does not count
    vectors, counts = entity_vectors(graph, encoder, np.pad(items, ((0, 0), (0, encoder.dim - 8))))
    assert counts["encoded"] == 1 and counts["encoded"] + counts["item_mean"] + counts["none"] == graph.num_entities
    links = entity_item_links(graph)
    for e in range(1, graph.num_entities):
        linked = [i for i in links[e].indices if i != 0]
        if not linked:
            assert np.isnan(vectors[e]).all()
            continue
        mean = items[linked].sum(axis=0)
        np.testing.assert_allclose(vectors[e, :8], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
        assert np.allclose(vectors[e, 8:], 0.0)
    np.testing.assert_allclose(np.linalg.norm(vectors[0]), 1.0, rtol=1e-5)


def test_ease_auto_limit_follows_the_device():
    assert EASE().item_limit() == AUTO_MAX_ITEMS["cpu"]
    assert EASE(max_items=123).item_limit() == 123
    with pytest.raises(TypeError, match="max_items must be an integer >= 1 or .auto., got str"):
        EASE(max_items="many")
