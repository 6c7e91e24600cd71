"""The explicit context of the hybrid ranker: what it reads besides its learned weights.

A :class:`RankerContext` describes one phase (sources fitted on train, or refitted on
train + valid): the history the sources learned from (never candidates), its
timestamps, the item statistics derived from it and the sources' row scorers. It is
an immutable value: a ranker is fitted in one (``ranker.fit(context, users, labels)``)
and bound to another phase's with ``ranker.bind(context)``; the same context can
serve several rankers (the ablation's refits) without being recomputed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import numpy as np
import scipy.sparse as sp

from kg.graph import Graph
from training.base import as_user_items
from training.ranker.features import ItemStats, item_stats

__all__ = ["RankerContext", "Scorer"]

Scorer = Callable[[np.ndarray], Any]
"""``scorer(users int64 [B]) -> torch.Tensor | np.ndarray [B, num_items]``."""


@dataclass(frozen=True)
class RankerContext:
    """One phase's history, its item statistics and its sources.

    Attributes:
        stats: item statistics of ``history`` (:func:`~training.ranker.features.item_stats`).
        history: CSR ``[num_users, num_items]``, the interactions the sources were fitted on.
        history_times: CSR float64 timestamps of ``history``, or ``None``.
        item_ids: external item ids (the tail tie-break and the inner validation).
        source_scorers: name -> row scorer fitted on ``history``, or ``None`` (scoring
            known users needs them; scoring given rows does not).
    """

    stats: ItemStats
    history: sp.csr_matrix
    history_times: Optional[sp.csr_matrix]
    item_ids: np.ndarray
    source_scorers: Optional[Mapping[str, Scorer]] = None

    @classmethod
    def build(
        cls,
        graph: Graph,
        history: sp.csr_matrix,
        *,
        item_text_embeddings: Optional[np.ndarray] = None,
        history_times: Optional[sp.csr_matrix] = None,
        source_scorers: Optional[Mapping[str, Scorer]] = None,
    ) -> "RankerContext":
        """Check the inputs and compute the item statistics.

        Args:
            graph: side information (item ids, item-entity triples).
            history: CSR ``[num_users, num_items]`` (weighted or binary); these items are
                never candidates.
            item_text_embeddings: ``[num_items, d]`` item text vectors, or ``None``.
            history_times: CSR ``[num_users, num_items]`` float64 timestamps of ``history``
                (``graph.timestamp_matrix(...)``), or ``None``.
            source_scorers: the sources, or ``None``.

        Raises:
            TypeError, ValueError: an input has the wrong type or shape.
        """
        history = as_user_items(history, num_items=graph.num_items, name="history")
        if history.shape[0] != graph.num_users:
            raise ValueError(f"history has {history.shape[0]} rows, expected one per user ({graph.num_users})")
        if history_times is not None:
            if not sp.issparse(history_times):
                raise TypeError(f"history_times must be a scipy sparse CSR matrix, got {type(history_times).__name__}")
            history_times = sp.csr_matrix(history_times, dtype=np.float64)
        stats = item_stats(graph, history, item_text_embeddings=item_text_embeddings, history_times=history_times)
        scorers = dict(source_scorers) if source_scorers is not None else None
        return cls(stats, history, history_times, graph.item_ids, scorers)

    def with_scorers(self, source_scorers: Mapping[str, Scorer]) -> "RankerContext":
        """The same context with other sources (fitted on the same history)."""
        return dataclasses.replace(self, source_scorers=dict(source_scorers))

    @property
    def num_items(self) -> int:
        return self.history.shape[1]
