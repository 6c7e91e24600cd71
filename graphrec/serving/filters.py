"""What one top-K request may return: ``k`` checked, ``exclude`` and ``candidates`` as score masks.

A request names items by external id; :func:`item_filter` checks the request against
the catalogue once and returns an :class:`ItemFilter` of internal indices, which masks
each batch of scores with ``-inf`` (what :func:`eval.ranking.iter_topk` never returns).
Seen items are masked by ``iter_topk``'s ``exclude`` matrix instead, widened by
:func:`pad_seen` to items added after training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["ItemFilter", "item_filter", "pad_seen"]


@dataclass(frozen=True)
class ItemFilter:
    """Items a request bans and, when it restricts the catalogue, the only items it allows (internal indices)."""

    banned: Optional[np.ndarray] = None
    allowed: Optional[np.ndarray] = None

    @property
    def empty(self) -> bool:
        """True when the request neither bans nor restricts (the fast top-K paths apply)."""
        return self.banned is None and self.allowed is None

    def apply(self, scores: torch.Tensor) -> torch.Tensor:
        """A copy of ``scores [B, n]`` with ``-inf`` on banned items and on items outside ``allowed``."""
        scores = scores.clone()
        if self.allowed is not None:
            keep = torch.zeros(scores.shape[1], dtype=torch.bool, device=scores.device)
            keep[torch.as_tensor(self.allowed, device=scores.device)] = True
            scores[:, ~keep] = -torch.inf
        if self.banned is not None and len(self.banned):
            scores[:, torch.as_tensor(self.banned, device=scores.device)] = -torch.inf
        return scores


def item_filter(
    k: Any,
    num_items: int,
    item_index: Callable[[Iterable[Any]], np.ndarray],
    exclude: Optional[Sequence[Any]],
    candidates: Optional[Sequence[Any]],
) -> ItemFilter:
    """Check a request's ``k``, ``exclude`` and ``candidates`` (external ids) and return its filter.

    Args:
        k: the list length asked for.
        num_items: the catalogue size (items added after training included).
        item_index: external ids -> internal indices, raising on unknown ids.
        exclude: item ids never to recommend (``None``: none).
        candidates: the only item ids to rank (``None``: the whole catalogue).

    Raises:
        ValueError: a bad ``k``, an empty ``candidates``, or ``k`` above the candidates
            left after ``exclude``; whatever ``item_index`` raises for unknown ids.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > num_items:
        raise ValueError(f"k={k} is larger than the catalogue ({num_items} items)")
    banned = None if exclude is None else item_index(exclude)
    allowed = None if candidates is None else item_index(candidates)
    if allowed is not None and not len(allowed):
        raise ValueError("candidates is empty; pass None to rank the whole catalogue")
    if allowed is not None:
        pool = np.setdiff1d(allowed, banned) if banned is not None else np.unique(allowed)
        if k > len(pool):
            raise ValueError(f"k={k} is larger than the {len(pool)} candidate items left after exclude; pass k <= {len(pool)}")
    return ItemFilter(banned, allowed)


def pad_seen(rows: sp.csr_matrix, num_items: int) -> sp.csr_matrix:
    """``rows`` (users x known items) widened with empty columns to ``num_items`` (items added after training)."""
    extra = num_items - rows.shape[1]
    return sp.hstack([rows, sp.csr_matrix((rows.shape[0], extra))]).tocsr() if extra else rows
