"""The full-ranking evaluator of docs/PROTOCOL.md: ranked lists in, metrics out.

:func:`evaluate` ranks every item for every evaluated user (or takes lists
already ranked), turns the lists into hit matrices batch by batch, and reduces
them with the functions of :mod:`eval.metrics`. Memory is bounded by the batch
(``batch_size * num_items`` scores) plus a few numbers per user.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp

from eval import metrics
from eval.checks import positive_int
from eval.longtail import N_DECILES, decile_of, head_size, popularity_order
from eval.progress import progress_bar
from eval.ranking import Scorer, TopK, as_user_array, iter_topk
from eval.result import EvalResult

__all__ = ["evaluate"]

_PER_USER = (
    "recall",
    "ndcg",
    "precision",
    "hit_rate",
    "mrr",
    "map",
    "tail_hits",
    "tail_relevant",
    "aplt",
    "list_length",
    "train_listed",
)


def _check_matrix(matrix, name: str) -> sp.csr_matrix:
    if not sp.issparse(matrix):
        raise TypeError(f"{name} must be a scipy sparse users x items CSR matrix, got {type(matrix).__name__}")
    matrix = sp.csr_matrix(matrix)
    if not matrix.has_canonical_format:
        # Sorted, duplicate-free indices make the binary-search membership test valid; copy
        # first so the caller's matrix is not reordered under them.
        matrix = matrix.copy()
        matrix.sum_duplicates()
    return matrix


def _membership(rows: sp.csr_matrix, items: np.ndarray) -> np.ndarray:
    """``found[b, j]``: is ``items[b, j]`` a stored entry of row ``b`` of ``rows``? (-1 never is)."""
    n_rows, n_cols = rows.shape
    counts = np.diff(rows.indptr)
    keys = np.repeat(np.arange(n_rows, dtype=np.int64), counts) * n_cols + rows.indices
    query = np.arange(n_rows, dtype=np.int64)[:, None] * n_cols + items
    if not len(keys):
        return np.zeros(items.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return (keys[pos] == query) & (items >= 0)


def _per_row_bincount(rows: sp.csr_matrix, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """``out[b, g]``: stored entries of row ``b`` whose column has label ``g``."""
    row_of = np.repeat(np.arange(rows.shape[0], dtype=np.int64), np.diff(rows.indptr))
    flat = np.bincount(row_of * n_labels + labels[rows.indices], minlength=rows.shape[0] * n_labels)
    return flat.reshape(rows.shape[0], n_labels)


def _batch_stats(
    items: np.ndarray,
    test_rows: sp.csr_matrix,
    train_rows: Optional[sp.csr_matrix],
    is_tail: np.ndarray,
    decile: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per-user statistics of one batch of ranked lists ``items`` ``[B, k]``."""
    hits = _membership(test_rows, items)
    n_relevant = np.diff(test_rows.indptr)
    listed = items >= 0
    tail_listed = listed & is_tail[np.maximum(items, 0)]
    stats = {
        "recall": metrics.recall(hits, n_relevant),
        "ndcg": metrics.ndcg(hits, n_relevant),
        "precision": metrics.precision(hits),
        "hit_rate": metrics.hit_rate(hits),
        "mrr": metrics.reciprocal_rank(hits),
        "map": metrics.average_precision(hits, n_relevant),
        "tail_hits": (hits & tail_listed).sum(axis=1),
        "tail_relevant": _per_row_bincount(test_rows, is_tail.astype(np.int64), 2)[:, 1],
        "aplt": metrics.long_tail_share(tail_listed.sum(axis=1), listed.sum(axis=1)),
        "list_length": listed.sum(axis=1),
        "train_listed": (
            np.zeros(len(items), dtype=np.int64) if train_rows is None else _membership(train_rows, items).sum(axis=1)
        ),
    }
    hit_rows, hit_cols = np.nonzero(hits)
    decile_hits = np.zeros((len(items), N_DECILES), dtype=np.int64)
    np.add.at(decile_hits, (hit_rows, decile[items[hit_rows, hit_cols]]), 1)
    decile_relevant = _per_row_bincount(test_rows, decile, N_DECILES)
    return stats, decile_hits, decile_relevant


def _lists_from_topk(source: TopK, users: np.ndarray, k: int, num_items: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The given lists of ``users`` cut to ``k`` columns; users the table lacks get an empty list."""
    if source.items.size and source.items.max() >= num_items:
        raise ValueError(f"source.items holds item index {source.items.max()}; the catalogue has {num_items} items")
    row_of = np.full(int(max(users.max(initial=-1), source.users.max(initial=-1))) + 1, -1, dtype=np.int64)
    row_of[source.users] = np.arange(len(source.users))
    rows = row_of[users]
    items = np.full((len(users), k), -1, dtype=np.int64)
    width = min(k, source.k)
    present = rows >= 0
    items[present, :width] = source.items[rows[present], :width]
    return [(users, items)]


def _collect(lists, test, train, is_tail, decile, batch_size, bar):
    """Run :func:`_batch_stats` over ``(users, items)`` blocks; concatenate the per-user arrays."""
    per_user = {name: [] for name in _PER_USER}
    decile_hits, decile_relevant = [], []
    rec_counts = np.zeros(test.shape[1], dtype=np.int64)
    for batch, items in lists:
        for start in range(0, len(batch), batch_size):
            part, part_items = batch[start : start + batch_size], items[start : start + batch_size]
            stats, d_hits, d_relevant = _batch_stats(
                part_items, test[part], None if train is None else train[part], is_tail, decile
            )
            for name in _PER_USER:
                per_user[name].append(stats[name])
            decile_hits.append(d_hits)
            decile_relevant.append(d_relevant)
            rec_counts += np.bincount(part_items[part_items >= 0], minlength=test.shape[1])
            bar.update(len(part))
    cat = {name: np.concatenate(values) if values else np.zeros(0) for name, values in per_user.items()}
    empty = np.zeros((0, N_DECILES), dtype=np.int64)
    return (
        cat,
        np.concatenate(decile_hits) if decile_hits else empty,
        np.concatenate(decile_relevant) if decile_relevant else empty,
        rec_counts,
    )


def _decile_rows(order, train_counts, decile_hits, decile_relevant, rec_counts) -> list[dict]:
    """One dict per popularity decile (see :class:`~eval.result.EvalResult`)."""
    rows = []
    for d, members in enumerate(np.array_split(order, N_DECILES)):
        recall, n_users = metrics.group_recall(decile_hits[:, d], decile_relevant[:, d])
        counts = train_counts[members]
        rows.append(
            {
                "decile": d,
                "n_items": int(len(members)),
                "min_train_count": int(counts.min()) if len(members) else 0,
                "max_train_count": int(counts.max()) if len(members) else 0,
                "recall": recall,
                "n_users": n_users,
                "n_test_items": int(decile_relevant[:, d].sum()),
                "n_hits": int(decile_hits[:, d].sum()),
                "rec_share": float(rec_counts[members].sum() / max(rec_counts.sum(), 1)),
            }
        )
    return rows


def _resolve_users(users, test: sp.csr_matrix) -> np.ndarray:
    has_test = np.diff(test.indptr) > 0
    if users is None:
        return np.flatnonzero(has_test).astype(np.int64)
    users = as_user_array(users, name="users", num_users=test.shape[0])
    _, counts = np.unique(users, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"users lists {int((counts > 1).sum())} user indices more than once; each user counts once")
    # docs/PROTOCOL.md: users with no test items are skipped.
    return users[has_test[users]]


def sparse_threshold(train: sp.csr_matrix, test: sp.csr_matrix, max_train: int = 5) -> int:
    """docs/PROTOCOL.md's sparse-user threshold: ``max_train`` train items, or the lowest quintile.

    Where no user with a test item has at most ``max_train`` train items (ml-100k keeps
    only users with 20+ ratings), the threshold is the 20th percentile of those users'
    train counts, which the reports state.
    """
    train_counts = np.diff(sp.csr_matrix(train).indptr)
    tested = train_counts[np.diff(sp.csr_matrix(test).indptr) > 0]
    if not len(tested) or (tested <= max_train).any():
        return int(max_train)
    return int(np.quantile(tested, 0.2))


def evaluate(
    source: Union[Scorer, TopK],
    *,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    item_ids: Sequence,
    k: int = 20,
    batch_size: int = 1024,
    users=None,
    sparse_max_train: int = 5,
    show_progress: bool = False,
    progress_label: str = "evaluate",
) -> EvalResult:
    """Evaluate ranked lists under docs/PROTOCOL.md (full ranking, train items masked).

    Args:
        source: a scorer ``scorer(users int64 [B]) -> [B, num_items]`` (numpy or
            torch on any device; ranked by :func:`eval.ranking.iter_topk` with
            ``train`` masked), or a :class:`~eval.ranking.TopK` of precomputed lists.
            A ``TopK`` is evaluated as given: lists are cut to ``k``; shorter
            lists score as short lists; evaluated users the table lacks score as
            empty lists; train items in it are not removed but counted
            (``EvalResult.n_train_listed``).
        train: users x items CSR whose stored entries are docs/PROTOCOL.md's "train":
            masked from the lists and, counted per item, the popularity behind
            the head/tail split and the deciles.
        test: users x items CSR of held-out items, same shape.
        item_ids: external item ids ``[num_items]``, for the popularity tie-break.
        k: the cut-off K, ``1 <= k <= num_items``.
        batch_size: users per scorer call.
        users: restrict to these user indices (no repeats); users among them
            with no test items are skipped. Default: every user with a test item.
        sparse_max_train: users with at most this many train items form the
            sparse-user row.
        show_progress: a progress bar (:func:`eval.progress.progress_bar`).
        progress_label: its label, e.g. ``"evaluate als (valid)"``.

    Returns:
        :class:`~eval.result.EvalResult`; metrics are means over evaluated users
        (``tail_recall`` over users with a tail test item; NaN where no user
        qualifies).

    Raises:
        TypeError: ``train``/``test`` are not scipy sparse, ``k`` is not an int,
            or the scorer returns something other than an array/tensor.
        ValueError: shapes disagree, ``k`` is out of range, ``users`` is invalid,
            ``source`` lists unknown items, or the scorer returns NaN.
    """
    train = _check_matrix(train, "train")
    test = _check_matrix(test, "test")
    if train.shape != test.shape:
        raise ValueError(f"train has shape {train.shape} but test has shape {test.shape}; both are users x items")
    num_users, num_items = test.shape
    if num_items < 1:
        raise ValueError("train and test have no item columns")
    k = positive_int(k, "k")
    if k > num_items:
        raise ValueError(f"k={k} is larger than the catalogue ({num_items} items)")
    batch_size = positive_int(batch_size, "batch_size")
    sparse_max_train = positive_int(sparse_max_train, "sparse_max_train", minimum=0)
    item_ids = list(item_ids)
    if len(item_ids) != num_items:
        raise ValueError(f"item_ids has {len(item_ids)} entries but train/test have {num_items} item columns")
    users = _resolve_users(users, test)

    train_counts = np.bincount(train.indices, minlength=num_items).astype(np.int64)
    order = popularity_order(train_counts, item_ids)
    is_tail = np.ones(num_items, dtype=bool)
    is_tail[order[: head_size(num_items)]] = False
    decile = decile_of(order)

    is_topk = isinstance(source, TopK)
    if is_topk:
        if source.users.size and source.users.max() >= num_users:
            raise ValueError(f"source.users holds user index {source.users.max()}; there are {num_users} users")
        lists = _lists_from_topk(source, users, k, num_items)
    elif callable(source):
        ranked = iter_topk(source, users, k, exclude=train, batch_size=batch_size)
        lists = ((batch, items) for batch, items, _ in ranked)
    else:
        raise TypeError(f"source must be a scorer (callable) or a TopK, got {type(source).__name__}")

    started = time.perf_counter()
    with progress_bar(total=len(users), unit="user", desc=progress_label, disable=not show_progress) as bar:
        cat, decile_hits, decile_relevant, rec_counts = _collect(
            lists, test, train if is_topk else None, is_tail, decile, batch_size, bar
        )
    seconds = time.perf_counter() - started

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if len(values) else float("nan")

    tail_recall, n_tail_users = metrics.group_recall(cat["tail_hits"], cat["tail_relevant"])
    result_metrics = {
        "recall": mean(cat["recall"]),
        "ndcg": mean(cat["ndcg"]),
        "precision": mean(cat["precision"]),
        "hit_rate": mean(cat["hit_rate"]),
        "mrr": mean(cat["mrr"]),
        "map": mean(cat["map"]),
        "tail_recall": tail_recall,
        "aplt": mean(cat["aplt"]),
        "coverage": metrics.coverage(rec_counts),
        "gini": metrics.gini(rec_counts),
    }
    train_per_user = np.diff(train.indptr)[users]
    sparse_rows = train_per_user <= sparse_max_train
    sparse = {
        "threshold": int(sparse_max_train),
        "n_users": int(sparse_rows.sum()),
        "recall": mean(cat["recall"][sparse_rows]),
        "ndcg": mean(cat["ndcg"][sparse_rows]),
    }
    deciles = _decile_rows(order, train_counts, decile_hits, decile_relevant, rec_counts)
    return EvalResult(
        metrics=result_metrics,
        k=k,
        n_users=len(users),
        sparse=sparse,
        deciles=deciles,
        rec_counts=rec_counts,
        train_counts=train_counts,
        popularity_order=order,
        head_size=head_size(num_items),
        n_tail_users=n_tail_users,
        n_short_lists=int((cat["list_length"] < k).sum()),
        n_empty_lists=int((cat["list_length"] == 0).sum()),
        n_train_listed=int(cat["train_listed"].sum()),
        seconds=seconds,
    )
