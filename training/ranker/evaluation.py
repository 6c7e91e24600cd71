"""One pass over the evaluated users: every source's and the hybrid's lists from one call of each source.

Evaluating each source and the hybrid separately scores every source twice (once
alone, once inside the hybrid) and featurises the hybrid's candidates once per
evaluated ranker. :func:`rank_users` calls every source once per batch of users,
ranks each source's rows and the hybrid's from them, and keeps the featurised
candidate lists of a chosen subset of users so that other rankers over the same
features (the ablation's refits) score them without calling a source again.
The lists are :class:`eval.ranking.TopK` tables, evaluated with ``eval.evaluate``
exactly as a scorer would be (same ``iter_topk`` ranking, train items masked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from eval.progress import progress_bar
from eval.ranking import TopK, iter_topk
from training.ranker.context import RankerContext
from training.ranker.hybrid import HybridRanker

__all__ = ["FeaturisedUsers", "RankedLists", "rank_users", "topk_of_rows"]

HYBRID = "hybrid"
"""The key of the hybrid's lists in :attr:`RankedLists.lists`."""


@dataclass(frozen=True)
class FeaturisedUsers:
    """The hybrid's candidates of some users with their raw (unnormalised) features.

    Attributes:
        users: int64 ``[U]``, internal user indices.
        rows: int64 ``[P]``, the position in ``users`` of each pair, non-decreasing.
        items: int64 ``[P]``, the candidate items.
        features: float32 ``[P, F]`` laid out as ``feature_names``.
        feature_names: the ranker's feature names.
    """

    users: np.ndarray
    rows: torch.Tensor
    items: torch.Tensor
    features: torch.Tensor
    feature_names: Sequence[str]

    def columns(self, names: Sequence[str]) -> torch.Tensor:
        """The features named ``names`` (a subset of :attr:`feature_names`), ``[P, len(names)]``."""
        missing = [n for n in names if n not in self.feature_names]
        if missing:
            raise ValueError(f"features {missing} were not computed; available: {list(self.feature_names)}")
        return self.features[:, [list(self.feature_names).index(n) for n in names]]


@dataclass(frozen=True)
class RankedLists:
    """What :func:`rank_users` returns.

    Attributes:
        lists: per source and ``"hybrid"``, the top-k of every ranked user.
        featurised: the hybrid's featurised candidates of the kept users.
    """

    lists: dict[str, TopK]
    featurised: FeaturisedUsers


def topk_of_rows(
    rows: torch.Tensor, items: torch.Tensor, values: torch.Tensor, users: np.ndarray, context: RankerContext, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of sparse ``(row, item, value)`` scores (``-inf`` elsewhere), history masked: ``(items, scores)``."""
    dense = torch.full((len(users), context.num_items), float("-inf"))
    dense[rows, items] = values.float().cpu()
    ranked = iter_topk(lambda _: dense, users, k, exclude=context.history, batch_size=len(users))
    _, top_items, top_scores = next(ranked)
    return top_items, top_scores


def rank_users(
    ranker: HybridRanker,
    context: RankerContext,
    users: np.ndarray,
    *,
    k: int,
    keep: Optional[np.ndarray] = None,
    show_progress: bool = False,
) -> RankedLists:
    """Top-k of every source of ``context`` and of the fitted ``ranker``, calling each source once per batch.

    Batches are ``ranker.batch_users`` users, as :meth:`HybridRanker.score` makes them,
    so the hybrid's lists equal what evaluating ``ranker.score`` gives.

    Args:
        ranker: a fitted ranker (its own context is not used).
        context: the phase to rank in: history (masked), sources and item statistics.
        users: int64 internal user indices, in output order.
        k: list length.
        keep: users whose featurised candidates to return (default: none).
        show_progress: tqdm over batches.

    Returns:
        :class:`RankedLists`.

    Raises:
        ValueError: ``context`` lacks one of the ranker's sources.
    """
    if context.source_scorers is None:
        raise ValueError("context has no source scorers; build it with source_scorers=")
    missing = [s for s in ranker.source_names_ if s not in context.source_scorers]
    if missing:
        raise ValueError(f"context lacks sources {missing}; the ranker was fitted on {ranker.source_names_}")
    bound = ranker.bound(context)
    users = np.asarray(users, dtype=np.int64)
    kept = np.isin(users, keep) if keep is not None else np.zeros(len(users), dtype=bool)
    names = list(context.source_scorers) + [HYBRID]
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in names}
    kept_parts: list[tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    done = 0
    step = ranker.batch_users
    batches = range(0, len(users), step)
    for start in progress_bar(batches, desc="rank sources + hybrid", unit="batch", disable=not show_progress):
        batch = users[start : start + step]
        scores = {name: scorer(batch) for name, scorer in context.source_scorers.items()}
        for name, rows in scores.items():
            ranked = iter_topk(lambda _, r=rows: r, batch, k, exclude=context.history, batch_size=len(batch))
            _, items, values = next(ranked)
            parts[name].append((items, values))
        history = context.history[batch]
        times = context.history_times[batch] if context.history_times is not None else None
        source_rows = bound._source_rows(bound._ranking_rows(batch, given=scores), len(batch))
        _, rows, items, features = bound._featurise(source_rows, history, times, None)
        values = bound.score_features(features)
        parts[HYBRID].append(topk_of_rows(rows, items, values, batch, context, k))
        batch_kept = kept[start : start + step]
        if batch_kept.any():
            pair_kept = torch.from_numpy(batch_kept)[rows]
            position = torch.from_numpy(np.cumsum(batch_kept) - 1 + done)
            kept_parts.append((batch[batch_kept], position[rows[pair_kept]], items[pair_kept], features[pair_kept]))
            done += int(batch_kept.sum())
    lists = {
        name: TopK(
            users=users,
            items=np.concatenate([p[0] for p in chunks]) if chunks else np.zeros((0, k), np.int64),
            scores=np.concatenate([p[1] for p in chunks]) if chunks else np.zeros((0, k), np.float32),
        )
        for name, chunks in parts.items()
    }
    featurised = FeaturisedUsers(
        users=np.concatenate([p[0] for p in kept_parts]) if kept_parts else np.zeros(0, np.int64),
        rows=torch.cat([p[1] for p in kept_parts]) if kept_parts else torch.zeros(0, dtype=torch.int64),
        items=torch.cat([p[2] for p in kept_parts]) if kept_parts else torch.zeros(0, dtype=torch.int64),
        features=torch.cat([p[3] for p in kept_parts]) if kept_parts else torch.zeros((0, len(ranker.feature_names_))),
        feature_names=list(ranker.feature_names_),
    )
    return RankedLists(lists=lists, featurised=featurised)


def rank_featurised(
    ranker: HybridRanker, featurised: FeaturisedUsers, context: RankerContext, *, k: int, batch_users: int = 1024
) -> TopK:
    """Top-k of ``featurised``'s users by a fitted ranker whose features are a subset of the cached ones."""
    columns = featurised.columns(ranker.feature_names_)
    users = featurised.users
    bounds = np.searchsorted(featurised.rows.numpy(), np.arange(len(users) + 1))
    items_out, scores_out = [], []
    for start in range(0, len(users), batch_users):
        stop = min(start + batch_users, len(users))
        lo, hi = int(bounds[start]), int(bounds[stop])
        values = ranker.score_features(columns[lo:hi])
        items, scores = topk_of_rows(
            featurised.rows[lo:hi] - start, featurised.items[lo:hi], values, users[start:stop], context, k
        )
        items_out.append(items)
        scores_out.append(scores)
    return TopK(
        users=users,
        items=np.concatenate(items_out) if items_out else np.zeros((0, k), np.int64),
        scores=np.concatenate(scores_out) if scores_out else np.zeros((0, k), np.float32),
    )
