"""The one memory-bounded top-K routine: scorer -> per-user top-K with seen items masked.

The evaluator and the serving layer both call :func:`iter_topk`; it scores users in
batches so memory stays ``O(batch_size * num_items)`` whatever the number of users,
and keeps everything but the final ``[B, k]`` result on the scorer's device.

Masking never writes into the scorer's output (a learner may hand back a cached
buffer). For a row with ``m`` excluded items it takes ``torch.topk`` of ``k + m``
candidates and drops the excluded ones, which costs far less than copying the
row; rows with many excluded items (``k + m`` above :data:`CANDIDATE_LIMIT`) are
copied, their excluded items set to ``-inf``, and ranked with plain ``topk(k)``.

Exactly tied scores are ordered by item index, lower first: ``torch.topk`` alone picks
among ties as its kernel goes (differently for another ``k``, batch or device), so the
candidates are reordered by (score, item) and a row whose k-th score ties with an item
outside the candidates is ranked whole with a stable sort. The lists are thus the same
whatever the batch size, the engine (in process, Spark) or the device.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Union

import numpy as np
import scipy.sparse as sp
import torch

from eval.checks import positive_int
from eval.progress import progress_bar

__all__ = ["CANDIDATE_LIMIT", "Scorer", "TopK", "as_user_array", "iter_topk", "positive_int", "topk"]

Scorer = Callable[[np.ndarray], Union[np.ndarray, torch.Tensor]]
"""``scorer(users int64 [B]) -> scores [B, num_items]`` (numpy or torch, any device); higher is better."""

CANDIDATE_LIMIT = 512
"""Rows needing more than this many ``topk`` candidates are masked on a copy instead."""


@dataclass(frozen=True)
class TopK:
    """Precomputed ranked lists, e.g. read from a recommendations file.

    Args:
        users: internal user indices, int64 ``[n]``, no repeats.
        items: internal item indices by rank, int64 ``[n, k]``; a list shorter
            than ``k`` is padded at the end with ``-1``.
        scores: optional float32 ``[n, k]`` (``-inf`` at padding); carried, not used
            by the metrics.

    Raises:
        ValueError: shapes disagree, a user repeats, an item index is below -1,
            padding is followed by an item, or an item repeats within a list.
    """

    users: np.ndarray
    items: np.ndarray
    scores: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        users = as_user_array(self.users, name="TopK.users")
        items = np.asarray(self.items)
        if items.ndim != 2 or items.shape[0] != len(users):
            raise ValueError(f"TopK.items must have shape [{len(users)}, k] (one row per user), got {items.shape}")
        if not np.issubdtype(items.dtype, np.integer):
            raise ValueError(f"TopK.items must hold integer item indices, got dtype {items.dtype}")
        items = items.astype(np.int64)
        repeated = _first_repeat(users)
        if repeated is not None:
            raise ValueError(f"TopK.users lists user index {repeated} more than once")
        if items.size and items.min() < -1:
            raise ValueError(f"TopK.items holds {items.min()}; item indices are >= 0 and -1 marks padding")
        listed = items >= 0
        gap = (~listed[:, :-1] & listed[:, 1:]).any(axis=1)
        if gap.any():
            row = int(np.flatnonzero(gap)[0])
            raise ValueError(f"TopK.items row {row} (user {users[row]}) has an item after -1 padding; pad at the end")
        ordered = np.sort(items, axis=1)
        dup = ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(axis=1)
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            raise ValueError(f"TopK.items row {row} (user {users[row]}) lists an item twice")
        scores = self.scores
        if scores is not None:
            scores = np.asarray(scores, dtype=np.float32)
            if scores.shape != items.shape:
                raise ValueError(f"TopK.scores has shape {scores.shape}, expected {items.shape} like TopK.items")
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "scores", scores)

    @property
    def k(self) -> int:
        """Columns of :attr:`items` (the longest list it can hold)."""
        return int(self.items.shape[1])


def _first_repeat(values: np.ndarray) -> Optional[int]:
    uniques, counts = np.unique(values, return_counts=True)
    return int(uniques[counts > 1][0]) if (counts > 1).any() else None


def as_user_array(users, *, name: str = "users", num_users: Optional[int] = None) -> np.ndarray:
    """Validate a 1-d array of internal user indices and return it as int64.

    Raises:
        ValueError: not 1-d, not integers, negative, or ``>= num_users``.
    """
    array = np.asarray(users)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of user indices, got shape {array.shape}")
    if array.size == 0:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer user indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    low, high = int(array.min()), int(array.max())
    if low < 0 or (num_users is not None and high >= num_users):
        bound = f"[0, {num_users})" if num_users is not None else ">= 0"
        raise ValueError(f"{name} holds indices outside {bound}: min {low}, max {high}")
    return array


def _as_score_tensor(result, n_rows: int, num_items: Optional[int]) -> torch.Tensor:
    if isinstance(result, np.ndarray):
        if not np.issubdtype(result.dtype, np.number):
            raise TypeError(f"the scorer returned a numpy array of dtype {result.dtype}; expected numbers")
        if not result.flags.c_contiguous:
            result = np.ascontiguousarray(result)
        with warnings.catch_warnings():
            # Read-only arrays are fine: nothing below writes into the scorer's output.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            result = torch.from_numpy(result)
    elif not isinstance(result, torch.Tensor):
        raise TypeError(
            f"the scorer returned {type(result).__name__}; expected a numpy array or torch tensor [B, num_items]"
        )
    if result.dim() != 2 or result.shape[0] != n_rows:
        raise ValueError(
            f"the scorer returned shape {tuple(result.shape)} for {n_rows} users; expected [{n_rows}, num_items]"
        )
    if num_items is not None and result.shape[1] != num_items:
        raise ValueError(f"the scorer returned {result.shape[1]} columns; expected one per item ({num_items})")
    if not result.is_floating_point():
        result = result.float()
    return result.detach()


def _nan_error(users: np.ndarray, rows: torch.Tensor) -> ValueError:
    bad = users[rows.nonzero().flatten().cpu().numpy()]
    return ValueError(f"the scorer returned NaN scores for users {bad[:5].tolist()} (of {len(bad)} in the batch)")


def _is_excluded(candidates: torch.Tensor, excluded_keys: np.ndarray, num_items: int) -> torch.Tensor:
    """``out[b, j]``: is ``(b, candidates[b, j])`` among ``excluded_keys`` (``row * num_items + item``)?"""
    if not len(excluded_keys):
        return torch.zeros(candidates.shape, dtype=torch.bool, device=candidates.device)
    # Binary search: torch.isin falls back to an all-pairs comparison at these sizes on CPU.
    keys = torch.as_tensor(np.sort(excluded_keys), device=candidates.device)
    query = candidates + torch.arange(len(candidates), device=candidates.device).unsqueeze(1) * num_items
    found = torch.searchsorted(keys, query).clamp_(max=len(keys) - 1)
    return keys[found] == query


def _index_order(values: torch.Tensor, items: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """Column order of each row: usable entries first, by value descending, exact ties by item index ascending."""
    by_item = torch.argsort(items, dim=1)  # the stable sort below keeps this order among equal values
    key = values.gather(1, by_item).float().masked_fill(~usable.gather(1, by_item), float("-inf"))
    return by_item.gather(1, torch.sort(key, dim=1, descending=True, stable=True).indices)


def _full_row_topk(rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` of every row of ``rows`` (excluded items already ``-inf``), exact ties by item index ascending.

    ``torch.topk`` picks among tied values as its kernel goes (it differs with ``k``, the batch and the
    device); where the k-th value ties with an item ``topk`` left out, that row is sorted whole, stably.
    """
    values, items = torch.topk(rows, k, dim=1)
    kth = values[:, -1:]
    spill = ((rows == kth).sum(dim=1) > (values == kth).sum(dim=1)) & torch.isfinite(kth[:, 0])
    if spill.any():
        where = spill.nonzero().squeeze(1)
        full_values, full_items = torch.sort(rows[where], dim=1, descending=True, stable=True)
        values[where], items[where] = full_values[:, :k], full_items[:, :k]
    order = _index_order(values, items, torch.ones_like(items, dtype=torch.bool))
    return values.gather(1, order), items.gather(1, order)


def _batch_topk(
    scores: torch.Tensor, k: int, users: np.ndarray, excluded: Optional[sp.csr_matrix]
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (``k <= num_items``) of every row of ``scores`` minus the row's excluded items.

    Exactly tied scores are ordered by item index (lower first), whatever the batch, ``k`` or device.
    """
    n_rows, num_items = scores.shape
    device = scores.device
    out_items = torch.full((n_rows, k), -1, dtype=torch.int64, device=device)
    out_scores = torch.full((n_rows, k), float("-inf"), dtype=torch.float32, device=device)
    if excluded is None:
        counts = np.zeros(n_rows, dtype=np.int64)
        entry_rows = entry_cols = np.zeros(0, dtype=np.int64)
    else:
        counts = np.diff(excluded.indptr).astype(np.int64)
        entry_rows = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
        entry_cols = excluded.indices.astype(np.int64)
    heavy = counts + k > CANDIDATE_LIMIT

    if not heavy.all():
        n_candidates = min(k + int(counts[~heavy].max()), num_items)
        values, candidates = torch.topk(scores, n_candidates, dim=1)
        masked = _is_excluded(candidates, entry_rows * num_items + entry_cols, num_items)
        if torch.isnan(values).logical_and(~masked).any():
            raise _nan_error(users, (torch.isnan(values) & ~masked).any(dim=1))
        usable = ~masked & (values != float("-inf"))
        pick = _index_order(values, candidates, usable)[:, :k]
        keep = usable.gather(1, pick)
        items = candidates.gather(1, pick).masked_fill(~keep, -1)
        top = values.gather(1, pick).float().masked_fill(~keep, float("-inf"))
        if n_candidates < num_items:
            # The k-th pick ties with the last candidate: items past the candidates may tie too.
            spill = keep[:, -1] & (top[:, -1] == values[:, -1].float())
            heavy = heavy | spill.cpu().numpy()
        if not heavy.any():
            return items.cpu().numpy(), top.cpu().numpy()
        light = torch.as_tensor(~heavy, device=device)
        out_items[light] = items[light]
        out_scores[light] = top[light]

    if heavy.any():
        rows = np.flatnonzero(heavy)
        local = np.full(n_rows, -1, dtype=np.int64)
        local[rows] = np.arange(len(rows))
        in_heavy = heavy[entry_rows]
        copy = scores[torch.as_tensor(rows, device=device)]
        copy[
            torch.as_tensor(local[entry_rows[in_heavy]], device=device),
            torch.as_tensor(entry_cols[in_heavy], device=device),
        ] = float("-inf")
        values, candidates = _full_row_topk(copy, k)
        if torch.isnan(values).any():  # NaN ranks above everything, so a row holding one shows it here
            raise _nan_error(users[rows], torch.isnan(values).any(dim=1))
        keep = values != float("-inf")
        heavy_rows = torch.as_tensor(rows, device=device)
        out_items[heavy_rows] = candidates.masked_fill(~keep, -1)
        out_scores[heavy_rows] = values.float().masked_fill(~keep, float("-inf"))

    return out_items.cpu().numpy(), out_scores.cpu().numpy()


def iter_topk(
    scorer: Scorer,
    users,
    k: int,
    *,
    exclude: Optional[sp.csr_matrix] = None,
    batch_size: int = 1024,
    show_progress: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Stream the top-``k`` items of every user, one batch at a time.

    Items whose score is ``-inf`` count as not recommendable. When fewer than
    ``k`` items are left for a user (after masking, or ``k > num_items``) the row
    is padded at the end with item ``-1`` and score ``-inf``. Exactly tied scores
    are ordered by item index, lower first, on every device and for every batch.

    Args:
        scorer: ``scorer(users int64 [B]) -> [B, num_items]`` numpy array or torch
            tensor (any device; masking and top-K run there, only ``[B, k]`` comes
            back). Its output is never modified.
        users: internal user indices to rank for, ``[n]``, in output order.
        k: list length, >= 1.
        exclude: users x items CSR of items never to recommend (e.g. train items);
            row ``u`` masks user ``u``. Values are ignored; stored entries count.
        batch_size: users scored per call of ``scorer``; memory is about
            ``batch_size * num_items`` scores.
        show_progress: tqdm progress bar over users.

    Yields:
        ``(users_batch int64 [B], items int64 [B, k], scores float32 [B, k])``.

    Raises:
        ValueError: bad ``k``/``batch_size``/``users``/``exclude``; the scorer
            returned the wrong shape, a different width than ``exclude``, or NaN
            for an unmasked item.
        TypeError: the scorer returned neither a numpy array nor a torch tensor.
    """
    k = positive_int(k, "k")
    batch_size = positive_int(batch_size, "batch_size")
    num_items = None
    if exclude is not None:
        if not sp.issparse(exclude):
            raise TypeError(f"exclude must be a scipy sparse users x items matrix, got {type(exclude).__name__}")
        exclude = sp.csr_matrix(exclude)
        num_items = exclude.shape[1]
    users = as_user_array(users, num_users=None if exclude is None else exclude.shape[0])
    with progress_bar(total=len(users), unit="user", desc="top-k", disable=not show_progress) as bar:
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            scores = _as_score_tensor(scorer(batch), len(batch), num_items)
            num_items = scores.shape[1]
            with torch.no_grad():
                items, values = _batch_topk(
                    scores, min(k, num_items), batch, None if exclude is None else exclude[batch]
                )
            if k > num_items:
                pad = k - num_items
                items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
                values = np.pad(values, ((0, 0), (0, pad)), constant_values=-np.inf)
            bar.update(len(batch))
            yield batch, items, values


def topk(
    scorer: Scorer,
    users,
    k: int,
    *,
    exclude: Optional[sp.csr_matrix] = None,
    batch_size: int = 1024,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items of every user in ``users``, collected from :func:`iter_topk`.

    Args: as :func:`iter_topk`.

    Returns:
        ``(items int64 [n, k], scores float32 [n, k])`` in the order of ``users``;
        ``-1`` / ``-inf`` pad lists with fewer than ``k`` recommendable items.
    """
    parts = list(iter_topk(scorer, users, k, exclude=exclude, batch_size=batch_size, show_progress=show_progress))
    if not parts:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
