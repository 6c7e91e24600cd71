"""Features of a (user, candidate item) pair for the hybrid ranker.

Every feature belongs to one group; a ranker is configured with the groups it
uses (:data:`ALL_GROUPS`) and the ablation drops one group at a time. ``{s}``
stands for each source's name (e.g. ``als.z``). "History" is the user's known
items (the interactions the sources were fitted on); "now" is the latest
timestamp in the history of the ranker's context.

FEATURES

============================  ==========  ==============================================================  =============
name                          group       definition                                                      range
============================  ==========  ==============================================================  =============
``{s}.z``                     sources     source score standardised within the user's row: (score -       real
                                          row mean) / row std over the whole catalogue
``{s}.rr``                    ranks       1 / rank within the source's top-N (history excluded), 0        [0, 1]
                                          outside it
``{s}.top``                   ranks       1 when the item is in the source's top-N                        {0, 1}
``pop.log``                   popularity  log1p(distinct history users of the item) - log1p(mean of that  real
                                          over the catalogue): relative, so refitting on more data does
                                          not shift popular items more than tail items
``pop.tail``                  popularity  1 for a tail item (docs/PROTOCOL.md head/tail rule, history counts)  {0, 1}
``act.log``                   activity    log1p(number of the user's history items) - log1p(mean history  real
                                          size): relative to the context's history, as ``pop.log``
``act.{s}.z``                 activity    ``act.log * {s}.z``: lets a linear model trust a source more    real
                                          or less for heavy users (centred ``act.log`` keeps it
                                          well-conditioned)
``content.max``               content     max cosine of the item's text embedding with the history        [-1, 1]
                                          items' embeddings
``content.mean``              content     mean of those cosines                                           [-1, 1]
``content.missing``           content     1 when there are no text embeddings or no history               {0, 1}
``kg.overlap``                kg          share of the item's entities that some history item also has    [0, 1]
``kg.count``                  kg          log1p(mean over the item's entities of the number of history    [0, log1p(I)]
                                          items holding it); equals log1p(history items sharing an
                                          entity) for an item with one entity, and stays O(nnz)
``kg.missing``                kg          1 when the item has no entity or the user no history            {0, 1}
``ctx.item_age``              context     log1p(days from the item's last history interaction to now);    [0, inf)
                                          an item nobody interacted with gets the age of the oldest
``ctx.user_idle``             context     log1p(days from the user's latest interaction to now)           [0, inf)
``ctx.item_debut``            context     signed log1p(days from the user's latest interaction to the     real
                                          item's first history interaction): > 0 when the item appeared
                                          after the user was last active (they could hardly have seen it)
``ctx.entity_gap``            context     log1p(days from the user's latest interaction with an item      [0, inf)
                                          sharing an entity with the candidate to the user's latest
                                          interaction); measured from the user's own latest
                                          interaction so that it does not repeat ``ctx.user_idle``
``ctx.entity_none``           context     1 when no timed history item shares an entity                   {0, 1}
``ctx.text_gap``              context     as ``ctx.entity_gap`` for the history item with the highest     [0, inf)
                                          text cosine to the candidate (0 without text)
``ctx.missing``               context     1 when the user's history has no timestamps                     {0, 1}
============================  ==========  ==============================================================  =============

A group whose data is absent (no text, no KG, no timestamps) is all zeros plus
its ``missing`` flag, so the feature vector has the same layout on every data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from eval.longtail import head_tail
from kg.graph import Graph
from training.base import FactorScores
from training.ranker.history_features import content_features, context_columns, kg_features

__all__ = [
    "ALL_GROUPS",
    "DEFAULT_GROUPS",
    "ItemStats",
    "build_features",
    "feature_groups",
    "feature_names",
    "item_stats",
]

ALL_GROUPS: tuple[str, ...] = ("sources", "ranks", "popularity", "activity", "content", "kg", "context")

DEFAULT_GROUPS: tuple[str, ...] = ("sources", "popularity", "activity", "content", "kg", "context")
"""The groups a ranker uses unless told otherwise: all but ``ranks``.

Decided on validation (``bench/ranker_cost.py``, 3-fold cross-validation over ml-100k's
validation users, one member, bench/results/ranker_cost.md): with ``ranks`` NDCG@20 0.2979,
without 0.2998; the per-row z-scores carry most of their information. Dropping any other
single group moved validation NDCG@20 by -0.001 to +0.005 with one member and one seed, within
the noise of that comparison, so they stay.
"""

COSINE_TABLE_ITEMS = 4096
"""Up to this many items (64 MiB of float32), :class:`ItemStats` keeps the item-item text cosines
and the item-item shared-entity flags (16 MiB of bool)."""


@dataclass(frozen=True)
class ItemStats:
    """Item-side statistics of one history (what ``RankerContext.build`` computes).

    Attributes:
        log_popularity: float32 ``[num_items]``, log1p(distinct history users) minus its
            catalogue mean's log1p.
        log_mean_activity: log1p(mean number of history items per user).
        tail: float32 ``[num_items]``, 1 for tail items.
        item_entities: binary CSR ``[num_items, num_entities]``.
        text: float32 ``[num_items, d]``, L2-normalised text embeddings, or ``None``.
        first_time: float64 ``[num_items]``, earliest history timestamp (NaN: none).
        last_time: float64 ``[num_items]``, latest history timestamp (NaN: none).
        now: latest timestamp of the history, or ``None`` without timestamps.
        text_cosine: float32 ``[num_items, num_items]`` cosines of ``text`` when the catalogue
            has at most :data:`COSINE_TABLE_ITEMS` items (content features then read it
            instead of multiplying vectors per pair), else ``None``.
        entity_shared: bool ``[num_items, num_items]``, True where two items share an entity,
            when the catalogue has at most :data:`COSINE_TABLE_ITEMS` items and some entity
            (``ctx.entity_gap`` then reads it instead of expanding every pair's entities), else ``None``.
    """

    log_popularity: torch.Tensor
    log_mean_activity: float
    tail: torch.Tensor
    item_entities: sp.csr_matrix
    text: Optional[torch.Tensor]
    first_time: np.ndarray
    last_time: np.ndarray
    now: Optional[float]
    text_cosine: Optional[torch.Tensor] = None
    entity_shared: Optional[torch.Tensor] = None


def item_stats(
    graph: Graph,
    history: sp.csr_matrix,
    *,
    item_text_embeddings: Optional[np.ndarray] = None,
    history_times: Optional[sp.csr_matrix] = None,
) -> ItemStats:
    """Compute :class:`ItemStats` from a history matrix and the graph's side information.

    Args:
        graph: supplies item ids (tail tie-break) and the item-entity matrix.
        history: CSR ``[num_users, num_items]``, the interactions the sources were fitted on.
        item_text_embeddings: ``[num_items, d]`` or ``None``.
        history_times: CSR ``[num_users, num_items]`` float64 timestamps (NaN: unknown) or ``None``.

    Raises:
        ValueError: an input's shape does not match the graph's catalogue.
    """
    num_items = graph.num_items
    popularity = np.bincount(history.indices, minlength=num_items)[:num_items]
    is_head = head_tail(popularity, graph.item_ids)
    text = None
    if item_text_embeddings is not None:
        embeddings = np.asarray(item_text_embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != num_items:
            raise ValueError(
                f"item_text_embeddings must have shape [num_items={num_items}, d], got {embeddings.shape}"
            )
        if not np.isfinite(embeddings).all():
            raise ValueError("item_text_embeddings holds NaN or inf")
        text = torch.nn.functional.normalize(torch.from_numpy(embeddings), dim=1)
    first_time = np.full(num_items, np.nan)
    last_time = np.full(num_items, np.nan)
    now = None
    if history_times is not None:
        if history_times.shape != history.shape:
            raise ValueError(f"history_times has shape {history_times.shape}, expected {history.shape} like history")
        coo = history_times.tocoo()
        timed = np.isfinite(coo.data)
        if timed.any():
            first_time, last_time = np.full(num_items, np.inf), np.full(num_items, -np.inf)
            np.minimum.at(first_time, coo.col[timed], coo.data[timed])
            np.maximum.at(last_time, coo.col[timed], coo.data[timed])
            first_time[np.isinf(first_time)] = np.nan
            last_time[np.isinf(last_time)] = np.nan
            now = float(coo.data[timed].max())
    item_entities = sp.csr_matrix(graph.item_entity_matrix(), dtype=np.float32)
    entity_shared = None
    if item_entities.nnz and num_items <= COSINE_TABLE_ITEMS:
        entity_shared = torch.from_numpy((item_entities @ item_entities.T).toarray() > 0)
    return ItemStats(
        log_popularity=torch.from_numpy((np.log1p(popularity) - np.log1p(popularity.mean())).astype(np.float32)),
        log_mean_activity=float(np.log1p(np.diff(history.indptr).mean())),
        tail=torch.from_numpy((~is_head).astype(np.float32)),
        item_entities=item_entities,
        text=text,
        first_time=first_time,
        last_time=last_time,
        now=now,
        text_cosine=text @ text.T if text is not None and num_items <= COSINE_TABLE_ITEMS else None,
        entity_shared=entity_shared,
    )


def feature_names(source_names: Sequence[str], groups: Sequence[str]) -> list[str]:
    """The feature vector's layout for these sources and groups (module docstring table)."""
    names: list[str] = []
    for group in ALL_GROUPS:
        if group not in groups:
            continue
        if group == "sources":
            names += [f"{s}.z" for s in source_names]
        elif group == "ranks":
            names += [f"{s}.{part}" for s in source_names for part in ("rr", "top")]
        elif group == "popularity":
            names += ["pop.log", "pop.tail"]
        elif group == "activity":
            names += ["act.log"] + [f"act.{s}.z" for s in source_names]
        elif group == "content":
            names += ["content.max", "content.mean", "content.missing"]
        elif group == "kg":
            names += ["kg.overlap", "kg.count", "kg.missing"]
        elif group == "context":
            names += [
                "ctx.item_age", "ctx.user_idle", "ctx.item_debut", "ctx.entity_gap", "ctx.entity_none", "ctx.text_gap",
                "ctx.missing",
            ]  # fmt: skip
    return names


def feature_groups(source_names: Sequence[str], groups: Sequence[str]) -> list[str]:
    """The group of every feature of :func:`feature_names`, in the same order."""
    return [g for g in ALL_GROUPS if g in groups for _ in feature_names(source_names, (g,))]


def _standardised_at(scores: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """``{s}.z`` at the pairs: (score - row mean) / row std over the row's finite entries.

    A non-finite entry (a source that cannot rank the item) gets the row's lowest
    z-score (0 when the row has no finite entry). Only row statistics are computed
    over the catalogue; the z-scores themselves only at the ``[P]`` pairs. A
    :class:`~training.base.FactorScores` source (always finite) gives its row statistics
    and pair scores from its factors, without the full rows.
    """
    if isinstance(scores, FactorScores):
        var, mean = scores.var_mean()
        return (scores.at(rows, items) - mean[rows]) / var.sqrt().clamp(min=1e-8)[rows]
    scores = scores.float()
    var, mean = _row_var_mean(scores)
    if bool(torch.isfinite(var).all()):  # every entry finite (an inf or NaN makes its row's var NaN)
        std = var.sqrt().clamp(min=1e-8)
        return (scores[rows, items] - mean[rows]) / std[rows]
    finite = torch.isfinite(scores)
    if bool(finite.all()):  # finite entries whose variance overflowed
        lowest = scores.amin(dim=1)
    else:
        count = finite.sum(dim=1).clamp(min=1)
        mean = torch.where(finite, scores, 0.0).sum(dim=1) / count
        var = (torch.where(finite, scores - mean.unsqueeze(1), 0.0) ** 2).sum(dim=1) / count
        lowest = torch.where(finite, scores, float("inf")).amin(dim=1)
    std = var.sqrt().clamp(min=1e-8)
    lowest_z = ((lowest - mean) / std).nan_to_num(posinf=0.0, neginf=0.0)
    values = scores[rows, items]
    return torch.where(torch.isfinite(values), (values - mean[rows]) / std[rows], lowest_z[rows])


def _row_var_mean(scores: torch.Tensor, rows_per_chunk: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Population variance and mean of each row (``torch.var_mean(dim=1, unbiased=False)``, ~10x faster on CPU).

    The mean is a vectorised sum; the variance a norm of the centred rows, a few rows at a
    time so the centred block stays in cache (no ``[B, num_items]`` temporary).
    """
    num_rows, num_items = scores.shape
    mean = scores.sum(dim=1) / max(num_items, 1)
    var = torch.empty(num_rows)
    for start in range(0, num_rows, rows_per_chunk):
        block = scores[start : start + rows_per_chunk] - mean[start : start + rows_per_chunk, None]
        var[start : start + rows_per_chunk] = torch.linalg.vector_norm(block, dim=1).square()
    return var / max(num_items, 1), mean


def build_features(
    rows: torch.Tensor,
    items: torch.Tensor,
    *,
    source_scores: Mapping[str, torch.Tensor],
    ranks: Mapping[str, torch.Tensor],
    history: sp.csr_matrix,
    history_times: Optional[sp.csr_matrix],
    stats: ItemStats,
    now: Optional[float],
    source_names: Sequence[str],
    groups: Sequence[str],
) -> torch.Tensor:
    """The feature matrix of a batch's (row, item) pairs, laid out as :func:`feature_names`.

    Args:
        rows: int64 ``[P]`` batch rows, non-decreasing.
        items: int64 ``[P]`` items.
        source_scores: per source, float ``[B, num_items]`` (CPU), or its
            :class:`~training.base.FactorScores`.
        ranks: per source, float32 ``[B, num_items]`` from ``top_n_ranks``.
        history: CSR ``[B, num_items]``, the batch users' known items.
        history_times: CSR ``[B, num_items]`` float64 timestamps, or ``None``.
        stats: item statistics from :func:`item_stats`.
        now: reference time for the context group (``None``: no timestamps).
        source_names: the sources, in feature order.
        groups: the feature groups to compute.

    Returns:
        float32 ``[P, F]``.
    """
    rows_np, items_np = rows.numpy(), items.numpy()
    columns: list[torch.Tensor] = []
    activity = torch.from_numpy(np.log1p(np.diff(history.indptr)).astype(np.float32))[rows] - stats.log_mean_activity
    z_scores = {}
    if "sources" in groups or "activity" in groups:
        z_scores = {s: _standardised_at(source_scores[s], rows, items) for s in source_names}
    if "sources" in groups:
        columns += [z_scores[s] for s in source_names]
    if "ranks" in groups:
        for s in source_names:
            rank = ranks[s][rows, items]
            columns += [torch.where(rank > 0, 1.0 / rank.clamp(min=1.0), 0.0), (rank > 0).float()]
    if "popularity" in groups:
        columns += [stats.log_popularity[items], stats.tail[items]]
    if "activity" in groups:
        columns += [activity] + [activity * z_scores[s] for s in source_names]
    timed = history_times is not None and now is not None
    times = history_times if timed else None
    best_time = None
    if "content" in groups or "context" in groups:
        best, mean, missing, best_time = content_features(rows_np, items_np, history, times, stats)
        if "content" in groups:
            columns += [best, mean, missing]
    entity_time = None
    if "kg" in groups or "context" in groups:
        overlap, count, missing, entity_time = kg_features(rows_np, items_np, history, times, stats)
        if "kg" in groups:
            columns += [overlap, count, missing]
    if "context" in groups:
        columns += context_columns(rows_np, items_np, times, stats, now, entity_time, best_time)
    if not columns:
        return torch.zeros((len(items_np), 0))
    return torch.stack(columns, dim=1).float()
