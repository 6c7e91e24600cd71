"""Scoring with a fitted hybrid ranker: context, candidates, features, scores, explanations.

:class:`RankerScoring` is the half of :class:`~training.ranker.hybrid.HybridRanker`
that turns a bound, fitted ranker's inputs into scores. Its core,
:meth:`RankerScoring.score_rows`, works on score rows, so the same code serves
known users (:meth:`RankerScoring.score`) and folded-in new users (the serving
layer passes their sources' rows and history).

A ranker reads its inputs from an explicit :class:`~training.ranker.context.RankerContext`
(history, item statistics, sources): ``fit(context, ...)`` binds the one it learns in,
:meth:`RankerScoring.bind` another phase's (and one after ``load``): item-side
statistics (popularity, tail flags, entities, first/last interaction times, "now")
are recomputed from the graph and the history, never stored.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Mapping, Optional

import numpy as np
import scipy.sparse as sp
import torch

from eval import MostPop
from training.base import FactorScores, GraphrecWarning, NotFittedError, as_user_items
from training.ranker.candidates import Candidates, generate_candidates, segment_topk
from training.ranker.context import RankerContext, Scorer
from training.ranker.explain import occlusion
from training.ranker.features import ItemStats, build_features, feature_groups

__all__ = ["RankerScoring", "Scorer", "TOPK_ROWS", "factor_scores", "is_factor_source", "topk_rows"]

TOPK_ROWS = 64
"""Users per pass of :meth:`RankerScoring.topk` (at most ``batch_users``, and fewer on catalogues
above 131k items: :func:`topk_rows`). Each source's dense ``[rows, num_items]`` float32 block
then stays under glibc's 32 MiB ceiling for serving a request from the mmap'd pages of a fresh
allocation, so blocks are reused instead of page-faulted in anew: on gowalla (41k items) the
system CPU time of the batch path fell from 0.5 to 0.07 ms/user against passes of 256
(bench/results/hybrid_topk_gowalla.md)."""

_BLOCK_FLOATS = 2**23 - 2**16
"""float32 values in a block just under glibc's largest mmap threshold (32 MiB)."""


def topk_rows(batch_users: int, num_items: int) -> int:
    """Users per pass of the batch top-K: ``TOPK_ROWS``, at most ``batch_users``, and few enough that a
    ``[rows, num_items]`` float32 block stays under 32 MiB (at least one row)."""
    return max(1, min(int(batch_users), TOPK_ROWS, _BLOCK_FLOATS // max(1, int(num_items))))


def is_factor_source(scorer: Scorer) -> bool:
    """Whether :func:`factor_scores` gives ``scorer``'s rows as factors: a fitted ``MostPop`` (every row is
    its score vector: one factor), or a learner's own ``score`` method where the learner sets
    :attr:`training.base.Learner.factor_scores`. Decided without scoring anything."""
    if isinstance(scorer, MostPop):
        return hasattr(scorer, "scores_")
    owner = getattr(scorer, "__self__", None)
    if owner is None or getattr(scorer, "__func__", None) is not getattr(type(owner), "score", None):
        return False
    return bool(getattr(owner, "factor_scores", False))


def factor_scores(scorer: Scorer, users: np.ndarray) -> Optional[FactorScores]:
    """``scorer(users)`` as :class:`~training.base.FactorScores` where :func:`is_factor_source`, else ``None``."""
    if not is_factor_source(scorer):
        return None
    if isinstance(scorer, MostPop):
        ones = torch.ones((len(users), 1), dtype=torch.float32)
        return FactorScores(ones, *FactorScores.item_moments(torch.from_numpy(scorer.scores_).unsqueeze(1)))
    return scorer.__self__.score_factors(users)


class RankerScoring:
    """Context and scoring of the hybrid ranker (see :class:`~training.ranker.hybrid.HybridRanker`).

    Expects the configuration attributes ``candidates_per_source``,
    ``feature_groups`` and ``batch_users`` and, once fitted, ``source_names_``,
    ``feature_names_``, ``feature_mean_``, ``feature_std_`` and ``scorer_``.
    """

    candidates_per_source: int
    feature_groups: tuple[str, ...]
    batch_users: int

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "fitted_", False)

    # -- context ---------------------------------------------------------------------------
    def bind(self, context: RankerContext) -> "RankerScoring":
        """Use ``context`` (another phase's history, statistics and sources) from now on; returns ``self``.

        The learned weights are untouched; :meth:`bound` does the same on a copy.
        """
        if not isinstance(context, RankerContext):
            raise TypeError(f"context must be a RankerContext, got {type(context).__name__}")
        self.context_ = context
        return self

    def bound(self, context: RankerContext) -> "RankerScoring":
        """A shallow copy of this ranker (same weights) bound to ``context``; ``self`` is unchanged."""
        other = copy.copy(self)
        return other.bind(context)

    # The context's parts, under the names the rest of the ranker reads.
    @property
    def stats_(self) -> ItemStats:
        return self._context().stats

    @property
    def history_(self) -> sp.csr_matrix:
        return self._context().history

    @property
    def history_times_(self) -> Optional[sp.csr_matrix]:
        return self._context().history_times

    @property
    def item_ids_(self) -> np.ndarray:
        return self._context().item_ids

    @property
    def source_scorers_(self) -> Optional[Mapping[str, Scorer]]:
        return self._context().source_scorers

    def _context(self) -> RankerContext:
        self._check_bound()
        return self.context_

    def _check_bound(self) -> None:
        if getattr(self, "context_", None) is None:
            raise NotFittedError(
                "HybridRanker has no context: fit(context, ...) binds one; after load, "
                "bind(RankerContext.build(graph, history, ...))"
            )

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError("HybridRanker is not fitted; call fit() or load() first")

    # -- features --------------------------------------------------------------------------
    def _candidate_names(self) -> list[str]:
        """The sources whose top-N form the candidates when ranking: ``candidate_sources_`` once fitted, else all."""
        chosen = getattr(self, "candidate_sources_", None)
        return list(chosen) if chosen else list(self.source_names_)

    def _source_rows(self, source_scores: Mapping[str, Any], num_rows: int) -> dict[str, Any]:
        missing = [s for s in self.source_names_ if s not in source_scores]
        if missing:
            raise ValueError(f"sources {missing} are missing; this ranker was fitted on {self.source_names_}")
        extra = sorted(set(source_scores) - set(self.source_names_))
        if extra:
            warnings.warn(
                f"sources {extra} are ignored; the ranker was fitted on {self.source_names_}",
                GraphrecWarning,
                stacklevel=3,
            )
        rows = {}
        num_items = len(self.stats_.log_popularity)
        for name in self.source_names_:
            given = source_scores[name]
            if isinstance(given, FactorScores):
                if given.shape != (num_rows, num_items):
                    raise ValueError(
                        f"source {name!r} gave factors of shape {given.shape}, expected ({num_rows}, {num_items})"
                    )
                rows[name] = given
                continue
            if isinstance(given, np.ndarray) and not given.flags.writeable:  # candidates mask history in place
                given = given.copy()
            scores = torch.as_tensor(given).detach().to("cpu", torch.float32)
            if tuple(scores.shape) != (num_rows, num_items):
                raise ValueError(
                    f"source {name!r} gave scores of shape {tuple(scores.shape)}, expected ({num_rows}, {num_items})"
                )
            rows[name] = scores
        return rows

    def _featurise(
        self,
        scores: dict[str, torch.Tensor],
        history: sp.csr_matrix,
        history_times: Optional[sp.csr_matrix],
        now: Optional[float],
        pairs: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
    ) -> tuple[Candidates, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Candidates of the rows and the raw features of ``pairs`` (default: the candidates).

        The candidates are the top-N of the :meth:`_candidate_names` sources (every source while
        fitting), whose rows must be dense.
        """
        names = self._candidate_names()
        candidates = generate_candidates({n: scores[n] for n in names}, history, self.candidates_per_source)
        rows, items = pairs if pairs is not None else (candidates.rows, candidates.items)
        features = build_features(
            rows,
            items,
            source_scores=scores,
            ranks=candidates.ranks if "ranks" in self.feature_groups else {},
            history=history,
            history_times=history_times,
            stats=self.stats_,
            now=now if now is not None else self.stats_.now,
            source_names=self.source_names_,
            groups=self.feature_groups,
        )
        return candidates, rows, items, features

    def _featurise_users(self, users: np.ndarray):
        """:meth:`_featurise` for known users, with the bound context's scorers and history."""
        scores, history, times = self._user_inputs(users)
        return self._featurise(self._source_rows(scores, len(users)), history, times, None)

    def _ranking_rows(self, users: np.ndarray, given: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """Every source's input for ranking ``users``: :class:`~training.base.FactorScores` for the
        non-candidate sources whose scorer is a factor model's ``score``, dense rows (``given[s]``
        when passed, else the scorer's) for the rest."""
        scorers = self.source_scorers_
        candidates = set(self._candidate_names())
        rows = {}
        for name in self.source_names_:
            factors = None if name in candidates else factor_scores(scorers[name], users)
            if factors is not None:
                rows[name] = factors
            else:
                rows[name] = given[name] if given is not None else scorers[name](users)
        return rows

    def _check_times(self, history_times: Optional[sp.csr_matrix], shape: tuple[int, int]) -> Optional[sp.csr_matrix]:
        if history_times is None:
            return None
        if not sp.issparse(history_times) or history_times.shape != shape:
            raise ValueError(f"history_times must be a sparse matrix of shape {shape} like history")
        return sp.csr_matrix(history_times, dtype=np.float64)

    def _normalise(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean_) / self.feature_std_

    # -- scoring ---------------------------------------------------------------------------
    def score_rows(
        self,
        source_scores: Mapping[str, Any],
        history: sp.csr_matrix,
        *,
        now: Optional[float] = None,
        history_times: Optional[sp.csr_matrix] = None,
    ) -> torch.Tensor:
        """Hybrid scores of a batch of users described by their sources' rows and history.

        Works the same for known users and folded-in new ones.

        Args:
            source_scores: per fitted source, ``[B, num_items]`` scores (tensor or array).
            history: CSR ``[B, num_items]``, the users' known items; never candidates.
            now: reference time of the context features (default: the bound context's).
            history_times: CSR ``[B, num_items]`` float64 timestamps of ``history``, or ``None``.

        Returns:
            float32 ``[B, num_items]`` on the ranker's device: the hybrid score of every
            candidate, ``-inf`` for every other item.

        Raises:
            NotFittedError: not fitted/loaded, or no context bound.
            ValueError: a fitted source is missing or a shape is wrong.
        """
        self._check_fitted()
        self._check_bound()
        history = as_user_items(history, num_items=len(self.stats_.log_popularity), name="history")
        scores = self._source_rows(source_scores, history.shape[0])
        times = self._check_times(history_times, history.shape)
        _, rows, items, features = self._featurise(scores, history, times, now)
        values = self.score_features(features)
        out = torch.full(history.shape, float("-inf"), device=values.device)
        out[rows.to(values.device), items.to(values.device)] = values
        return out

    def score_features(self, features: torch.Tensor) -> torch.Tensor:
        """The fitted scorer's output for raw feature rows ``[P, F]`` (this ranker's layout): float32 ``[P]``.

        Raises:
            NotFittedError: not fitted/loaded.
        """
        self._check_fitted()
        device = next(self.scorer_.parameters()).device
        with torch.no_grad():
            return self.scorer_(self._normalise(features).to(device)).float()

    def _user_inputs(self, users: np.ndarray) -> tuple[dict[str, Any], sp.csr_matrix, Optional[sp.csr_matrix]]:
        scorers = self.source_scorers_
        if scorers is None:
            raise NotFittedError("the bound RankerContext has no source scorers; build it with source_scorers=")
        missing = [s for s in self.source_names_ if s not in scorers]
        if missing:
            raise ValueError(f"sources {missing} are missing; this ranker was fitted on {self.source_names_}")
        scores = self._ranking_rows(users)
        times = self.history_times_[users] if self.history_times_ is not None else None
        return scores, self.history_[users], times

    def score(self, users: np.ndarray) -> torch.Tensor:
        """:meth:`score_rows` for known users, with the bound context's scorers and history.

        Args:
            users: int64 internal user indices ``[B]``.

        Returns:
            float32 ``[B, num_items]``; ``-inf`` outside the candidates.
        """
        self._check_fitted()
        self._check_bound()
        users = np.asarray(users, dtype=np.int64)
        parts = []
        for start in range(0, len(users), self.batch_users):
            scores, history, times = self._user_inputs(users[start : start + self.batch_users])
            parts.append(self.score_rows(scores, history, history_times=times))
        if not parts:
            return torch.zeros((0, self.history_.shape[1]), device=next(self.scorer_.parameters()).device)
        return torch.cat(parts)

    def topk(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each known user's ``k`` best candidates by hybrid score, without ``[B, num_items]`` rows.

        The same lists as ranking :meth:`score`'s rows with ``eval.ranking.iter_topk``
        (history masked: history items are never candidates), up to the order of exact
        ties; the top-k runs over each user's candidates only.

        Args:
            users: int64 internal user indices ``[B]``.
            k: list length, >= 1.

        Returns:
            ``(items int64 [B, k], scores float32 [B, k])``; a user with fewer than ``k``
            candidates gets ``-1`` / ``-inf`` at the end.
        """
        self._check_fitted()
        self._check_bound()
        users = np.asarray(users, dtype=np.int64)
        items_out = np.full((len(users), k), -1, dtype=np.int64)
        scores_out = np.full((len(users), k), -np.inf, dtype=np.float32)
        rows_per_pass = topk_rows(self.batch_users, self.history_.shape[1])
        for start in range(0, len(users), rows_per_pass):
            scores, history, times = self._user_inputs(users[start : start + rows_per_pass])
            rows_in = self._source_rows(scores, history.shape[0])
            times = self._check_times(times, history.shape)
            candidates, rows, items, features = self._featurise(rows_in, history, times, None)
            values = self.score_features(features).cpu()
            where, top_scores = segment_topk(rows, values, candidates.offsets, k)
            top_items = torch.where(where >= 0, items[where.clamp(min=0)], -1).numpy()
            top_scores = top_scores.numpy()
            stop = start + history.shape[0]
            items_out[start:stop, : top_items.shape[1]] = top_items
            scores_out[start:stop, : top_scores.shape[1]] = top_scores
        return items_out, scores_out

    # -- explanation -----------------------------------------------------------------------
    def explain(
        self,
        source_scores: Mapping[str, Any],
        history: sp.csr_matrix,
        item: int,
        *,
        now: Optional[float] = None,
        history_times: Optional[sp.csr_matrix] = None,
    ) -> dict[str, float]:
        """Each feature group's and source's contribution to one user's score of ``item``.

        A contribution is the score drop when that group's (or source's) features are
        set to their fitting mean (0 after standardisation): ``score(x) - score(x | x_g = mean)``.
        For ``model="linear"`` this is exact and additive: ``bias`` plus the group
        contributions equals ``score``. For the MLP it is an occlusion estimate and the
        parts need not add up. ``source:{s}`` covers every feature involving source
        ``s`` (its score, rank, top-N flag and activity interaction).

        Args:
            source_scores: per source, ``[1, num_items]`` scores of the user.
            history: CSR ``[1, num_items]`` of the user's known items.
            item: internal item index.
            now, history_times: as in :meth:`score_rows`.

        Returns:
            ``{"score", "bias", "candidate" (1.0 or 0.0), "group:{g}" for each group,
            "source:{s}" for each source}``.
        """
        self._check_fitted()
        self._check_bound()
        history = as_user_items(history, num_items=len(self.stats_.log_popularity), name="history")
        if history.shape[0] != 1:
            raise ValueError(f"explain takes one user: history has {history.shape[0]} rows")
        if not 0 <= int(item) < history.shape[1]:
            raise ValueError(f"item={item!r} is outside [0, {history.shape[1]})")
        scores = self._source_rows(source_scores, 1)
        times = self._check_times(history_times, history.shape)
        pair = (torch.zeros(1, dtype=torch.int64), torch.tensor([int(item)]))
        candidates, _, _, features = self._featurise(scores, history, times, now, pair)
        x = self._normalise(features).to(next(self.scorer_.parameters()).device)
        groups = feature_groups(self.source_names_, self.feature_groups)
        masks = {f"group:{g}": [grp == g for grp in groups] for g in self.feature_groups}
        for s in self.source_names_:
            involving = {f"{s}.z", f"{s}.rr", f"{s}.top", f"act.{s}.z"}
            masks[f"source:{s}"] = [name in involving for name in self.feature_names_]
        out = {"candidate": float(any(bool(rank[0, int(item)] > 0) for rank in candidates.ranks.values()))}
        out.update(occlusion(self.scorer_, x[0], masks))
        return out

    def explain_user(self, user: int, item: int) -> dict[str, float]:
        """:meth:`explain` for a known user (internal index)."""
        self._check_fitted()
        self._check_bound()
        scores, history, times = self._user_inputs(np.array([int(user)], dtype=np.int64))
        return self.explain(scores, history, item, history_times=times)

