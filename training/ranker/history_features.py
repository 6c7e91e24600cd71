"""The history-pair feature groups of the hybrid ranker: content, kg and context.

Each (user, candidate) pair is compared with the user's history items: text cosines
(``content.*``), shared entities (``kg.*``) and the times of the history items that
explain the candidate (``ctx.*``); training/ranker/features.py documents every
feature and assembles them with the per-item and per-source groups. Work is chunked
so that no ``[pairs, history]`` block exceeds a few MiB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional

import numpy as np
import scipy.sparse as sp
import torch

if TYPE_CHECKING:
    from training.ranker.features import ItemStats

__all__ = ["content_features", "context_columns", "kg_features"]

_DAY = 86400.0


def _expand_entities(items: np.ndarray, item_entities: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """For each position in ``items``, its entities: (position, entity) arrays."""
    starts = item_entities.indptr[items]
    degrees = item_entities.indptr[items + 1] - starts
    position = np.repeat(np.arange(len(items)), degrees)
    offsets = np.arange(len(position)) - np.repeat(np.cumsum(degrees) - degrees, degrees)
    return position, item_entities.indices[np.repeat(starts, degrees) + offsets].astype(np.int64)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, default: float) -> np.ndarray:
    """``values[keys == q]`` for each query key (``keys`` sorted, unique), else ``default``."""
    if not len(keys):
        return np.full(len(query), default, dtype=np.float64)
    at = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
    return np.where(keys[at] == query, values[at], default)


def kg_features(
    rows: np.ndarray, items: np.ndarray, history: sp.csr_matrix, times: Optional[sp.csr_matrix], stats: ItemStats
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """kg.overlap, kg.count, kg.missing and the latest time of an entity-sharing history item.

    Sparse products over the batch: ``held = history @ item_entities`` counts the
    history items holding each entity; ``held @ item_entities.T`` sums those counts over
    each item's entities (``kg.count``) and the same product of ``held > 0`` counts the
    item's entities some history item holds (``kg.overlap``); the pairs read both. The
    latest time needs a maximum, not a sum: per chunk of rows, a dense ``[rows, entities]``
    table of the latest time of a holding history item, read for every (pair, entity of
    its item). Chunks keep a table under :data:`_CHUNK_ELEMENTS` entries.
    """
    item_entities = stats.item_entities
    num_entities, num_items = item_entities.shape[1], item_entities.shape[0]
    degree = np.diff(item_entities.indptr)[items].astype(np.float64)
    binary = history.copy()
    binary.data[:] = 1.0
    held = binary @ item_entities  # [B, E]
    if stats.entity_shared is not None:  # a small catalogue: dense products per chunk of rows
        count_sum, overlap_sum = _kg_sums_dense(rows, items, held, item_entities)
    else:
        covered = held.copy()
        covered.data[:] = 1.0
        pair_keys = rows.astype(np.int64) * num_items + items
        count_sum = _pair_lookup(held @ item_entities.T, pair_keys)
        overlap_sum = _pair_lookup(covered @ item_entities.T, pair_keys)
    safe = np.maximum(degree, 1.0)
    missing = (degree == 0) | (np.diff(history.indptr)[rows] == 0)
    latest = np.full(len(items), -np.inf)
    if times is not None and len(items) and num_entities:
        if stats.entity_shared is not None:
            latest = _latest_shared_time(rows, items, history, times, stats.entity_shared)
        else:
            latest = _latest_entity_time(rows, items, times, item_entities)
    return (
        torch.from_numpy((overlap_sum / safe).astype(np.float32)),
        torch.from_numpy(np.log1p(count_sum / safe).astype(np.float32)),
        torch.from_numpy(missing.astype(np.float32)),
        torch.from_numpy(latest),
    )


def _kg_sums_dense(
    rows: np.ndarray, items: np.ndarray, held: sp.csr_matrix, item_entities: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray]:
    """``(held @ item_entities.T)`` and ``((held > 0) @ item_entities.T)`` at the pairs, float64.

    Per chunk of rows, ``held`` as a dense ``[rows, entities]`` block and one sparse-dense
    product ``item_entities @ block.T`` (``nnz(item_entities) x rows``): cheaper than the
    sparse-sparse products and their pair lookup when the catalogue is small.
    """
    num_rows, num_entities = held.shape
    count_sum, overlap_sum = np.zeros(len(items)), np.zeros(len(items))
    step = max(1, _CHUNK_ELEMENTS // max(num_entities, 1))
    bounds = np.searchsorted(rows, np.arange(0, num_rows + step, step))
    for chunk, start in enumerate(range(0, num_rows, step)):
        lo, hi = bounds[chunk], bounds[chunk + 1]
        if lo == hi:
            continue
        block = np.ascontiguousarray(held[start : start + step].toarray(order="F").T, dtype=np.float32)  # [E, b]
        pair_rows, pair_items = rows[lo:hi] - start, items[lo:hi]
        count_sum[lo:hi] = (item_entities @ block)[pair_items, pair_rows]
        overlap_sum[lo:hi] = (item_entities @ (block > 0).astype(np.float32))[pair_items, pair_rows]
    return count_sum, overlap_sum


def _pair_lookup(matrix: sp.spmatrix, pair_keys: np.ndarray) -> np.ndarray:
    """``matrix[row, item]`` for keys ``row * num_columns + item`` (0 where not stored), float64."""
    matrix = sp.csr_matrix(matrix)
    matrix.sum_duplicates()
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * matrix.shape[1]
    return _lookup(keys + matrix.indices, matrix.data.astype(np.float64), pair_keys, 0.0)


def _latest_entity_time(
    rows: np.ndarray, items: np.ndarray, times: sp.csr_matrix, item_entities: sp.csr_matrix
) -> np.ndarray:
    """Per pair, the latest timestamp of a history item sharing an entity with the item (-inf: none)."""
    num_entities = item_entities.shape[1]
    position, entity = _expand_entities(items, item_entities)
    entity_time = np.full(len(position), -np.inf)
    t = times.tocoo()
    keep = np.isfinite(t.data)
    t_rows, t_cols, t_data = t.row[keep].astype(np.int64), t.col[keep].astype(np.int64), t.data[keep]
    pair_rows = rows[position]
    step = max(1, _CHUNK_ELEMENTS // num_entities)
    bounds = np.searchsorted(pair_rows, np.arange(0, times.shape[0] + step, step))
    for chunk, start in enumerate(range(0, times.shape[0], step)):
        lo, hi = bounds[chunk], bounds[chunk + 1]
        if lo == hi:
            continue
        stop = min(start + step, times.shape[0])
        in_chunk = (t_rows >= start) & (t_rows < stop)
        hist_pos, hist_entity = _expand_entities(t_cols[in_chunk], item_entities)
        table = np.full((stop - start, num_entities), -np.inf)
        np.maximum.at(table, ((t_rows[in_chunk] - start)[hist_pos], hist_entity), t_data[in_chunk][hist_pos])
        entity_time[lo:hi] = table[pair_rows[lo:hi] - start, entity[lo:hi]]
    latest = np.full(len(items), -np.inf)
    degree = np.bincount(position, minlength=len(items))
    nonempty = np.flatnonzero(degree > 0)
    if len(nonempty):  # a pair's entities are contiguous: the latest over each pair's segment
        latest[nonempty] = np.maximum.reduceat(entity_time, (np.cumsum(degree) - degree)[nonempty])
    return latest


def _latest_shared_time(
    rows: np.ndarray, items: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix, shared: torch.Tensor
) -> np.ndarray:
    """:func:`_latest_entity_time` from the item-item shared-entity table: per pair, a masked
    maximum over the user's history items of a ``[b, candidates, history]`` gather."""
    latest = torch.full((len(items),), float("-inf"), dtype=torch.float64)
    hist_items = torch.from_numpy(history.indices.astype(np.int64))
    hist_times = torch.from_numpy(_history_times(history, times)).nan_to_num(nan=float("-inf"))
    items_t = torch.from_numpy(items)
    for pair_index, pair_mask, hist_index, hist_mask in _row_blocks(rows, history, 1):
        sharing = shared[items_t[pair_index].unsqueeze(2), hist_items[hist_index].unsqueeze(1)]
        sharing &= hist_mask.unsqueeze(1)
        block_times = hist_times[hist_index].unsqueeze(1).expand(sharing.shape)
        best = torch.where(sharing, block_times, float("-inf")).amax(dim=2)
        latest[pair_index[pair_mask]] = best[pair_mask]
    return latest.numpy()


def _row_blocks(
    rows: np.ndarray, history: sp.csr_matrix, dim: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Padded ``(pair_index, pair_mask, hist_index, hist_mask)`` blocks of the rows with pairs and history.

    Rows are sorted by history size and cut by :func:`_chunks` so that a block's padded
    ``[b, candidates, history]`` product (and ``dim``-wide gathers) stays under
    :data:`_CHUNK_ELEMENTS`; ``pair_index`` indexes the pairs, ``hist_index`` ``history.indices``.
    """
    bounds = np.searchsorted(rows, np.arange(history.shape[0] + 1))
    pair_counts = np.diff(bounds)
    hist_counts = np.diff(history.indptr)
    active = np.flatnonzero((pair_counts > 0) & (hist_counts > 0))
    if not len(active):
        return
    active = active[np.argsort(hist_counts[active], kind="stable")]
    for chunk in _chunks(pair_counts[active], hist_counts[active], dim):
        chunk_rows = active[chunk]
        pair_index, pair_mask = _padded(bounds[chunk_rows], pair_counts[chunk_rows])
        hist_index, hist_mask = _padded(history.indptr[chunk_rows], hist_counts[chunk_rows])
        yield pair_index, pair_mask, hist_index, hist_mask


def content_features(
    rows: np.ndarray, items: np.ndarray, history: sp.csr_matrix, times: Optional[sp.csr_matrix], stats: ItemStats
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """content.max, content.mean, content.missing and the time of the most similar history item.

    Vectorised over the batch: rows are sorted by history size and cut into chunks whose
    padded ``[b, candidates, history]`` cosine block stays under :data:`_CHUNK_ELEMENTS`;
    each chunk is one batched matrix product, so the cost is the work itself
    (``sum over rows of candidates x history x d``), not a Python step per user.
    """
    size = len(items)
    best, mean = torch.zeros(size), torch.zeros(size)
    missing = torch.ones(size)
    best_time = torch.full((size,), float("-inf"), dtype=torch.float64)
    if stats.text is None or not size:
        return best, mean, missing, best_time
    hist_items = torch.from_numpy(history.indices.astype(np.int64))
    hist_times = torch.from_numpy(_history_times(history, times)) if times is not None else None
    items_t = torch.from_numpy(items)
    for pair_index, pair_mask, hist_index, hist_mask in _row_blocks(rows, history, stats.text.shape[1]):
        if stats.text_cosine is not None:  # a gather from the item-item table: no product per pair
            cosine = stats.text_cosine[items_t[pair_index].unsqueeze(2), hist_items[hist_index].unsqueeze(1)]
        else:
            candidate_text = stats.text[items_t[pair_index]]  # [b, C, d]
            history_text = stats.text[hist_items[hist_index]]  # [b, H, d]
            cosine = torch.bmm(candidate_text, history_text.transpose(1, 2))  # [b, C, H]
        valid = hist_mask.unsqueeze(1)
        top, arg = cosine.masked_fill(~valid, float("-inf")).max(dim=2)
        total = cosine.masked_fill(~valid, 0.0).sum(dim=2)
        where = pair_index[pair_mask]
        best[where] = top[pair_mask]
        mean[where] = (total / hist_mask.sum(dim=1, keepdim=True))[pair_mask]
        missing[where] = 0.0
        if hist_times is not None:
            best_time[where] = hist_times[hist_index.gather(1, arg)][pair_mask]
    return best, mean, missing, best_time


_CHUNK_ELEMENTS = 1 << 22
"""Upper bound on a content chunk's padded cosine block (and gathered text) in floats."""


def _chunks(pair_counts: np.ndarray, hist_counts: np.ndarray, dim: int) -> list[slice]:
    """Consecutive slices of rows (sorted by history size) whose padded blocks fit the budget."""
    chunks, start, widest = [], 0, 0
    for end in range(len(pair_counts)):
        widest_now = max(widest, int(pair_counts[end]))
        rows = end - start + 1
        block = rows * widest_now * int(hist_counts[end])
        gathered = rows * (widest_now + int(hist_counts[end])) * dim
        if end > start and max(block, gathered) > _CHUNK_ELEMENTS:
            chunks.append(slice(start, end))
            start, widest_now = end, int(pair_counts[end])
        widest = widest_now
    chunks.append(slice(start, len(pair_counts)))
    return chunks


def _padded(starts: np.ndarray, counts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``[b, max(counts)]`` indices ``start + column`` (0 in padding) and the validity mask."""
    column = torch.arange(int(counts.max()))
    mask = column.unsqueeze(0) < torch.from_numpy(counts).unsqueeze(1)
    index = torch.where(mask, torch.from_numpy(starts.astype(np.int64)).unsqueeze(1) + column, 0)
    return index, mask


def _history_times(history: sp.csr_matrix, times: sp.csr_matrix) -> np.ndarray:
    """Timestamp of every stored entry of ``history`` (aligned with ``history.indices``), NaN where absent."""
    num_items = history.shape[1]
    t = times.tocoo()
    keys = t.row.astype(np.int64) * num_items + t.col
    order = np.argsort(keys, kind="stable")
    rows = np.repeat(np.arange(history.shape[0], dtype=np.int64), np.diff(history.indptr))
    return _lookup(keys[order], t.data[order], rows * num_items + history.indices, np.nan)


def _log_days(seconds: torch.Tensor) -> torch.Tensor:
    return torch.log1p(seconds.clamp(min=0.0) / _DAY).float()


def context_columns(
    rows: np.ndarray,
    items: np.ndarray,
    times: Optional[sp.csr_matrix],
    stats: ItemStats,
    now: Optional[float],
    entity_time: torch.Tensor,
    best_time: torch.Tensor,
) -> list[torch.Tensor]:
    size = len(items)
    if times is None or now is None:
        return [torch.zeros(size)] * 6 + [torch.ones(size)]
    t = times.tocoo()
    timed = np.isfinite(t.data)
    user_last = np.full(times.shape[0], -np.inf)
    np.maximum.at(user_last, t.row[timed], t.data[timed])
    user_last[np.isinf(user_last)] = np.nan
    last = torch.from_numpy(user_last[rows])
    oldest = np.nanmin(stats.last_time) if np.isfinite(stats.last_time).any() else now
    item_last = torch.from_numpy(np.where(np.isnan(stats.last_time), oldest, stats.last_time)[items])
    has_last = torch.isfinite(last)
    debut = (torch.from_numpy(stats.first_time[items]) - last) / _DAY
    has_debut = torch.isfinite(debut)
    has_entity = torch.isfinite(entity_time) & has_last
    has_best = torch.isfinite(best_time) & has_last
    zero = torch.zeros(size)
    return [
        _log_days(now - item_last),
        torch.where(has_last, _log_days(now - last), zero),
        torch.where(has_debut, torch.sign(debut) * torch.log1p(debut.abs()), 0.0).float(),
        torch.where(has_entity, _log_days(last - entity_time), zero),
        (~has_entity).float(),
        torch.where(has_best, _log_days(last - best_time), zero),
        (~has_last).float(),
    ]
