"""Candidate generation: the union of every source's top-N, history excluded.

Each source ranks the whole catalogue for a batch of users; its top-N items that
the user has not interacted with are that source's candidates, and the hybrid
re-ranks the union. Each source's top-N is kept as ``[B, N]`` item lists; dense
``[B, num_items]`` rank rows (0 outside the top-N), for looking up any (user, item)
pair, are built only when asked for (:attr:`Candidates.ranks`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "Candidates",
    "candidate_recall",
    "generate_candidates",
    "history_mask",
    "segment_topk",
    "top_n_items",
    "top_n_ranks",
]


@dataclass(frozen=True)
class Candidates:
    """The (row, item) pairs a batch of users is re-ranked over.

    Attributes:
        rows: int64 ``[P]``, the batch row of each pair, non-decreasing.
        items: int64 ``[P]``, the item of each pair, increasing within a row.
        top: per source, int64 ``[B, n]``: the source's top-N items of each row, best
            first, ``-1`` where the row has fewer than N rankable items.
        offsets: int64 ``[B + 1]``; row ``b`` owns pairs ``offsets[b]:offsets[b + 1]``.
        num_items: the catalogue size.
    """

    rows: torch.Tensor
    items: torch.Tensor
    top: dict[str, torch.Tensor]
    offsets: torch.Tensor
    num_items: int

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    def sizes(self) -> torch.Tensor:
        """Number of candidates per row, int64 ``[B]``."""
        return self.offsets[1:] - self.offsets[:-1]

    @functools.cached_property
    def ranks(self) -> dict[str, torch.Tensor]:
        """Per source, float32 ``[B, num_items]``: 1-based rank within its top-N, 0 outside it.

        Built on first use (the ``ranks`` feature group, explanations); the candidates
        themselves never need these dense rows.
        """
        return {name: _dense_ranks(top, self.num_items) for name, top in self.top.items()}

    def in_top(self, name: str, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """bool ``[len(rows)]``: whether each (row, item) is in source ``name``'s top-N."""
        top = self.top[name]
        return (top[rows] == items.unsqueeze(1)).any(dim=1)


def history_mask(history: sp.csr_matrix) -> torch.Tensor:
    """Dense boolean ``[B, num_items]`` of the stored entries of ``history``."""
    mask = torch.zeros(history.shape, dtype=torch.bool)
    mask[_coordinates(history)] = True
    return mask


def top_n_items(
    scores: torch.Tensor, exclude: torch.Tensor | sp.csr_matrix, n: int, *, name: str = "scores"
) -> torch.Tensor:
    """Each row's top-``n`` items that are not excluded, best first; ``-1`` past the finite ones.

    Items whose score is ``-inf`` (a source that cannot rank them) are never in the
    top-``n``; ties are broken by ``torch.topk`` (deterministic on CPU). A NaN outside
    the excluded items sorts first in ``torch.topk``, so it is caught in the ``[B, n]``
    result. With ``exclude`` given as the sparse history, the excluded entries of a
    contiguous float32 ``scores`` are set to ``-inf`` in place for the ``topk`` and
    restored after it (no ``[B, num_items]`` copy); otherwise a masked copy is ranked.

    Args:
        scores: float ``[B, num_items]``.
        exclude: bool ``[B, num_items]`` tensor, or a CSR ``[B, num_items]`` whose stored
            entries may not be ranked.
        n: how many items per row.
        name: the source's name, for error messages.

    Returns:
        int64 ``[B, min(n, num_items)]``.

    Raises:
        ValueError: ``scores`` holds NaN (outside ``exclude``) or has another shape than ``exclude``.
    """
    if tuple(scores.shape) != tuple(exclude.shape):
        raise ValueError(
            f"source {name!r} returned scores of shape {tuple(scores.shape)}, expected {tuple(exclude.shape)}"
        )
    k = min(n, scores.shape[1])
    if sp.issparse(exclude):
        rows, columns = _coordinates(exclude)
        if scores.dtype == torch.float32 and scores.is_contiguous():
            saved = scores[rows, columns]
            scores[rows, columns] = float("-inf")
            try:
                top_scores, top_items = scores.topk(k, dim=1)
            finally:
                scores[rows, columns] = saved
        else:
            masked = scores.float().clone()
            masked[rows, columns] = float("-inf")
            top_scores, top_items = masked.topk(k, dim=1)
    else:
        top_scores, top_items = scores.float().masked_fill(exclude, float("-inf")).topk(k, dim=1)
    if torch.isnan(top_scores).any():
        raise ValueError(f"source {name!r} returned NaN scores")
    return torch.where(torch.isfinite(top_scores), top_items, -1)


def _coordinates(matrix: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    matrix = sp.csr_matrix(matrix)
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return torch.from_numpy(rows), torch.from_numpy(matrix.indices.astype(np.int64))


def _dense_ranks(top: torch.Tensor, num_items: int) -> torch.Tensor:
    positions = torch.arange(1, top.shape[1] + 1, dtype=torch.float32).expand(top.shape)
    ranks = torch.zeros((top.shape[0], num_items + 1), dtype=torch.float32)  # column num_items: the -1 padding
    ranks.scatter_(1, torch.where(top >= 0, top, num_items), positions)
    return ranks[:, :num_items].contiguous()


def top_n_ranks(scores: torch.Tensor, exclude: torch.Tensor, n: int, *, name: str = "scores") -> torch.Tensor:
    """1-based ranks of each row's top-``n`` items that are not excluded, 0 elsewhere (float32 ``[B, num_items]``).

    :func:`top_n_items` as dense rows; same rules and errors.
    """
    return _dense_ranks(top_n_items(scores, exclude, n, name=name), scores.shape[1])


def generate_candidates(
    source_scores: Mapping[str, torch.Tensor], exclude: torch.Tensor | sp.csr_matrix, n: int
) -> Candidates:
    """The union of each source's top-``n`` non-excluded items, per row.

    The union is a sort of the ``[B, sources x n]`` top items per row with repeats
    dropped, so nothing ``[B, num_items]``-sized is built besides each source's masked row.

    Args:
        source_scores: per source, float ``[B, num_items]`` (any device).
        exclude: the users' history items: a bool ``[B, num_items]`` tensor on the CPU, or
            the CSR history itself (cheaper: see :func:`top_n_items`).
        n: candidates per source.

    Returns:
        :class:`Candidates` on the CPU.
    """
    top = {
        name: top_n_items(scores.detach().to("cpu"), exclude, n, name=name) for name, scores in source_scores.items()
    }
    num_rows, num_items = exclude.shape
    if top:
        ordered, _ = torch.cat(list(top.values()), dim=1).sort(dim=1)
    else:
        ordered = torch.full((num_rows, 0), -1, dtype=torch.int64)
    keep = ordered >= 0
    keep[:, 1:] &= ordered[:, 1:] != ordered[:, :-1]
    rows, columns = keep.nonzero(as_tuple=True)
    offsets = torch.zeros(num_rows + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(keep.sum(dim=1), dim=0)
    return Candidates(rows=rows, items=ordered[rows, columns], top=top, offsets=offsets, num_items=num_items)


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
    union = torch.zeros(len(rows), dtype=torch.bool)
    found = {}
    for name in candidates.top:
        hit = candidates.in_top(name, rows_t, items_t)
        found[name] = int(hit.sum())
        union |= hit
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
