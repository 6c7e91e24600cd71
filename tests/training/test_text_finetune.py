"""Contrastive fine-tuning on a tiny random BERT over the structured graph."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tests.training.test_text_encoder import one_torch_thread, tiny_model_dir  # noqa: F401  (fixtures)
from training.base import ModelFitError
from training.text import (
    FineTuneConfig,
    TextEncoder,
    co_interaction_neighbors,
    fine_tune,
    info_nce,
    item_texts,
    neighbor_recall,
)

# 10 neighbors of 80 items: the positives are ~92% same-topic on the structured graph.
CONFIG = FineTuneConfig(steps=100, batch_size=16, lr=1e-2, layers=None, neighbors=10, seed=0)
_RUNS: dict = {}


def tuned(tiny_model_dir, graph, config: FineTuneConfig = CONFIG):
    """(encoder, report), fine-tuned once per (graph, config) for the module."""
    key = (id(graph), config)
    if key not in _RUNS:
        encoder = TextEncoder(tiny_model_dir, max_length=16, batch_size=32)
        report = fine_tune(encoder, graph, graph.matrix("train", "valid"), config)
        _RUNS[key] = (encoder, report)
    return _RUNS[key]


def weights(encoder: TextEncoder) -> dict[str, np.ndarray]:
    return {name: t.detach().cpu().numpy().copy() for name, t in encoder.model.state_dict().items()}


def test_info_nce_matches_the_formula():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    p = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, 2] = True
    tau = 0.1
    s = (a @ p.T / tau).numpy()
    forward = [-(s[k, k] - math.log(sum(math.exp(s[k, m]) for m in range(4) if not mask[k, m]))) for k in range(4)]
    backward = [-(s[k, k] - math.log(sum(math.exp(s[m, k]) for m in range(4) if not mask[m, k]))) for k in range(4)]
    expected = 0.5 * (np.mean(forward) + np.mean(backward))
    assert float(info_nce(a, p, mask, tau)) == pytest.approx(expected, rel=1e-5)
    # Aligned pairs score a lower loss than shuffled ones.
    assert float(info_nce(a, a, torch.zeros(4, 4, dtype=torch.bool), tau)) < float(info_nce(a, p, mask, tau))


def test_loss_goes_down(tiny_model_dir, structured_graph):
    _, report = tuned(tiny_model_dir, structured_graph)
    losses = np.array(report.losses)
    assert report.steps == 100 and np.isfinite(losses).all()
    assert losses[-15:].mean() < losses[:15].mean() - 0.25, (losses[:15].mean(), losses[-15:].mean())
    assert report.anchors == structured_graph.num_items and report.pairs > 0


def test_neighbors_agree_more_with_held_out_co_interactions(tiny_model_dir, structured_graph):
    """Fine-tuned on train+valid, judged on neighbors from the test split."""
    truth = co_interaction_neighbors(structured_graph.matrix("test"), top=10)
    texts = item_texts(structured_graph)
    ids = structured_graph.item_ids
    before = neighbor_recall(
        TextEncoder(tiny_model_dir, max_length=16).embed(texts), truth, item_ids=ids, k=10
    ).metrics["recall"]
    encoder, _ = tuned(tiny_model_dir, structured_graph)
    after = neighbor_recall(encoder.embed(texts), truth, item_ids=ids, k=10).metrics["recall"]
    # before ~0.32; vectors that encode the topic exactly reach ~0.39 on this noisy truth.
    assert after > before + 0.04, (before, after)


def topic_margin(vectors: np.ndarray, queries: np.ndarray, topic: np.ndarray) -> float:
    """Mean cosine of each query to same-topic items minus that to other-topic items."""
    sims = vectors[queries] @ vectors.T
    sims[np.arange(len(queries)), queries] = np.nan
    same = topic[queries][:, None] == topic[None, :]
    return float(np.nanmean(np.where(same, sims, np.nan)) - np.nanmean(np.where(~same, sims, np.nan)))


def test_generalises_to_items_it_never_saw(tiny_model_dir, structured_graph):
    """Items held out of fine-tuning (cold) still move towards their taste cluster."""
    topic = np.arange(structured_graph.num_items) % 4  # the structured graph's item topics
    cold = np.arange(0, structured_graph.num_items, 5)
    keep = np.ones(structured_graph.num_items, np.float32)
    keep[cold] = 0.0
    seen = (structured_graph.matrix("train", "valid") @ sp.diags(keep)).tocsr()
    seen.eliminate_zeros()
    texts = item_texts(structured_graph)
    encoder = TextEncoder(tiny_model_dir, max_length=16)
    before = topic_margin(encoder.embed(texts), cold, topic)
    fine_tune(encoder, structured_graph, seen, CONFIG)
    after = topic_margin(encoder.embed(texts), cold, topic)
    assert after > before + 0.1, (before, after)


def test_seeded_and_leaves_the_global_rng_alone(tiny_model_dir, structured_graph):
    first, report = tuned(tiny_model_dir, structured_graph)
    state = torch.get_rng_state()
    again = TextEncoder(tiny_model_dir, max_length=16)
    report_again = fine_tune(again, structured_graph, structured_graph.matrix("train", "valid"), CONFIG)
    assert torch.equal(state, torch.get_rng_state())
    assert report_again.losses == report.losses
    assert again.fingerprint == first.fingerprint == report.fingerprint
    other = TextEncoder(tiny_model_dir, max_length=16)
    config = FineTuneConfig(steps=5, batch_size=16, lr=1e-2, layers=None, neighbors=10, seed=1)
    assert fine_tune(other, structured_graph, structured_graph.matrix("train"), config).losses != report.losses[:5]


def test_only_the_top_layers_train(tiny_model_dir, structured_graph):
    encoder = TextEncoder(tiny_model_dir, max_length=16)
    before = weights(encoder)
    old_fingerprint = encoder.fingerprint
    config = FineTuneConfig(steps=3, batch_size=8, lr=1e-3, layers=1)
    report = fine_tune(encoder, structured_graph, structured_graph.matrix("train"), config)
    after = weights(encoder)
    changed = {name for name in before if not np.array_equal(before[name], after[name])}
    assert changed and all(name.startswith("encoder.layer.1.") for name in changed), sorted(changed)
    assert report.trained_parameters == sum(p.numel() for p in encoder.model.encoder.layer[1].parameters())
    assert report.fingerprint != old_fingerprint and encoder.fingerprint == report.fingerprint
    assert all(p.requires_grad for p in encoder.model.parameters()) and not encoder.model.training


def test_progress_callback_and_report(tiny_model_dir, structured_graph):
    calls = []
    encoder = TextEncoder(tiny_model_dir, max_length=16)
    config = FineTuneConfig(steps=4, batch_size=8)
    report = fine_tune(
        encoder, structured_graph, structured_graph.matrix("train"), config, callback=lambda *a: calls.append(a)
    )
    assert [c[0] for c in calls] == [0, 1, 2, 3]
    assert [c[2] for c in calls] == list(report.losses)
    assert all(b[1] >= a[1] for a, b in zip(calls, calls[1:]))
    assert report.to_dict()["steps"] == 4


def test_diverging_loss_raises(tiny_model_dir, structured_graph):
    encoder = TextEncoder(tiny_model_dir, max_length=16)
    with torch.no_grad():
        encoder.model.encoder.layer[-1].output.dense.bias.fill_(float("nan"))
    with pytest.raises(ModelFitError, match="loss is nan at step 0"):
        fine_tune(encoder, structured_graph, structured_graph.matrix("train"), FineTuneConfig(steps=2, batch_size=4))


def test_no_pairs_is_a_clear_error(tiny_model_dir, structured_graph):
    one_each = sp.csr_matrix(
        (np.ones(3, np.float32), ([0, 1, 2], [0, 1, 2])), shape=(structured_graph.num_users, structured_graph.num_items)
    )
    with pytest.raises(ValueError, match="co-interaction neighbors for 0 item"):
        fine_tune(TextEncoder(tiny_model_dir), structured_graph, one_each, FineTuneConfig(steps=1))
    with pytest.raises(ValueError, match="columns"):
        fine_tune(TextEncoder(tiny_model_dir), structured_graph, one_each[:, :5].tocsr(), FineTuneConfig(steps=1))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("steps", -1, "steps must be an integer >= 0"),
        ("batch_size", 1, "batch_size must be an integer >= 2"),
        ("lr", 0.0, "lr must be a finite number > 0"),
        ("temperature", -0.1, "temperature must be a finite number > 0"),
        ("warmup_fraction", 1.5, r"warmup_fraction must be a finite number in \[0, 1\]"),
        ("layers", -1, "layers must be an integer >= 0"),
        ("anchor_power", float("nan"), "anchor_power must be a finite number, got nan"),
    ],
)
def test_config_validation(field, value, message):
    with pytest.raises(ValueError, match=message):
        FineTuneConfig(**{field: value})


@pytest.mark.gpu
def test_fine_tune_and_embed_on_cuda(tiny_model_dir, structured_graph):
    cpu = TextEncoder(tiny_model_dir, max_length=16)
    gpu = TextEncoder(tiny_model_dir, max_length=16, device="cuda")
    texts = item_texts(structured_graph)
    np.testing.assert_allclose(cpu.embed(texts), gpu.embed(texts), atol=1e-4)
    report = fine_tune(gpu, structured_graph, structured_graph.matrix("train"), FineTuneConfig(steps=20, batch_size=16))
    assert np.isfinite(report.losses).all() and next(gpu.model.parameters()).is_cuda
    assert np.isfinite(gpu.embed(texts)).all()


def test_split_forward_reproduces_the_full_forward(tiny_model_dir, structured_graph):
    encoder = TextEncoder(tiny_model_dir, max_length=16, batch_size=4)
    texts = item_texts(structured_graph)[:10] + ["x"]
    assert encoder.num_blocks == 2 and encoder.splittable
    with torch.inference_mode():
        whole = encoder.encode(texts)
        states = encoder.prefix_states(texts, 1)
        split = encoder.encode_from(states, 1)
    # Padding is dropped: each state has the text's own token count.
    assert [len(s) for s in states] == [
        len(ids) for ids in encoder.tokenizer(texts, truncation=True, max_length=16)["input_ids"]
    ]
    assert torch.allclose(whole, split, atol=1e-5)


def test_top_layer_fine_tuning_reuses_the_frozen_layers_for_embedding(tiny_model_dir, structured_graph):
    encoder = TextEncoder(tiny_model_dir, max_length=16, batch_size=8)
    config = FineTuneConfig(steps=6, batch_size=8, lr=1e-3, layers=1, neighbors=10, seed=0)
    report = fine_tune(encoder, structured_graph, structured_graph.matrix("train"), config)
    prefix = encoder.prefix
    assert prefix is not None and prefix.split == 1 and len(prefix) > 0 and prefix.valid()
    assert 0 < prefix.stored_bytes <= prefix.budget_bytes
    texts = [t for t in item_texts(structured_graph) if t.strip()]
    served = encoder.embed(texts)  # the top block over the stored states
    fresh = TextEncoder(tiny_model_dir, max_length=16, batch_size=8)
    fresh.model.load_state_dict(encoder.model.state_dict())
    assert fresh.fingerprint == report.fingerprint
    np.testing.assert_allclose(served, fresh.embed(texts), atol=1e-5)
    # Changing a frozen weight makes the stored states stale: embed stops using them.
    with torch.no_grad():
        weight = encoder.model.encoder.layer[0].output.dense.weight
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    encoder.refresh_fingerprint()
    assert not prefix.valid()
    changed = encoder.embed(texts[:5])
    assert encoder.prefix is None
    assert not np.allclose(changed, served[:5], atol=1e-3)


def test_every_layer_training_keeps_no_prefix(tiny_model_dir, structured_graph):
    encoder, _ = tuned(tiny_model_dir, structured_graph)
    assert encoder.prefix is None


def test_prefix_cache_respects_its_budget(tiny_model_dir, structured_graph):
    from training.text.encoder import PrefixCache

    encoder = TextEncoder(tiny_model_dir, max_length=16)
    texts = item_texts(structured_graph)[:20]
    one = encoder.prefix_states(texts[:1], 1)[0]
    cache = PrefixCache(encoder, 1, max_length=16, budget_bytes=5 * one.numel() * 4)
    states = cache.states(texts)
    assert len(states) == 20 and 0 < len(cache) < 20 and cache.stored_bytes <= cache.budget_bytes
    assert len(PrefixCache(encoder, 1, max_length=16).states(texts, keep=[False] * 20)) == 20
    with pytest.raises(ValueError, match=r"split must be an integer in \[1, 1\], got 2"):
        PrefixCache(encoder, 2, max_length=16)
