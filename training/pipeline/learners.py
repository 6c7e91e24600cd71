"""From a configuration section to a learner: one constructor call per source, every argument named.

Each function reads its section of :class:`~training.pipeline.config.TrainConfig` field by field
(``config.als.factors`` -> ``ALS(factors=...)``), so the hop from a config key to the argument it
sets can be followed by reading. Pipeline-only fields (``enabled``, ``weighted``, ``gnn.nproc``,
``ranker.refit``...) are read by the stages, never passed on. Everything a stage decides (the GNN's
``init`` without text, its final-phase ``epochs``) is passed here, at construction: the pipeline
never sets a learner's attribute afterwards. tests/training/test_pipeline_learners.py checks that
every learner field of a section reaches the learner.
"""

from __future__ import annotations

from typing import Optional, Union

from training.base import Learner
from training.gnn import GAT, LightGCN
from training.gnn.learner import GraphLearner
from training.pipeline.config import TrainConfig
from training.ranker import DEFAULT_GROUPS, HybridRanker
from training.sources.als import ALS
from training.sources.ease import EASE
from training.sources.graphfilter import GraphFilter
from training.sources.knn import ItemKNN
from training.sources.names import Source
from training.text import TextLearner

__all__ = [
    "make_als", "make_ease", "make_gnn", "make_graphfilter", "make_itemknn", "make_ranker", "make_source", "make_text",
]  # fmt: skip


def make_text(config: TrainConfig) -> TextLearner:
    """The text source (``text.*``): encoder, item texts, fine-tuning, the user profile."""
    s = config.text
    return TextLearner(
        model=s.model, template=s.template, max_length=s.max_length, batch_size=s.batch_size, profile=s.profile,
        neighbors=s.neighbors, fine_tune_steps=s.fine_tune_steps, fine_tune_batch_size=s.fine_tune_batch_size,
        fine_tune_lr=s.fine_tune_lr, fine_tune_temperature=s.fine_tune_temperature,
        fine_tune_layers=s.fine_tune_layers, fine_tune_anchor_power=s.fine_tune_anchor_power,
        fine_tune_neighbors=s.fine_tune_neighbors, cache_dir=s.cache_dir, seed=config.seed, device=config.device,
    )  # fmt: skip


def make_als(config: TrainConfig) -> ALS:
    """ALS (``als.*``; ``als.weighted`` picks the matrix it is fitted on, not an argument)."""
    s = config.als
    return ALS(
        factors=s.factors, regularization=s.regularization, alpha=s.alpha, iterations=s.iterations,
        num_threads=s.num_threads, seed=config.seed, device=config.device,
    )  # fmt: skip


def make_itemknn(config: TrainConfig) -> ItemKNN:
    """Item-KNN (``itemknn.*``)."""
    s = config.itemknn
    return ItemKNN(
        similarity=s.similarity, neighbors=s.neighbors, bm25_k1=s.bm25_k1, bm25_b=s.bm25_b, num_threads=s.num_threads
    )


def make_ease(config: TrainConfig) -> EASE:
    """EASE (``ease.*``)."""
    s = config.ease
    return EASE(regularization=s.regularization, max_items=s.max_items, device=config.device)


def make_graphfilter(config: TrainConfig) -> GraphFilter:
    """The graph filter (``graphfilter.*``)."""
    s = config.graphfilter
    return GraphFilter(
        alpha=s.alpha, rank=s.rank, exponent=s.exponent, sharpen=s.sharpen, sharpen_order=s.sharpen_order,
        kind=s.kind, order=s.order, flatness=s.flatness, degree_power=s.degree_power,
        ideal_exponent=s.ideal_exponent, dense_max_items=s.dense_max_items, neighbors=s.neighbors, seed=config.seed,
        device=config.device,
    )  # fmt: skip


def make_gnn(config: TrainConfig, *, text_on: bool, epochs: Optional[Union[int, str]] = None) -> GraphLearner:
    """The GNN (``gnn.*``): LightGCN, or GAT with ``gnn.model: gat`` (which adds ``heads``, ``relation_dim``).

    Args:
        config: the configuration.
        text_on: the text stage runs and produces item vectors; without it ``gnn.init: text``
            falls back to ``random`` (the stage notes it).
        epochs: overrides ``gnn.epochs`` (the final phase's warm-start passes,
            :func:`training.gnn.schedule.warm_epochs`); ``None``: the configured value.
    """
    s = config.gnn
    init = "random" if s.init == "text" and not text_on else s.init
    common = dict(
        embedding_dim=s.embedding_dim, num_layers=s.num_layers, lr=s.lr, l2=s.l2,
        epochs=s.epochs if epochs is None else epochs, batch_size=s.batch_size, num_negatives=s.num_negatives,
        init=init, use_kg=s.use_kg, use_social=s.use_social, user_init=s.user_init, init_std=s.init_std,
        text_components=s.text_components, text_scale=s.text_scale, item_l2=s.item_l2, patience=s.patience,
        eval_every=s.eval_every, min_gain=s.min_gain, mode=s.mode, num_neighbors=s.num_neighbors, seed=config.seed, device=config.device,
    )  # fmt: skip
    if s.model == "gat":
        return GAT(**common, heads=s.heads, relation_dim=s.relation_dim)
    return LightGCN(**common)


def make_ranker(config: TrainConfig) -> HybridRanker:
    """The hybrid ranker (``ranker.*``; ``feature_groups: null`` is the default set)."""
    s = config.ranker
    return HybridRanker(
        candidates_per_source=s.candidates_per_source, candidate_sources=s.candidate_sources, model=s.model, hidden=s.hidden, dropout=s.dropout,
        loss=s.loss, epochs=s.epochs, lr=s.lr, weight_decay=s.weight_decay, batch_users=s.batch_users,
        train_batch_users=s.train_batch_users, valid_fraction=s.valid_fraction, patience=s.patience,
        ensemble=s.ensemble, tail_weight=s.tail_weight, valid_k=s.valid_k,
        feature_groups=DEFAULT_GROUPS if s.feature_groups is None else s.feature_groups, seed=config.seed,
        device=config.device,
    )  # fmt: skip


def make_source(name: str, config: TrainConfig, *, text_on: bool) -> Learner:
    """The learner of source ``name`` as configured (``text_on``: see :func:`make_gnn`)."""
    if name == Source.GNN:
        return make_gnn(config, text_on=text_on)
    makers = {
        Source.TEXT: make_text, Source.ALS: make_als, Source.ITEMKNN: make_itemknn, Source.EASE: make_ease,
        Source.GRAPHFILTER: make_graphfilter,
    }  # fmt: skip
    if name not in makers:
        raise ValueError(f"unknown source {name!r}; sources with a learner: {', '.join([*makers, Source.GNN])}")
    return makers[name](config)
