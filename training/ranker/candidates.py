"""Candidate generation: the union of every source's top-N, history excluded.

Each source ranks the whole catalogue for a batch of users; its top-N items that
the user has not interacted with are that source's candidates, and the hybrid
re-ranks the union. Ranks are kept as dense ``[B, num_items]`` rows (0 outside
the top-N) so features can look them up for any (user, item) pair, candidate or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["Candidates", "candidate_recall", "generate_candidates", "history_mask", "segment_topk", "top_n_ranks"]


@dataclass(frozen=True)
class Candidates:
    """The (row, item) pairs a batch of users is re-ranked over.

    Attributes:
        rows: int64 ``[P]``, the batch row of each pair, non-decreasing.
        items: int64 ``[P]``, the item of each pair, increasing within a row.
        ranks: per source, float32 ``[B, num_items]``: 1-based rank within the
            source's top-N, 0 outside it (history items are always 0).
        offsets: int64 ``[B + 1]``; row ``b`` owns pairs ``offsets[b]:offsets[b + 1]``.
    """

    rows: torch.Tensor
    items: torch.Tensor
    ranks: dict[str, torch.Tensor]
    offsets: torch.Tensor

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    def sizes(self) -> torch.Tensor:
        """Number of candidates per row, int64 ``[B]``."""
        return self.offsets[1:] - self.offsets[:-1]


def history_mask(history: sp.csr_matrix) -> torch.Tensor:
    """Dense boolean ``[B, num_items]`` of the stored entries of ``history``."""
    mask = torch.zeros(history.shape, dtype=torch.bool)
    rows = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))
    mask[torch.from_numpy(rows), torch.from_numpy(history.indices.astype(np.int64))] = True
    return mask


def top_n_ranks(scores: torch.Tensor, exclude: torch.Tensor, n: int, *, name: str = "scores") -> torch.Tensor:
    """1-based ranks of each row's top-``n`` items that are not excluded, 0 elsewhere.

    Items whose score is ``-inf`` (a source that cannot rank them) are never
    in the top-``n``; ties are broken by ``torch.topk`` (deterministic on CPU).

    Args:
        scores: float ``[B, num_items]``.
        exclude: bool ``[B, num_items]``, True for items that may not be ranked.
        n: how many items per row.
        name: the source's name, for error messages.

    Returns:
        float32 ``[B, num_items]``.

    Raises:
        ValueError: ``scores`` holds NaN or has another shape than ``exclude``.
    """
    if scores.shape != exclude.shape:
        raise ValueError(
            f"source {name!r} returned scores of shape {tuple(scores.shape)}, expected {tuple(exclude.shape)}"
        )
    if torch.isnan(scores).any():
        raise ValueError(f"source {name!r} returned NaN scores")
    masked = scores.float().masked_fill(exclude, float("-inf"))
    top_scores, top_items = masked.topk(min(n, scores.shape[1]), dim=1)
    positions = torch.arange(1, top_items.shape[1] + 1, dtype=torch.float32).expand_as(top_scores)
    ranks = torch.zeros(scores.shape, dtype=torch.float32)
    ranks.scatter_(1, top_items, torch.where(torch.isfinite(top_scores), positions, 0.0))
    return ranks


def generate_candidates(
    source_scores: Mapping[str, torch.Tensor], exclude: torch.Tensor, n: int
) -> Candidates:
    """The union of each source's top-``n`` non-excluded items, per row.

    Args:
        source_scores: per source, float ``[B, num_items]`` (any device).
        exclude: bool ``[B, num_items]`` on the CPU (the users' history items).
        n: candidates per source.

    Returns:
        :class:`Candidates` on the CPU.
    """
    ranks = {
        name: top_n_ranks(scores.detach().to("cpu"), exclude, n, name=name) for name, scores in source_scores.items()
    }
    union = torch.zeros(exclude.shape, dtype=torch.bool)
    for rank in ranks.values():
        union |= rank > 0
    rows, items = union.nonzero(as_tuple=True)
    offsets = torch.zeros(exclude.shape[0] + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(union.sum(dim=1), dim=0)
    return Candidates(rows=rows, items=items, ranks=ranks, offsets=offsets)


def candidate_recall(candidates: Candidates, labels: sp.csr_matrix) -> dict[str, tuple[int, int]]:
    """Positives found among the candidates: per source and for the union.

    Args:
        candidates: the batch's candidates.
        labels: CSR ``[B, num_items]`` of the batch's held-out positives.

    Returns:
        ``{source or "union": (positives found, positives)}``; summing the pairs
        over batches and dividing gives the candidate recall.
    """
    rows = np.repeat(np.arange(labels.shape[0]), np.diff(labels.indptr))
    rows_t = torch.from_numpy(rows)
    items_t = torch.from_numpy(labels.indices.astype(np.int64))
    total = int(labels.nnz)
    found = {name: int((rank[rows_t, items_t] > 0).sum()) for name, rank in candidates.ranks.items()}
    union = torch.zeros(len(rows), dtype=torch.bool)
    for rank in candidates.ranks.values():
        union |= rank[rows_t, items_t] > 0
    found["union"] = int(union.sum())
    return {name: (hits, total) for name, hits in found.items()}


def segment_topk(
    rows: torch.Tensor, values: torch.Tensor, offsets: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, its ``k`` largest values among its own pairs (CPU).

    Args:
        rows: int64 ``[P]``, non-decreasing; row ``b`` owns pairs ``offsets[b]:offsets[b + 1]``.
        values: float ``[P]``.
        offsets: int64 ``[B + 1]``.
        k: how many per row.

    Returns:
        ``(positions int64 [B, k], scores float32 [B, k])``: indices into the pairs, best
        first, ``-1`` / ``-inf`` where a row has fewer than ``k`` finite values.
    """
    num_rows = len(offsets) - 1
    width = int((offsets[1:] - offsets[:-1]).max()) if num_rows else 0
    positions = torch.full((num_rows, k), -1, dtype=torch.int64)
    scores = torch.full((num_rows, k), float("-inf"))
    if width == 0:
        return positions, scores
    column = torch.arange(len(rows)) - offsets[rows]
    padded = torch.full((num_rows, width), float("-inf"))
    padded[rows, column] = values.float().cpu()
    top, where = padded.topk(min(k, width), dim=1)
    finite = torch.isfinite(top)
    positions[:, : top.shape[1]] = torch.where(finite, offsets[:-1].unsqueeze(1) + where, -1)
    scores[:, : top.shape[1]] = top
    return positions, scores
