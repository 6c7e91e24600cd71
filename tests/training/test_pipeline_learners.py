"""training.pipeline.learners: every learner setting of a config section reaches the learner, by name.

Each section is set to a non-default value in every field the learner takes; the learner the
pipeline builds must report that value in ``get_config()``. A field added to a section (or a
learner argument renamed) without its named argument in the factory fails here.
"""

from __future__ import annotations

import dataclasses

import pytest

from training.gnn import GAT, LightGCN
from training.pipeline.config import TrainConfig
from training.pipeline.learners import make_gnn, make_ranker, make_source
from training.sources.names import Source

CHANGED = {
    Source.TEXT: dict(
        model="some/encoder", template="{title}", max_length=16, batch_size=8, profile="mean", neighbors=5,
        fine_tune_steps=3, fine_tune_batch_size=4, fine_tune_lr=1e-3, fine_tune_temperature=0.1,
        fine_tune_layers=1, fine_tune_anchor_power=1.0, fine_tune_neighbors=7, cache_dir="/tmp/embedding-cache",
    ),
    Source.ALS: dict(factors=7, regularization=3.0, alpha=2.0, iterations=4, num_threads=1),
    Source.ITEMKNN: dict(similarity="cosine", neighbors=9, bm25_k1=1.5, bm25_b=0.5, num_threads=1),
    Source.EASE: dict(regularization=50.0, max_items=100),
    Source.GRAPHFILTER: dict(
        alpha=0.2, rank=8, exponent=0.4, sharpen=0.5, sharpen_order=1, kind="chebyshev", order=4, flatness=1.2,
        degree_power=0.1, ideal_exponent=0.3, dense_max_items=50, neighbors=12,
    ),
    Source.GNN: dict(
        embedding_dim=8, num_layers=2, lr=0.05, l2=0.01, epochs=3, batch_size=64, num_negatives=2, init="random",
        use_kg=False, use_social=False, user_init="learned", init_std=0.2, text_components=8, text_scale=2.0,
        item_l2=0.5, patience=2, eval_every=1, min_gain=0.01, mode="sampled", num_neighbors=5,
    ),
    "ranker": dict(
        candidates_per_source=10, candidate_sources="all", model="linear", hidden=8, dropout=0.1, loss="bpr", epochs=3, lr=0.01,
        weight_decay=0.0, batch_users=16, train_batch_users=8, valid_fraction=0.2, patience=2, ensemble=2,
        tail_weight=2.0, valid_k=10, feature_groups=("sources", "popularity"),
    ),
}  # fmt: skip


def _changed(section: str, **extra) -> TrainConfig:
    config = TrainConfig(seed=7, device="cpu")
    values = {**CHANGED[section], **extra}
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **values)})


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("section", sorted(CHANGED))
def test_every_learner_field_reaches_the_learner(section):
    config = _changed(section)
    settings = getattr(config, section).learner_kwargs()
    assert set(settings) <= set(CHANGED[section]), f"{section}: give the new fields a changed value here"
    learner = make_ranker(config) if section == "ranker" else make_source(section, config, text_on=True)
    built = learner.get_config()
    differ = {
        name: (built.get(name), _plain(value)) for name, value in settings.items() if built.get(name) != _plain(value)
    }
    assert not differ, f"{section}: (built, configured) {differ}"
    defaults = TrainConfig(device="cpu")
    unchanged = {name for name in settings if getattr(getattr(defaults, section), name) == settings[name]}
    assert not unchanged, f"{section}: CHANGED keeps the default of {sorted(unchanged)}: the test would not see it"
    if "seed" in built:
        assert built["seed"] == 7


def test_gat_takes_its_two_settings_and_lightgcn_none():
    config = _changed(Source.GNN, model="gat", heads=3, relation_dim=4)
    gat = make_source(Source.GNN, config, text_on=True)
    assert isinstance(gat, GAT) and (gat.heads, gat.relation_dim, gat.embedding_dim) == (3, 4, 8)
    assert type(make_source(Source.GNN, _changed(Source.GNN), text_on=True)) is LightGCN


def test_gnn_epochs_and_init_are_set_at_construction():
    config = dataclasses.replace(TrainConfig(device="cpu"), gnn=dataclasses.replace(TrainConfig().gnn, init="text"))
    assert make_gnn(config, text_on=False).init == "random"  # no text vectors: random init
    assert make_gnn(config, text_on=True).init == "text"
    warm = make_gnn(config, text_on=True, epochs=6)
    assert warm.epochs == 6 and warm.get_config()["epochs"] == 6 and make_gnn(config, text_on=True).epochs == "auto"


def test_a_name_without_a_learner_is_refused():
    with pytest.raises(ValueError, match="unknown source 'pop'"):
        make_source(Source.POP, TrainConfig(device="cpu"), text_on=True)
