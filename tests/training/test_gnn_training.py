"""GNN training mechanics: negatives and BPR, node initialisation, the loop, checkpoints and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.training.test_gnn_lightgcn import text_features
from training.base import ModelFitError
from training.gnn import LightGCN
from training.gnn.adjacency import NodeLayout
from training.gnn.bpr import NegativeSampler, bpr_loss, gathered_bpr_loss, positive_pairs
from training.gnn.init import ITEM_L2, NodeEmbedding, apply_text_map, fit_text_map, standardize_features
from training.gnn.schedule import AUTO_MIN_GAIN, Schedule
from training.gnn.trainer import train


# -- BPR -----------------------------------------------------------------------------------
def test_negative_sampler_avoids_positives_and_is_seeded():
    user_items = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0]], np.float32))
    sampler = NegativeSampler(user_items, num_negatives=5)
    users = torch.tensor([0, 1] * 50)
    negatives = sampler.sample(users, torch.Generator().manual_seed(0))
    assert negatives.shape == (100, 5) and negatives.dtype == torch.int64
    assert not sampler.is_positive(users, negatives).any()
    assert set(negatives[users == 0].flatten().tolist()) == {2, 3, 4, 5}
    again = sampler.sample(users, torch.Generator().manual_seed(0))
    assert torch.equal(negatives, again)


def test_positive_pairs_lists_every_stored_entry():
    user_items = sp.csr_matrix(np.array([[0, 2, 0], [1, 0, 1]], np.float32))
    users, items = positive_pairs(user_items)
    assert users.tolist() == [0, 1, 1] and items.tolist() == [1, 0, 2]


def test_bpr_loss_values():
    users = torch.tensor([[1.0, 0.0]])
    positives = torch.tensor([[2.0, 0.0]])
    negatives = torch.tensor([[[0.0, 0.0], [4.0, 0.0]]])
    expected = (np.log1p(np.exp(0.0 - 2.0)) + np.log1p(np.exp(4.0 - 2.0))) / 2
    assert float(bpr_loss(users, positives, negatives)) == pytest.approx(expected, rel=1e-6)
    assert float(bpr_loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, 2, 4))) == pytest.approx(np.log(2))


@pytest.mark.parametrize("num_negatives", [1, 3])
def test_gathered_bpr_loss_matches_autograd_of_bpr_loss(num_negatives):
    generator = torch.Generator().manual_seed(0)
    nodes = torch.randn(30, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    users = torch.randint(30, (11,), generator=generator)
    positives = torch.randint(30, (11,), generator=generator)
    negatives = torch.randint(30, (11, num_negatives), generator=generator)
    fused = gathered_bpr_loss(nodes, users, positives, negatives)
    (fused_grad,) = torch.autograd.grad(fused, nodes)
    plain = bpr_loss(nodes[users], nodes[positives], nodes[negatives])
    (plain_grad,) = torch.autograd.grad(plain, nodes)
    assert float(fused) == pytest.approx(float(plain), rel=1e-12)
    torch.testing.assert_close(fused_grad, plain_grad, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: gathered_bpr_loss(x, users, positives, negatives), (nodes,))


# -- initialisation ------------------------------------------------------------------------
def test_standardize_features_centres_and_scales():
    features = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 8)).astype(np.float32)
    out = standardize_features(features)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    assert np.sqrt((out**2).sum(axis=1).mean()) == pytest.approx(1.0, rel=1e-5)


def _embedding(graph, *, user_init="learned", text=True, **kwargs):
    features = text_features(graph) if text else {"item_features": None, "entity_features": None}
    return NodeEmbedding(
        NodeLayout(graph.num_users, graph.num_items, graph.num_entities),
        16,
        user_items=graph.matrix("train"),
        user_init=user_init,
        init_std=0.1,
        generator=torch.Generator().manual_seed(0),
        **features,
        **kwargs,
    )


def test_text_init_items_start_at_their_projected_text(structured_graph):
    embedding = _embedding(structured_graph)
    items = embedding.items(None).detach()
    assert torch.count_nonzero(embedding.item) == 0
    mean, basis = fit_text_map(text_features(structured_graph)["item_features"])
    features = torch.from_numpy(apply_text_map(text_features(structured_graph)["item_features"], mean, basis))
    torch.testing.assert_close(items, features @ embedding.item_projection.weight.T.detach())
    # Items of one topic (same title words) start closer to each other than to other topics
    # (by less than without whitening, which gives the words that vary within a topic
    # as much weight as the topic directions: 0.19 here, 0.2+ with text_components=0).
    topic = np.arange(structured_graph.num_items) % 4
    unit = torch.nn.functional.normalize(items, dim=1)
    cosine = (unit @ unit.T).numpy()
    same = cosine[topic[:, None] == topic[None, :]].mean()
    other = cosine[topic[:, None] != topic[None, :]].mean()
    assert same > other + 0.1, (same, other)


def test_entities_without_text_get_free_vectors_and_described_ones_projections(structured_graph):
    embedding = _embedding(structured_graph)
    kg = np.array(structured_graph.entities["source"] == "kg")
    entities = embedding.entities(None).detach()
    torch.testing.assert_close(entities[torch.from_numpy(kg)], embedding.entity.detach()[torch.from_numpy(kg)])
    assert torch.count_nonzero(embedding.entity[torch.from_numpy(~kg)]) == 0
    assert torch.count_nonzero(entities[torch.from_numpy(~kg)]) > 0
    item_offset = structured_graph.num_users
    nodes = torch.tensor([0, item_offset + 5, item_offset + structured_graph.num_items + 6])
    subset = embedding(nodes).detach()
    torch.testing.assert_close(subset, embedding(None).detach()[nodes])


def test_mean_items_user_init_starts_users_at_their_items_mean(structured_graph):
    embedding = _embedding(structured_graph, user_init="mean_items", text=False)
    train = structured_graph.matrix("train")
    items = embedding.item.detach()
    user = 11
    expected = items[torch.from_numpy(train[user].indices.astype(np.int64))].mean(0)
    torch.testing.assert_close(embedding.user.detach()[user], expected)


def test_batch_penalty_counts_each_row_as_often_as_the_batch_holds_it(structured_graph):
    embedding = _embedding(structured_graph, text=False)
    generator = torch.Generator().manual_seed(1)
    users = torch.randint(structured_graph.num_users, (40,), generator=generator)
    items = torch.randint(structured_graph.num_items, (40,), generator=generator)
    negatives = torch.randint(structured_graph.num_items, (40, 3), generator=generator)
    expected = (
        embedding.user_penalty(users) + embedding.item_penalty(items) + embedding.item_penalty(negatives.flatten()) / 3
    )
    torch.testing.assert_close(embedding.batch_penalty(users, items, negatives), expected)


def test_item_l2_weighs_the_items_rows_of_the_penalty(structured_graph):
    generator = torch.Generator().manual_seed(2)
    users = torch.randint(structured_graph.num_users, (40,), generator=generator)
    items = torch.randint(structured_graph.num_items, (40,), generator=generator)
    negatives = torch.randint(structured_graph.num_items, (40, 2), generator=generator)
    penalties = {}
    for weight in (0.0, 0.25, 1.0):
        embedding = _embedding(structured_graph, text=False, item_l2=weight)
        penalties[weight] = embedding.batch_penalty(users, items, negatives)
    users_only = _embedding(structured_graph, text=False).user_penalty(users)
    torch.testing.assert_close(penalties[0.0], users_only)
    # the items' share scales linearly with the weight
    torch.testing.assert_close(penalties[0.25] - users_only, 0.25 * (penalties[1.0] - users_only))
    assert float(penalties[1.0] - users_only) > 0
    assert _embedding(structured_graph).item_l2 == _embedding(structured_graph, text=False).item_l2 == ITEM_L2 == 1.0
    # with text init the rows are the residuals (zero at the start): the weight scales them the same way
    text_penalty = {}
    for weight in (0.0, 0.25, 1.0):
        embedding = _embedding(structured_graph, item_l2=weight)
        with torch.no_grad():
            embedding.item.copy_(torch.randn(embedding.item.shape, generator=torch.Generator().manual_seed(3)))
        text_penalty[weight] = embedding.batch_penalty(users, items, negatives)
    torch.testing.assert_close(text_penalty[0.0], users_only)
    torch.testing.assert_close(text_penalty[0.25] - users_only, 0.25 * (text_penalty[1.0] - users_only))
    assert float(text_penalty[1.0] - users_only) > 1.0


@pytest.mark.parametrize(
    ("value", "error"), [(-0.1, ValueError), (float("nan"), ValueError), ("strong", TypeError), (True, TypeError)]
)
def test_a_bad_item_l2_is_refused_when_the_learner_is_made(value, error):
    with pytest.raises(error, match="item_l2"):
        LightGCN(item_l2=value)


# -- the loop --------------------------------------------------------------------------------
def test_train_raises_model_fit_error_on_nan_loss():
    weight = torch.nn.Parameter(torch.ones(3))
    model = torch.nn.Module()
    model.weight = weight
    sampler = NegativeSampler(sp.csr_matrix(np.eye(3, dtype=np.float32)), num_negatives=1)
    with pytest.raises(ModelFitError, match="loss became nan in epoch 1"):
        train(
            model,
            step=lambda users, items, negatives: weight.sum() * float("nan"),
            users=torch.arange(3),
            items=torch.arange(3),
            sampler=sampler,
            validate=None,
            schedule=Schedule(batch_size=2, num_negatives=1, epochs=2, eval_every=1, patience=1, steps_per_epoch=2),
            lr=0.1,
            generator=torch.Generator().manual_seed(0),
        )


def test_early_stopping_keeps_the_best_epoch(structured_graph):
    learner = LightGCN(
        epochs=200, eval_every=1, patience=2, min_gain=0, init="random", lr=0.05, seed=3, device="cpu"
    )
    learner.fit(structured_graph, structured_graph.matrix("train"), valid_items=structured_graph.matrix("valid"))
    scores = [h["ndcg"] for h in learner.history_]
    assert len(learner.history_) < 200
    assert scores[learner.best_epoch_ - 1] == max(scores)
    assert len(scores) - learner.best_epoch_ == 2


@pytest.mark.parametrize(
    ("min_gain", "stops_at", "anchor"), [(0.0, 6, 0.1010), (0.005, 3, 0.1), (0.003, 6, 0.1008)]
)
def test_a_creeping_validation_curve_stops_once_gains_fall_below_min_gain(min_gain, stops_at, anchor):
    """+0.2% per validation: progress for min_gain 0 (runs to the cap), none for 0.5% (stops after patience 2);
    with 0.3% every other validation counts (0.1004 is 0.4% above the last progress, 0.1002 is not)."""
    weight = torch.nn.Parameter(torch.ones(3))
    model = torch.nn.Module()
    model.weight = weight
    scores = iter([0.1, 0.1002, 0.1004, 0.1006, 0.1008, 0.1010])
    progress = train(
        model,
        step=lambda users, items, negatives: (weight**2).sum(),
        users=torch.arange(3),
        items=torch.arange(3),
        sampler=NegativeSampler(sp.csr_matrix(np.eye(3, dtype=np.float32)), num_negatives=1),
        validate=lambda: next(scores),
        schedule=Schedule(
            batch_size=3, num_negatives=1, epochs=6, eval_every=1, patience=2, steps_per_epoch=1, min_gain=min_gain
        ),
        lr=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    assert progress.epoch == stops_at and progress.stopped == (stops_at < 6)
    assert progress.anchor_score == pytest.approx(anchor)
    assert progress.best_epoch == stops_at  # the best weights are kept whatever stopped the run


def test_the_auto_schedule_resolves_min_gain():
    assert LightGCN().schedule(100_000).min_gain == AUTO_MIN_GAIN > 0
    assert LightGCN(min_gain=0.01).schedule(100_000).min_gain == 0.01
    with pytest.raises(ValueError, match="min_gain"):
        LightGCN(min_gain=-0.1)


class _Interrupt(Exception):
    pass


def _resumable(seed: int = 4) -> LightGCN:
    return LightGCN(epochs=8, eval_every=2, patience=10, seed=seed, device="cpu")


def test_resume_after_interruption_gives_identical_results(structured_graph, tmp_path):
    graph, features = structured_graph, text_features(structured_graph)
    train_items, valid_items = graph.matrix("train"), graph.matrix("valid")
    users = np.arange(graph.num_users)
    straight = _resumable().fit(graph, train_items, valid_items=valid_items, **features)

    def stop_after_three(epoch, seconds, loss):
        if epoch == 3:
            raise _Interrupt

    checkpoint = tmp_path / "ckpt"
    with pytest.raises(_Interrupt):
        _resumable().fit(
            graph,
            train_items,
            valid_items=valid_items,
            checkpoint_dir=checkpoint,
            callback=stop_after_three,
            **features,
        )
    progress = json.loads((checkpoint / "progress.json").read_text())["progress"]
    assert progress["epoch"] == 3 and not any(p.suffix in {".pkl", ".pt"} for p in checkpoint.iterdir())
    epochs_after_resume = []
    resumed = _resumable().fit(
        graph,
        train_items,
        valid_items=valid_items,
        checkpoint_dir=checkpoint,
        callback=lambda epoch, seconds, loss: epochs_after_resume.append(epoch),
        **features,
    )
    assert epochs_after_resume == [4, 5, 6, 7, 8]
    assert resumed.best_epoch_ == straight.best_epoch_
    # Bitwise equal with one CPU thread; several threads may reorder float sums in backward.
    np.testing.assert_allclose([h["loss"] for h in resumed.history_], [h["loss"] for h in straight.history_], rtol=1e-5)
    np.testing.assert_allclose(resumed.score(users).numpy(), straight.score(users).numpy(), rtol=1e-4, atol=1e-5)


def test_checkpoint_of_another_run_is_refused(structured_graph, tmp_path):
    graph, features = structured_graph, text_features(structured_graph)
    LightGCN(epochs=1, seed=0, device="cpu").fit(graph, graph.matrix("train"), checkpoint_dir=tmp_path, **features)
    with pytest.raises(ValueError, match=r"another run \(differs in \['config'\]\)"):
        LightGCN(epochs=1, seed=1, device="cpu").fit(graph, graph.matrix("train"), checkpoint_dir=tmp_path, **features)


def test_isolated_entities_are_projected_only_outside_training(structured_graph):
    features = text_features(structured_graph)
    embedding = NodeEmbedding(
        NodeLayout(structured_graph.num_users, structured_graph.num_items, structured_graph.num_entities),
        16,
        user_items=None,
        user_init="learned",
        init_std=0.1,
        generator=torch.Generator().manual_seed(0),
        connected_entities=np.zeros(structured_graph.num_entities, bool),
        **features,
    )
    described = torch.from_numpy(np.array(structured_graph.entities["source"] == "attribute"))
    assert embedding.training
    assert torch.count_nonzero(embedding.entities(None)[described]) == 0
    embedding.eval()
    assert torch.count_nonzero(embedding.entities(None)[described]) > 0
