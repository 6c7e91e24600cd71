"""Serving a trained model: top-K for known and new users, similar items, explanations.

    rec = Recommender.load("models/ml-100k")
    rec.recommend(["196", "186"], k=10)                 # DataFrame user, item, rank, score
    rec.recommend_new_user(["242", "302"], k=10)        # fold-in, no retraining
    rec.recommend_new_user(attributes={"gender": "F"})  # nothing seen: similar users' favourites
    rec.add_items([{"item_id": "new-1", "movie_title": "Heat 2"}])
    rec.similar_items(["new-1"], k=5)
    rec.explain("196", "242")

Scores come from the hybrid ranker (the top-N of its candidate sources re-ranked,
``ranker.candidate_sources``); items outside the candidates are not recommendable. Every answer uses external ids.

A model trained on a user sample (``user_sample``, docs/SCALE.md) serves every user of
its graph: the users it was not fitted on are folded in from their train + valid rows
(:meth:`Recommender.score_new_users`), in every path (``recommend``, ``iter_topk``,
``score_users``, ``explain``).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from eval.ranking import iter_topk
from graphrec.artifacts.model import TrainedModel, load_model
from graphrec.serving.batch_topk import dot_model, parallel_dot_topk, parallel_hybrid_topk
from graphrec.serving.coldstart import NewItems, attribute_popularity
from graphrec.serving.diversity import intra_list_diversity, mmr_rerank
from graphrec.serving.filters import ItemFilter, item_filter, pad_seen
from training.base import GraphrecWarning
from training.pipeline.user_sample import fold_in_sources

__all__ = ["Recommender", "UnknownIdError"]

_DIVERSITY_POOL = 100  # candidates per user that MMR re-ranks down to k


class UnknownIdError(KeyError):
    """A user or item id the model does not know (message names the ids)."""

    def __str__(self) -> str:  # KeyError quotes its message; this one is a sentence
        return str(self.args[0])


class Recommender:
    """Top-K recommendations from a loaded model artifact.

    Args:
        model: a :class:`~graphrec.artifacts.model.TrainedModel` (see :meth:`load`).
    """

    def __init__(self, model: TrainedModel) -> None:
        self.model = model
        self._scorer = model.scorer()  # folds in the users outside a user sample
        self._fitted = model.user_sample.fitted if model.user_sample is not None else None  # None: every user
        self._user_index = pd.Index(model.graph.user_ids.astype(str))
        self._item_ids = model.graph.item_ids.astype(str)
        self._item_index = pd.Index(self._item_ids)
        self.new_items = NewItems.empty()

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: Optional[str] = None) -> "Recommender":
        """Load a model artifact (``python -m graphrec.train``), verifying every checksum."""
        return cls(load_model(path, device=device))

    # -- ids -----------------------------------------------------------------------------
    @property
    def user_ids(self) -> np.ndarray:
        return self._user_index.to_numpy()

    @property
    def item_ids(self) -> np.ndarray:
        """Known items, then items added with :meth:`add_items`."""
        return np.concatenate([self._item_ids, self.new_items.ids])

    @property
    def num_items(self) -> int:
        return len(self._item_ids) + len(self.new_items.ids)

    def user_index(self, user_ids: Iterable[Any]) -> np.ndarray:
        """Internal indices of known users; ``UnknownIdError`` naming the unknown ones."""
        ids = np.asarray([str(u) for u in user_ids], dtype=object)
        index = self._user_index.get_indexer(ids)
        if (index < 0).any():
            missing = ids[index < 0]
            raise UnknownIdError(
                f"{len(missing)} unknown user id(s): {', '.join(map(str, missing[:5]))}"
                f"{' ...' if len(missing) > 5 else ''}; use recommend_new_user() (or --unknown cold) for new users"
            )
        return index.astype(np.int64)

    def item_index(self, item_ids: Iterable[Any]) -> np.ndarray:
        """Internal indices of known or added items; ``UnknownIdError`` naming the unknown ones."""
        ids = np.asarray([str(i) for i in item_ids], dtype=object)
        index = pd.Index(self.item_ids).get_indexer(ids)
        if (index < 0).any():
            missing = ids[index < 0]
            raise UnknownIdError(f"{len(missing)} unknown item id(s): {', '.join(map(str, missing[:5]))}")
        return index.astype(np.int64)

    # -- scoring -------------------------------------------------------------------------
    def score_users(self, users: np.ndarray) -> torch.Tensor:
        """Hybrid scores ``[B, num_items]`` (``-inf`` = not a candidate) of known users by index."""
        scores = torch.as_tensor(self._scorer(np.asarray(users, dtype=np.int64)))
        return self._with_new_items(scores, users=np.asarray(users, dtype=np.int64))

    def _folded(self, users: np.ndarray) -> np.ndarray:
        """bool ``[B]``: which of ``users`` the model was not fitted on (a user sample), to fold in."""
        if self._fitted is None:
            return np.zeros(len(users), dtype=bool)
        return ~self._fitted[np.asarray(users, dtype=np.int64)]

    def _with_new_items(self, scores: torch.Tensor, *, users=None, history=None) -> torch.Tensor:
        folded = self._folded(users) if users is not None else None
        return self.new_items.append(scores, self.model, users=users, history=history, folded=folded)

    def _filter(self, k: int, exclude, candidates) -> ItemFilter:
        return item_filter(k, self.num_items, self.item_index, exclude, candidates)

    def iter_topk(
        self,
        users: np.ndarray,
        k: int = 20,
        *,
        filter_seen: bool = True,
        exclude: Optional[Sequence[Any]] = None,
        candidates: Optional[Sequence[Any]] = None,
        diversity: float = 0.0,
        batch_size: int = 256,
        show_progress: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Stream ``(users [B], items [B, k], scores [B, k])`` (internal indices, ``-1`` pads) for known users.

        Batches follow the order of ``users``, except that with a user-sample model the
        users it was fitted on come first and those it folds in after them.
        """
        request = self._filter(k, exclude, candidates)
        if not 0.0 <= float(diversity) <= 1.0:
            raise ValueError(f"diversity must be in [0, 1], got {diversity!r}")
        seen = pad_seen(self.model.history, self.num_items) if filter_seen else None
        pool = min(max(k, _DIVERSITY_POOL) if diversity > 0 else k, self.num_items)
        plain = request.empty and not len(self.new_items.ids)
        users = np.asarray(users, dtype=np.int64)
        folded = self._folded(users)
        # Fitted users take the fast paths; folded-in users are scored by fold-in, batch by batch.
        for group, fast in ((users[~folded], plain), (users[folded], False)):
            if not len(group):
                continue
            dot = dot_model(self.model) if fast else None
            if dot is not None:  # one factor model: the multi-threaded dot-product path (bench/serving_throughput.py)
                stream = parallel_dot_topk(dot, group, pool, seen, batch_size, show_progress)
            elif fast and self.model.ranker is not None:  # the hybrid's batch path (bench/hybrid_topk.py)
                stream = parallel_hybrid_topk(self.model.ranker, group, pool, batch_size, show_progress)
            else:
                scorer = lambda batch: request.apply(self.score_users(batch))  # noqa: E731
                stream = iter_topk(
                    scorer, group, pool, exclude=seen, batch_size=batch_size, show_progress=show_progress
                )
            for batch, items, scores in stream:
                if diversity > 0:
                    items, scores = mmr_rerank(items, scores, self.item_vectors(), k, diversity)
                yield batch, items[:, :k], scores[:, :k]

    def _frame(self, user_ids: Sequence[str], items: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        valid = items >= 0
        counts = valid.sum(axis=1)
        ranks = np.concatenate([np.arange(1, c + 1) for c in counts]) if len(counts) else np.zeros(0, int)
        return pd.DataFrame(
            {
                "user": np.repeat(np.asarray(user_ids, dtype=object), counts),
                "item": self.item_ids[items[valid]] if valid.any() else np.array([], dtype=object),
                "rank": ranks.astype(np.int32),
                "score": scores[valid].astype(np.float32),
            }
        )

    # -- public API ----------------------------------------------------------------------
    def recommend(
        self,
        user_ids: Sequence[Any],
        k: int = 20,
        *,
        filter_seen: bool = True,
        exclude: Optional[Sequence[Any]] = None,
        candidates: Optional[Sequence[Any]] = None,
        diversity: float = 0.0,
        unknown: str = "error",
    ) -> pd.DataFrame:
        """Top-``k`` items of each user: a DataFrame ``user, item, rank, score`` (external ids).

        Args:
            user_ids: external user ids.
            k: list length, ``1 <= k <= catalogue size``.
            filter_seen: leave out the user's known (train + valid) items.
            exclude: item ids never to recommend.
            candidates: rank only these item ids.
            diversity: MMR lambda in ``[0, 1]`` (0: by score only); lists are re-ranked from
                each user's top 100 using the model's item embeddings.
            unknown: ``"error"`` (raise :class:`UnknownIdError`) or ``"cold"`` (users
                the model never saw get :meth:`recommend_new_user` with no items).

        A repeated user id is answered once, at its first position (a
        :class:`training.base.GraphrecWarning` says how many repeats were dropped).
        A user for whom fewer than ``k`` items are recommendable (the sources'
        candidates less seen and excluded items) gets a shorter list, and a
        ``GraphrecWarning`` counts those users and the missing rows.

        Raises:
            UnknownIdError, ValueError: unknown ids, empty ``user_ids``, bad ``k``,
                ``k`` above the number of ``candidates``.
        """
        ids = [str(u) for u in user_ids]
        if not ids:
            raise ValueError("user_ids is empty")
        unique = list(dict.fromkeys(ids))
        if len(unique) < len(ids):
            warnings.warn(
                f"{len(ids) - len(unique)} repeated user id(s) in user_ids; each user is answered once, in first-seen order",
                GraphrecWarning, stacklevel=2,
            )
            ids = unique
        if unknown not in ("error", "cold"):
            raise ValueError(f"unknown must be 'error' or 'cold', got {unknown!r}")
        known = self._user_index.get_indexer(np.asarray(ids, dtype=object))
        if unknown == "error":
            self.user_index(ids)
        frames = []
        options = dict(exclude=exclude, candidates=candidates, diversity=diversity)
        index = known[known >= 0].astype(np.int64)
        if len(index):
            parts = list(self.iter_topk(index, k, filter_seen=filter_seen, **options))
            answered = np.concatenate([p[0] for p in parts])
            items = np.concatenate([p[1] for p in parts])
            scores = np.concatenate([p[2] for p in parts])
            frames.append(self._frame(self._user_index.to_numpy()[answered], items, scores))
        for position in np.flatnonzero(known < 0):
            frames.append(self.recommend_new_user([], k=k, **options).assign(user=ids[position]))
        order = {user: i for i, user in enumerate(ids)}
        out = pd.concat(frames, ignore_index=True)
        out = out.sort_values(["user", "rank"], key=lambda c: c.map(order) if c.name == "user" else c).reset_index(
            drop=True
        )
        rows = out["user"].value_counts().reindex(ids, fill_value=0).to_numpy()
        if (rows < k).any():
            warnings.warn(
                f"{int((rows < k).sum())} of {len(ids)} user(s) got fewer than k={k} items ({int((k - rows).sum())} rows "
                "short): fewer items are recommendable to them (the sources' candidates less seen and excluded items)",
                GraphrecWarning, stacklevel=2,
            )
        return out

    def recommend_new_user(
        self,
        items: Sequence[Any] = (),
        *,
        attributes: Optional[Mapping[str, Any]] = None,
        k: int = 20,
        exclude: Optional[Sequence[Any]] = None,
        candidates: Optional[Sequence[Any]] = None,
        diversity: float = 0.0,
    ) -> pd.DataFrame:
        """Top-``k`` for a user the model has never seen, without retraining.

        With items: every source folds the user in from them (ALS's least-squares
        solve, the GNN's and text's item-mean profiles, item-item neighbors) and the
        hybrid ranker fuses them as for a known user. With no items: the favourites of
        known users sharing ``attributes`` (user-table columns, e.g. ``{"gender": "F"}``),
        else overall popularity. The ``user`` column is empty (``""``).

        Raises:
            UnknownIdError: an item id the model does not know.
        """
        request = self._filter(k, exclude, candidates)
        index = self.item_index(items) if len(items) else np.zeros(0, np.int64)
        known = index[index < len(self._item_ids)]
        row = sp.csr_matrix(
            (np.ones(len(known), np.float32), (np.zeros(len(known), np.int64), known)),
            shape=(1, len(self._item_ids)),
        )
        if len(known):
            scores = self.score_new_users(row)
        else:  # popularity among similar users (or everyone)
            scores = attribute_popularity(self.model, attributes or {})
        scores = self._with_new_items(torch.as_tensor(scores).float().cpu(), history=row)
        scores = request.apply(scores)
        scores[0, torch.as_tensor(index, dtype=torch.long)] = -torch.inf  # never what they already have
        pool = min(max(k, _DIVERSITY_POOL) if diversity > 0 else k, self.num_items)
        top_scores, top_items = torch.topk(scores, pool, dim=1)
        top_items = torch.where(torch.isfinite(top_scores), top_items, torch.full_like(top_items, -1))
        top_items, top_scores = top_items.numpy(), top_scores.numpy()
        if diversity > 0:
            top_items, top_scores = mmr_rerank(top_items, top_scores, self.item_vectors(), k, diversity)
        return self._frame([""], top_items[:, :k], top_scores[:, :k])

    def score_new_users(
        self, rows: sp.csr_matrix, *, history_times: Optional[sp.csr_matrix] = None,
        source_rows: Optional[dict[str, sp.csr_matrix]] = None,
    ) -> torch.Tensor:  # fmt: skip
        """Hybrid scores ``[B, known items]`` of users known only by their items (CSR rows).

        Every source folds the rows in (``Learner.score_new_users``) and the hybrid ranker
        fuses them exactly as for known users; ``-inf`` outside the candidates.
        ``history_times`` (CSR ``[B, known items]`` float64 timestamps of ``rows``) feed
        the ranker's context features where known; ``source_rows`` gives a source other
        rows of the same users (weighted as it was fitted) to fold in from. A user outside a
        user sample is scored so, from ``model.fold_in_inputs``.
        """
        rows = sp.csr_matrix(rows, dtype=np.float32)
        return self.model.score_rows(rows, history_times=history_times, source_rows=source_rows)

    def item_vectors(self) -> np.ndarray:
        """Item embeddings used for similarity and diversity (training.pipeline.phase.EMBEDDING_PRECEDENCE)."""
        from training.pipeline.phase import embedding_source

        name = embedding_source(self.model.sources)
        if name is None:
            raise ValueError("the model holds no source with item embeddings")
        vectors = np.asarray(self.model.sources[name].item_embeddings(), dtype=np.float32)
        return np.concatenate([vectors, self.new_items.vectors(name, self.model, len(vectors[0]))])

    def similar_items(self, item_ids: Sequence[Any], k: int = 10) -> pd.DataFrame:
        """The ``k`` most cosine-similar items of each item: DataFrame ``item, similar, rank, score``."""
        index = self.item_index(item_ids)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < self.num_items:
            raise ValueError(f"k must be an integer in [1, {self.num_items - 1}], got {k!r}")
        vectors = torch.as_tensor(self.item_vectors())
        vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
        sims = vectors[torch.as_tensor(index)] @ vectors.T
        sims[torch.arange(len(index)), torch.as_tensor(index)] = -torch.inf
        scores, top = torch.topk(sims, k, dim=1)
        return pd.DataFrame(
            {
                "item": np.repeat(self.item_ids[index], k),
                "similar": self.item_ids[top.reshape(-1).numpy()],
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(index)),
                "score": scores.reshape(-1).numpy().astype(np.float32),
            }
        )

    def explain(self, user_id: Any, item_id: Any) -> dict[str, float]:
        """Each source's and feature group's contribution to the hybrid's score of ``item_id`` for ``user_id``.

        Keys: ``score``, ``bias``, ``candidate`` (1.0 when some source proposed the item),
        ``source:<name>`` and ``group:<name>`` (see ``HybridRanker.explain``).
        """
        if self.model.ranker is None:
            raise ValueError("the model has no hybrid ranker to explain")
        user = int(self.user_index([user_id])[0])
        item = int(self.item_index([item_id])[0])
        if item >= len(self._item_ids):
            raise ValueError(f"item {item_id!r} was added after training; the ranker has no features for it")
        if self._folded(np.array([user]))[0]:  # not in the user sample: explain the fold-in's features
            ranker = self.model.ranker
            rows, times, source_rows = self.model.fold_in_inputs(np.array([user]))
            used = {name: self.model.sources[name] for name in ranker.source_names_}
            return ranker.explain(fold_in_sources(used, rows, source_rows), rows, item, history_times=times)
        return self.model.ranker.explain_user(user, item)

    def add_items(self, items: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Make new items recommendable and searchable without retraining.

        Each mapping needs ``item_id`` and the item-table columns it has (text and
        attributes). The text encoder embeds them; the GNN's learned text projection
        gives them graph vectors. For a user, a new item takes the rank its content
        score (GNN, else text) would give it among the known items.

        Returns:
            The internal indices given to the new items.

        Raises:
            ValueError: a missing or duplicate ``item_id``, or a model without text.
        """
        return self.new_items.add(self.model, items, known=self._item_index)

    def intra_list_diversity(self, recommendations: pd.DataFrame) -> float:
        """Mean pairwise cosine distance within each user's list (item embeddings of :meth:`item_vectors`)."""
        lists = [self.item_index(group["item"]) for _, group in recommendations.groupby("user", sort=False)]
        if not lists:
            return float("nan")
        width = max(len(x) for x in lists)
        padded = np.full((len(lists), width), -1, dtype=np.int64)
        for row, items in enumerate(lists):
            padded[row, : len(items)] = items
        return float(intra_list_diversity(padded, self.item_vectors()))

