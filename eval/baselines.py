"""Baselines that need no training: MostPop and a seeded Random scorer.

Both follow the scorer contract of :func:`eval.evaluate` and :func:`eval.topk`:
``fit(user_items)`` returns ``self`` and calling the object with a batch of user
indices returns float32 scores ``[B, num_items]`` (seen items are not masked;
the evaluator does that).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp

from eval.checks import positive_int
from eval.longtail import popularity_order
from eval.ranking import as_user_array

__all__ = ["MostPop", "RandomScorer"]


def _num_items(user_items, name: str) -> int:
    if not sp.issparse(user_items):
        raise TypeError(f"{name} must be a scipy sparse users x items matrix, got {type(user_items).__name__}")
    if user_items.shape[1] < 1:
        raise ValueError(f"{name} has no item columns")
    return int(user_items.shape[1])


class MostPop:
    """Recommend the items with the most train interactions, the same list for everyone.

    Popularity is the number of users with a stored entry for the item in
    ``user_items`` (values are ignored, so weights do not inflate it). Scores are
    ranks, not counts: the most popular item scores ``num_items``, the next
    ``num_items - 1`` and so on, so the order is strict and ties never depend on
    ``torch.topk``. Ties in count are broken as docs/PROTOCOL.md breaks them for the
    head/tail split when ``item_ids`` are given, else by internal index.
    """

    def fit(self, user_items: sp.csr_matrix, *, item_ids: Optional[Sequence] = None) -> "MostPop":
        """Count train interactions per item.

        Args:
            user_items: users x items sparse matrix of train interactions.
            item_ids: external item ids ``[num_items]`` for the tie-break.

        Returns:
            ``self``.

        Raises:
            TypeError: ``user_items`` is not scipy sparse.
            ValueError: ``item_ids`` has the wrong length.
        """
        num_items = _num_items(user_items, "user_items")
        counts = np.bincount(sp.csr_matrix(user_items).indices, minlength=num_items).astype(np.int64)
        order = popularity_order(counts, item_ids)
        scores = np.empty(num_items, dtype=np.float32)
        scores[order] = np.arange(num_items, 0, -1, dtype=np.float32)
        self.item_counts_ = counts
        self.scores_ = scores
        return self

    def __call__(self, users: np.ndarray) -> np.ndarray:
        """Scores ``[len(users), num_items]`` (float32, a fresh array per call)."""
        if not hasattr(self, "scores_"):
            raise RuntimeError("MostPop is not fitted; call fit(user_items) first")
        users = as_user_array(users)
        return np.tile(self.scores_, (len(users), 1))

    def __repr__(self) -> str:
        return "MostPop()"


class RandomScorer:
    """Uniform random scores, reproducible per user.

    User ``u``'s scores come from ``numpy.random.default_rng([seed, u])``, so they
    are the same whichever batch, order or process asks for them.

    Args:
        seed: the base seed.
    """

    def __init__(self, seed: int = 2026) -> None:
        positive_int(seed, "seed", minimum=0)
        self.seed = int(seed)

    def fit(self, user_items: sp.csr_matrix) -> "RandomScorer":
        """Learn only the number of items (``user_items.shape[1]``); returns ``self``."""
        self.num_items_ = _num_items(user_items, "user_items")
        return self

    def __call__(self, users: np.ndarray) -> np.ndarray:
        """Scores ``[len(users), num_items]``, float32 in [0, 1)."""
        if not hasattr(self, "num_items_"):
            raise RuntimeError("RandomScorer is not fitted; call fit(user_items) first")
        users = as_user_array(users)
        scores = np.empty((len(users), self.num_items_), dtype=np.float32)
        for row, user in enumerate(users):
            np.random.default_rng([self.seed, int(user)]).random(out=scores[row], dtype=np.float32)
        return scores

    def __repr__(self) -> str:
        return f"RandomScorer(seed={self.seed})"
