"""Co-interaction neighbors of items, and how well text vectors recover them.

Two items are co-interaction neighbors when the same users interacted with both.
Their strength is the cosine of the items' binary user columns,
``|U_i & U_j| / sqrt(|U_i| |U_j|)``, which divides out popularity: a blockbuster is
not every item's nearest neighbor. The same matrix gives fine-tuning its positive
pairs and the benchmarks their ground truth, and :func:`neighbor_recall` scores a
set of item vectors against it with :func:`eval.evaluate`, treating items as the
evaluator's "users". :func:`text_neighbors` is the text side's own neighbor list: each
item's most cosine-similar items by text vector (:class:`~training.text.TextLearner`'s
``profile="knn"``).

(Named for what it finds, similar items, rather than ``neighbors.py``: that name is
:mod:`training.sources.neighbors`, the item-item collaborative learners' base.)
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch

from eval import EvalResult, evaluate
from eval.checks import positive_int
from training.base import as_user_items
from training.sources.knn import _top_neighbors

__all__ = ["co_interaction_neighbors", "neighbor_recall", "text_neighbors"]


def co_interaction_neighbors(user_items: sp.csr_matrix, *, top: int = 50, chunk_size: int = 2048) -> sp.csr_matrix:
    """Each item's ``top`` strongest co-interaction neighbors (cosine, itself excluded).

    Args:
        user_items: users x items CSR; any stored entry counts as an interaction.
        top: neighbors kept per item.
        chunk_size: items per sparse product (bounds memory on large catalogues).

    Returns:
        float32 item x item CSR; row ``i`` holds up to ``top`` entries, the cosine
        of item ``i`` with each neighbor (in ``(0, 1]``). Not symmetric after the cut.

    Shapes:
        ``[num_items, num_items]``

    Raises:
        TypeError: ``user_items`` is not scipy sparse.
        ValueError: ``top``/``chunk_size`` < 1, or bad ``user_items`` values.
    """
    positive_int(top, "top")
    positive_int(chunk_size, "chunk_size")
    binary = as_user_items(user_items).astype(bool).astype(np.float32)
    item_users = binary.T.tocsr()
    degree = np.asarray(binary.sum(axis=0)).ravel()
    scale = np.zeros_like(degree)
    scale[degree > 0] = 1.0 / np.sqrt(degree[degree > 0])
    num_items = binary.shape[1]
    result = sp.csr_matrix((num_items, num_items), dtype=np.float32)
    for start in range(0, num_items, chunk_size):
        stop = min(start + chunk_size, num_items)
        cosine = sp.diags(scale[start:stop]) @ (item_users[start:stop] @ binary) @ sp.diags(scale)
        # Padded to full height, the block's rows are item indices and its diagonal is (i, i).
        padded = sp.vstack(
            [sp.csr_matrix((start, num_items)), cosine, sp.csr_matrix((num_items - stop, num_items))], format="csr"
        )
        result = result + _top_neighbors(padded, top)
    return sp.csr_matrix(result, dtype=np.float32)


def neighbor_recall(
    item_vectors: np.ndarray | torch.Tensor,
    neighbors: sp.csr_matrix,
    *,
    item_ids,
    k: int = 20,
    queries: Optional[np.ndarray] = None,
) -> EvalResult:
    """How well cosine similarity of ``item_vectors`` ranks each item's true neighbors.

    Every query item ranks the whole catalogue (itself masked) by cosine similarity;
    ``neighbors`` row ``i`` is the ground truth. Metrics (``recall`` is item-item
    Recall@k) come from :func:`eval.evaluate`, with items in the role of users.

    Args:
        item_vectors: ``[num_items, d]``; rows need not be normalised.
        neighbors: item x item CSR of true neighbors (values ignored).
        item_ids: external item ids, for the evaluator's popularity tie-break.
        k: the cut-off.
        queries: item indices to evaluate (default: every item with a neighbor).

    Returns:
        The :class:`~eval.EvalResult`.

    Raises:
        ValueError: ``item_vectors`` and ``neighbors`` disagree on the number of items.
    """
    vectors = torch.as_tensor(np.asarray(item_vectors, dtype=np.float32))
    if vectors.ndim != 2 or neighbors.shape != (len(vectors), len(vectors)):
        raise ValueError(
            f"item_vectors {tuple(vectors.shape)} and neighbors {neighbors.shape} must be [n, d] and [n, n]"
        )
    vectors = torch.nn.functional.normalize(vectors, dim=1)
    identity = sp.identity(len(vectors), dtype=np.float32, format="csr")
    truth = _top_neighbors(sp.csr_matrix(neighbors, dtype=np.float32), len(vectors))  # drops the diagonal

    def scorer(items: np.ndarray) -> torch.Tensor:
        return vectors[torch.as_tensor(items)] @ vectors.T

    return evaluate(scorer, train=identity, test=truth, item_ids=item_ids, k=k, users=queries)


def text_neighbors(item_vectors: np.ndarray, neighbors: int, chunk_size: int = 2048) -> sp.csr_matrix:
    """Item x item CSR of each item's ``neighbors`` most cosine-similar items (positive only)."""
    vectors = torch.as_tensor(item_vectors)
    num_items = len(vectors)
    top = min(neighbors, num_items - 1)
    rows, cols, vals = [], [], []
    for start in range(0, num_items, chunk_size):
        sims = vectors[start : start + chunk_size] @ vectors.T
        block = torch.arange(len(sims))
        sims[block, block + start] = -np.inf
        values, index = torch.topk(sims, top, dim=1)
        rows.append(np.repeat(np.arange(start, start + len(sims)), top))
        cols.append(index.reshape(-1).numpy())
        vals.append(values.reshape(-1).numpy())
    rows, cols, vals = (np.concatenate(x) if x else np.zeros(0) for x in (rows, cols, vals))
    keep = vals > 0
    return sp.csr_matrix(
        (vals[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(num_items, num_items), dtype=np.float32
    )
