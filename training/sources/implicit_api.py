"""The implicit-style face of every learner: fit on a bare CSR, ``recommend``, ``similar_items``.

People who know `implicit <https://github.com/benfred/implicit>`_ expect::

    model = ALS(factors=8).fit(user_items)          # no graph: one is made from the matrix
    ids, scores = model.recommend(0, user_items[0], N=10)
    ids, scores = model.recommend(np.arange(10), user_items[:10], N=10)   # [10, N] each
    ids, scores = model.similar_items(3, N=5)

:class:`ImplicitStyle` (a base of :class:`training.base.Learner`) provides these on
top of the contract's ``score`` / ``score_new_users`` / ``item_embeddings``, with
implicit's argument names and semantics (``recommender_base.RecommenderBase``):

* ``user_items`` passed to ``recommend`` holds **one row per requested user**, in the
  order of ``userid`` (not the whole matrix); it masks those users' items
  (``filter_already_liked_items``) and, with ``recalculate_user``, folds them in.
* a scalar ``userid``/``itemid`` gives 1-D ``(ids, scores)``; an array gives 2-D
  arrays with one row per id.
* ``similar_items`` ranks by cosine of the item vectors, the query item included
  (it comes first, as in implicit). Item-item learners (ItemKNN, EASE) rank by
  their learned item x item matrix instead.

Where this differs from implicit: lists with fewer than ``N`` recommendable items
are padded at the end with id ``-1`` and score ``-inf`` (the project's top-K
convention, :func:`eval.ranking.iter_topk`).
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp
import torch

from eval.checks import positive_int
from eval.ranking import topk
from kg.graph import Graph

__all__ = ["ImplicitStyle", "graph_for", "implicit_fit"]


def graph_for(graph: Optional[Graph], user_items: Any) -> Graph:
    """``graph``, or a bare one made from ``user_items`` when ``graph`` is ``None``.

    Raises:
        TypeError: ``graph`` is neither a :class:`kg.graph.Graph` nor ``None``; or it is
            ``None`` and ``user_items`` is not a scipy sparse matrix.
    """
    if graph is None:
        if not sp.issparse(user_items):
            raise TypeError(
                "fit(None, user_items) builds a graph from user_items, which must then be a scipy sparse "
                f"users x items matrix; got {type(user_items).__name__}"
            )
        return Graph.from_csr(user_items)
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a kg.graph.Graph or None, got {type(graph).__name__}")
    return graph


def implicit_fit(fit):
    """Wrap a learner's ``fit(graph, user_items, ...)`` so it also takes implicit's forms.

    ``fit(user_items)`` and ``fit(None, user_items)`` fit on a bare graph made from
    the matrix (:meth:`kg.graph.Graph.from_csr`); ``fit(graph, user_items)`` is
    unchanged. :class:`training.base.Learner` applies this to every subclass's ``fit``.
    """

    @functools.wraps(fit)
    def wrapper(self, graph=None, user_items=None, *args, **kwargs):
        if user_items is None and sp.issparse(graph):
            graph, user_items = None, graph
        if user_items is None:
            raise TypeError(f"{type(self).__name__}.fit needs user_items (a users x items CSR matrix)")
        return fit(self, graph_for(graph, user_items), user_items, *args, **kwargs)

    wrapper.__implicit_fit__ = True
    return wrapper


def _as_ids(value: Any, name: str, size: Optional[int]) -> tuple[np.ndarray, bool]:
    """``(int64 1-D ids, was_scalar)``, checked against ``[0, size)`` unless ``size`` is ``None``."""
    scalar = np.isscalar(value)
    ids = np.atleast_1d(np.asarray(value))
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must be integer indices, got dtype {ids.dtype}")
    if ids.ndim != 1:
        raise ValueError(f"{name} must be an int or a 1-D array, got shape {ids.shape}")
    ids = ids.astype(np.int64, copy=False)
    if ids.size and (ids.min() < 0 or (size is not None and ids.max() >= size)):
        raise IndexError(f"{name} holds indices outside [0, {size or 'n'}): min {ids.min()}, max {ids.max()}")
    return ids, scalar


def _restrict(items: Any, filter_items: Any, num_items: int) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Validated ``(items, filter_items)`` as sorted int64 arrays (or ``None``)."""
    if items is not None and filter_items is not None:
        raise ValueError("set either items or filter_items, not both (as in implicit)")
    out = []
    for name, value in (("items", items), ("filter_items", filter_items)):
        if value is None:
            out.append(None)
            continue
        ids, _ = _as_ids(value, name, num_items)
        out.append(np.unique(ids))
    if out[0] is not None and not len(out[0]):
        raise ValueError("items is empty; nothing to rank")
    return out[0], out[1]


class ImplicitStyle:
    """``recommend`` / ``similar_items`` with implicit's signatures, over the Learner contract.

    Mixed into :class:`training.base.Learner`; relies on its ``score``,
    ``score_new_users``, ``item_embeddings`` and ``_check_fitted``.
    """

    def _num_items(self) -> int:
        user_items = getattr(self, "user_items_", None)
        if user_items is not None:
            return int(user_items.shape[1])
        vectors = self.item_embeddings()
        if vectors is not None:
            return int(vectors.shape[0])
        return int(self.score(np.zeros(1, dtype=np.int64)).shape[1])

    def _num_users(self) -> Optional[int]:
        vectors = self.user_embeddings()
        if vectors is not None:
            return int(vectors.shape[0])
        user_items = getattr(self, "user_items_", None)
        return None if user_items is None else int(user_items.shape[0])

    def recommend(
        self,
        userid,
        user_items: Optional[sp.csr_matrix],
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items=None,
        recalculate_user: bool = False,
        items=None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``N`` items for one user or a batch of users (implicit's ``recommend``).

        Args:
            userid: an internal user index or a 1-D array of them.
            user_items: CSR with **one row per user in** ``userid`` (in that order),
                e.g. ``train[userids]``: their items, masked when
                ``filter_already_liked_items`` and folded in when ``recalculate_user``.
                May be ``None`` when neither is set.
            N: list length.
            filter_already_liked_items: never recommend an item stored in the user's row.
            filter_items: item indices never to recommend to anyone.
            recalculate_user: score from ``user_items`` (:meth:`score_new_users`)
                instead of the fitted user state; ``userid`` then only labels rows.
            items: rank only these item indices (``N`` is capped at their number).

        Returns:
            ``(ids int64, scores float32)``: shape ``[N]`` each for a scalar
            ``userid``, ``[len(userid), N]`` for an array. Padded with ``-1`` /
            ``-inf`` where fewer than ``N`` items are recommendable.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: ``user_items`` is missing or has not one row per user;
                both ``items`` and ``filter_items`` given; bad ``N``.
            IndexError: a user or item index outside the model.
            NotImplementedError: ``recalculate_user`` on a learner without fold-in.
        """
        self._check_fitted()
        N = positive_int(N, "N")
        num_items = self._num_items()
        num_users = self._num_users()
        users, scalar = _as_ids(userid, "userid", None if recalculate_user else num_users)
        rows = None
        if filter_already_liked_items or recalculate_user:
            if user_items is None or not sp.issparse(user_items):
                raise ValueError(
                    "user_items must be a CSR matrix with one row per user in userid "
                    "(needed by filter_already_liked_items / recalculate_user), "
                    f"got {type(user_items).__name__}"
                )
            rows = sp.csr_matrix(user_items)
            if rows.shape[0] != len(users):
                raise ValueError(
                    f"user_items must contain 1 row for every user in userid: {rows.shape[0]} rows "
                    f"for {len(users)} users (pass user_items[userid], not the whole matrix)"
                )
            if rows.shape[1] != num_items:
                raise ValueError(f"user_items has {rows.shape[1]} columns, the model has {num_items} items")
        keep, drop = _restrict(items, filter_items, num_items)
        if keep is not None:
            N = min(N, len(keep))
        keep_t = None if keep is None else torch.from_numpy(keep)
        drop_t = None if drop is None else torch.from_numpy(drop)

        def scorer(positions: np.ndarray) -> torch.Tensor:
            if recalculate_user:
                scores = torch.as_tensor(self.score_new_users(rows[positions]))
            else:
                scores = torch.as_tensor(self.score(users[positions]))
            if keep_t is not None:
                return scores[:, keep_t.to(scores.device)]
            if drop_t is not None and len(drop_t):
                scores = scores.clone()
                scores[:, drop_t.to(scores.device)] = float("-inf")
            return scores

        exclude = None
        if filter_already_liked_items:
            exclude = rows if keep is None else rows[:, keep]
        ids, scores = topk(scorer, np.arange(len(users), dtype=np.int64), N, exclude=exclude)
        if keep is not None:
            ids = np.where(ids >= 0, keep[np.maximum(ids, 0)], -1)
        if scalar:
            return ids[0], scores[0]
        return ids, scores

    def _item_similarity(self, itemids: np.ndarray) -> torch.Tensor:
        """Similarity of ``itemids`` to every item, ``[B, num_items]``: cosine of the item vectors.

        Raises:
            NotImplementedError: the learner has no item vectors.
        """
        vectors = self.item_embeddings()
        if vectors is None:
            raise NotImplementedError(
                f"{type(self).__name__} has no item vectors, so similar_items is not available; "
                "learners with item vectors (ALS, the GNNs, the text model) and item-item learners "
                "(ItemKNN, EASE) support it"
            )
        matrix = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        norms = matrix.norm(dim=1).clamp_min(1e-10)
        query = matrix[torch.from_numpy(itemids)]
        return (query @ matrix.T) / norms[torch.from_numpy(itemids)][:, None] / norms[None, :]

    def similar_items(self, itemid, N: int = 10, filter_items=None, items=None) -> tuple[np.ndarray, np.ndarray]:
        """The ``N`` items most similar to ``itemid`` (implicit's ``similar_items``).

        Args:
            itemid: an internal item index or a 1-D array of them.
            N: list length.
            filter_items: item indices never to return.
            items: return only these item indices (``N`` is capped at their number).

        Returns:
            ``(ids int64, scores float32)``, ``[N]`` for a scalar ``itemid`` and
            ``[len(itemid), N]`` for an array; the query item itself is included
            (first, with cosine 1, for vector learners).

        Raises:
            NotFittedError: before ``fit``/``load``.
            NotImplementedError: the learner has neither item vectors nor an item-item matrix.
            IndexError: an index outside the model; ValueError: bad ``N``, or both
                ``items`` and ``filter_items``.
        """
        self._check_fitted()
        N = positive_int(N, "N")
        num_items = self._num_items()
        query, scalar = _as_ids(itemid, "itemid", num_items)
        keep, drop = _restrict(items, filter_items, num_items)
        if keep is not None:
            N = min(N, len(keep))

        def scorer(positions: np.ndarray) -> torch.Tensor:
            scores = self._item_similarity(query[positions]).float()
            if keep is not None:
                return scores[:, torch.from_numpy(keep).to(scores.device)]
            if drop is not None and len(drop):
                scores = scores.clone()
                scores[:, torch.from_numpy(drop).to(scores.device)] = float("-inf")
            return scores

        ids, scores = topk(scorer, np.arange(len(query), dtype=np.int64), N)
        if keep is not None:
            ids = np.where(ids >= 0, keep[np.maximum(ids, 0)], -1)
        if scalar:
            return ids[0], scores[0]
        return ids, scores
