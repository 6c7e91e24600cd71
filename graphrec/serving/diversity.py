"""Diversity re-ranking (Maximal Marginal Relevance) and intra-list diversity.

:func:`mmr_rerank` turns each user's candidate list (say the top 100 by score)
into a top-``k`` that trades relevance for variety. Items are picked greedily;
at each step the next item maximises

    (1 - lambda_) * rel(i) - lambda_ * max_{j already picked} cos(v_i, v_j)

where ``rel`` is the candidate's score min-max normalised to [0, 1] within the
user's list and ``v`` are item vectors (e.g. the model's item embeddings). The
first pick is always the most relevant candidate. ``lambda_ = 0`` reproduces the
plain top-``k`` by score; larger values favour items unlike those already in
the list. The loop runs ``k`` steps, each vectorised over the whole batch.

:func:`intra_list_diversity` measures the result: the mean pairwise cosine
distance within each list, averaged over lists.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from eval.checks import positive_int

__all__ = ["intra_list_diversity", "mmr_rerank"]

ArrayLike = Union[np.ndarray, torch.Tensor]

_ILD_CHUNK = 4096  # lists per block: memory ~ chunk * k * (k + d) doubles


def _tensor(values: ArrayLike, name: str, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().to(dtype)
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    return torch.as_tensor(array).to(dtype)


def _unit_vectors(item_vectors: ArrayLike) -> torch.Tensor:
    vectors = _tensor(item_vectors, "item_vectors", torch.float32)
    if vectors.dim() != 2:
        raise ValueError(f"item_vectors must be 2-d [n_items, d], got shape {tuple(vectors.shape)}")
    if not torch.isfinite(vectors).all():
        raise ValueError("item_vectors holds NaN or infinite values")
    # A zero vector stays zero: it is similar to nothing (cosine 0).
    return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _check_items(items: torch.Tensor, n_items: int, name: str) -> None:
    if items.numel() and (int(items.min()) < -1 or int(items.max()) >= n_items):
        raise ValueError(
            f"{name} holds indices outside [-1, {n_items}) (item_vectors has {n_items} rows; -1 marks padding)"
        )


def mmr_rerank(
    candidate_items: ArrayLike,
    candidate_scores: ArrayLike,
    item_vectors: ArrayLike,
    k: int,
    lambda_: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank each row's candidates by Maximal Marginal Relevance.

    Candidates whose item is ``-1`` or whose score is ``-inf`` (the padding of
    :func:`eval.ranking.iter_topk`) are never picked. Ties in the MMR value go to
    the earlier candidate column, so with ``lambda_ = 0`` the result equals a
    stable sort of the candidates by score, descending.

    Args:
        candidate_items: internal item indices ``[B, C]`` (int), ``-1`` = padding.
        candidate_scores: relevance scores ``[B, C]``, higher is better.
        item_vectors: ``[n_items, d]`` item vectors; similarity is their cosine.
        k: list length to return, >= 1 (``k > C`` pads the rest).
        lambda_: weight of diversity in [0, 1]; 0 = relevance only.

    Returns:
        ``(items int64 [B, k], scores float32 [B, k])``: picked items in pick
        order and their original scores; rows with fewer than ``k`` usable
        candidates end with ``-1`` / ``-inf``.

    Raises:
        ValueError: shapes disagree, ``lambda_`` outside [0, 1], indices outside
            ``item_vectors``, NaN scores or vectors.
        TypeError: non-numeric input or a non-int ``k``.
    """
    k = positive_int(k, "k")
    lambda_ = float(lambda_)
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_ must lie in [0, 1], got {lambda_}")
    items = _tensor(candidate_items, "candidate_items", torch.int64)
    scores = _tensor(candidate_scores, "candidate_scores", torch.float64)
    if items.dim() != 2:
        raise ValueError(f"candidate_items must be 2-d [B, C], got shape {tuple(items.shape)}")
    if scores.shape != items.shape:
        raise ValueError(
            f"candidate_scores has shape {tuple(scores.shape)}, expected {tuple(items.shape)} like candidate_items"
        )
    if torch.isnan(scores).any():
        raise ValueError("candidate_scores holds NaN")
    unit = _unit_vectors(item_vectors)
    _check_items(items, unit.shape[0], "candidate_items")
    n_rows, n_cand = items.shape
    out_items = torch.full((n_rows, k), -1, dtype=torch.int64)
    out_scores = torch.full((n_rows, k), float("-inf"), dtype=torch.float32)
    if n_rows == 0 or n_cand == 0:
        return out_items.numpy(), out_scores.numpy()

    with torch.no_grad():
        usable = (items >= 0) & (scores != float("-inf"))
        # Relevance min-max normalised over each row's usable candidates (all equal -> 0).
        low = torch.where(usable, scores, torch.full_like(scores, float("inf"))).amin(dim=1, keepdim=True)
        high = torch.where(usable, scores, torch.full_like(scores, float("-inf"))).amax(dim=1, keepdim=True)
        span = (high - low).clamp_min(1e-12)
        relevance = torch.where(usable, (scores - low) / span, torch.zeros_like(scores))
        vectors = unit[items.clamp_min(0)]  # [B, C, d]
        max_sim = torch.zeros((n_rows, n_cand), dtype=torch.float64)
        available = usable.clone()
        rows = torch.arange(n_rows)
        for step in range(min(k, n_cand)):
            if step == 0:
                value = relevance.clone()
            else:
                value = (1.0 - lambda_) * relevance - lambda_ * max_sim
            value = value.masked_fill(~available, float("-inf"))
            pick = value.argmax(dim=1)  # first maximum: ties go to the earlier column
            found = available[rows, pick]
            if not found.any():
                break
            out_items[found, step] = items[rows, pick][found]
            out_scores[found, step] = scores[rows, pick][found].float()
            available[rows, pick] = False
            picked = vectors[rows, pick]  # [B, d]
            sim = torch.bmm(vectors, picked.unsqueeze(2)).squeeze(2).double()
            max_sim = sim if step == 0 else torch.maximum(max_sim, sim)
    return out_items.numpy(), out_scores.numpy()


def intra_list_diversity(items: ArrayLike, item_vectors: ArrayLike) -> float:
    """Mean pairwise cosine distance (1 - cosine) within each list, averaged over lists.

    Padding (``-1``) is ignored; lists with fewer than two items do not count.

    Args:
        items: internal item indices ``[B, k]``, ``-1`` = padding.
        item_vectors: ``[n_items, d]`` item vectors.

    Returns:
        The average over lists with at least two items; ``nan`` when there are none.
        Ranges over [0, 2] (0: every list holds identical directions).

    Raises:
        ValueError: ``items`` not 2-d or holding indices outside ``item_vectors``.
    """
    items_t = _tensor(items, "items", torch.int64)
    if items_t.dim() != 2:
        raise ValueError(f"items must be 2-d [B, k], got shape {tuple(items_t.shape)}")
    unit = _unit_vectors(item_vectors)
    _check_items(items_t, unit.shape[0], "items")
    k = items_t.shape[1]
    upper = torch.ones((k, k), dtype=torch.bool).triu(diagonal=1)
    total, lists = 0.0, 0
    with torch.no_grad():
        for start in range(0, items_t.shape[0], _ILD_CHUNK):
            chunk = items_t[start : start + _ILD_CHUNK]
            valid = chunk >= 0
            vectors = unit[chunk.clamp_min(0)].double()
            distance = 1.0 - torch.bmm(vectors, vectors.transpose(1, 2))  # [b, k, k]
            pairs = valid.unsqueeze(2) & valid.unsqueeze(1) & upper
            n_pairs = pairs.sum(dim=(1, 2))
            counted = n_pairs > 0
            per_list = (distance * pairs).sum(dim=(1, 2)) / n_pairs.clamp_min(1)
            total += float(per_list[counted].sum())
            lists += int(counted.sum())
    return total / lists if lists else float("nan")
