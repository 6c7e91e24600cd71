"""Item-based nearest neighbors: implicit's cosine, BM25 and TF-IDF item-item models.

Sarwar et al., "Item-based collaborative filtering recommendation algorithms"
(WWW 2001), with implicit's weightings (``CosineRecommender``, ``BM25Recommender``,
``TFIDFRecommender``). ``S[i, j]`` is kept for the ``neighbors`` most similar
``j`` of each item ``i``; a user scores ``user_items[u] @ S`` (see
:mod:`training.sources.neighbors`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from eval.checks import choice, number, positive_float, positive_int
from training.sources.names import Source
from training.sources.neighbors import ItemItemLearner, csr_from_state, csr_state

__all__ = ["SIMILARITIES", "ItemKNN"]

SIMILARITIES = ("cosine", "bm25", "tfidf")


class ItemKNN(ItemItemLearner):
    """Item-based nearest neighbors (implicit's item-item recommenders).

    ``S[i, j]`` is the similarity of items ``i`` and ``j`` for the ``neighbors``
    most similar ``j`` of each ``i`` (an item is not its own neighbor), computed
    on the weighted ``user_items``:

    * ``"cosine"``: cosine of the item columns;
    * ``"bm25"``: dot products of BM25-weighted item columns (``bm25_k1``, ``bm25_b``);
    * ``"tfidf"``: cosine of TF-IDF-weighted item columns.

    Args:
        similarity: one of ``"cosine"``, ``"bm25"``, ``"tfidf"``.
        neighbors: neighbors kept per item (more helped on validation up to a
            few hundred on ml-100k and lastfm).
        bm25_k1: BM25 saturation (``"bm25"`` only).
        bm25_b: BM25 length normalisation in ``[0, 1]`` (``"bm25"`` only).
        num_threads: OpenMP threads for the neighbor search; 0 lets OpenMP
            choose (every core unless ``OMP_NUM_THREADS`` says otherwise).

    Raises:
        ValueError: a hyper-parameter is out of range.
    """

    name = Source.ITEMKNN

    def __init__(
        self,
        *,
        similarity: str = "bm25",
        neighbors: int = 400,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        num_threads: int = 0,
    ) -> None:
        choice(similarity, "similarity", SIMILARITIES)
        positive_int(neighbors, "neighbors")
        positive_int(num_threads, "num_threads", minimum=0)
        positive_float(bm25_k1, "bm25_k1")
        number(bm25_b, "bm25_b", low=0.0, high=1.0)
        self.similarity = similarity
        self.neighbors = int(neighbors)
        self.bm25_k1 = float(bm25_k1)
        self.bm25_b = float(bm25_b)
        self.num_threads = int(num_threads)

    def _fit_matrix(self, matrix: sp.csr_matrix, *, show_progress: bool) -> float:
        """Build the neighbor matrix ``S`` (implicit's item-item recommender; ``show_progress``: its bar over items).

        Returns 0.0: there is no objective to report.
        """
        # implicit spells its module the British way; graphrec says "neighbor" (training/renames.py).
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender
        from implicit.utils import ParameterWarning

        # One extra slot: implicit counts an item among its own neighbors.
        k = self.neighbors + 1
        if self.similarity == "bm25":
            model = BM25Recommender(K=k, K1=self.bm25_k1, B=self.bm25_b, num_threads=self.num_threads)
        elif self.similarity == "tfidf":
            model = TFIDFRecommender(K=k, num_threads=self.num_threads)
        else:
            model = CosineRecommender(K=k, num_threads=self.num_threads)
        with warnings.catch_warnings():
            # implicit's own weighting hands its kernel a COO matrix and then warns about it.
            warnings.simplefilter("ignore", ParameterWarning)
            model.fit(matrix, show_progress=show_progress)
        self.similarity_ = _top_neighbors(sp.csr_matrix(model.similarity, dtype=np.float32), self.neighbors)
        self.user_items_ = matrix
        return 0.0

    def _similarity_operand(self) -> sp.csr_matrix:
        return self.similarity_

    def _state(self) -> dict[str, Any]:
        return {**csr_state("similarity", self.similarity_), **csr_state("user_items", self.user_items_)}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.similarity_ = csr_from_state("similarity", state)
        self.user_items_ = csr_from_state("user_items", state)


def _top_neighbors(similarity: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Drop the diagonal and zeros, then keep each row's ``k`` largest entries (ties: lower column).

    implicit already returns at most ``k + 1`` neighbors per row (the item itself
    among them), so only the few rows still longer than ``k`` are sorted; the rest
    are kept as they are, in CSR order, without a round trip through COO.
    """
    similarity = sp.csr_matrix(similarity, dtype=np.float32)
    n = similarity.shape[0]
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(similarity.indptr))
    keep = (rows != similarity.indices) & (similarity.data != 0)
    rows, cols, values = rows[keep], similarity.indices[keep], similarity.data[keep]
    long_rows = np.bincount(rows, minlength=n) > k
    if long_rows.any():
        keep = np.ones(len(rows), bool)
        candidates = np.flatnonzero(long_rows[rows])
        order = np.lexsort((cols[candidates], -values[candidates], rows[candidates]))
        ranked = candidates[order]
        starts = np.searchsorted(rows[ranked], np.arange(n))
        rank = np.arange(len(ranked)) - starts[rows[ranked]]
        keep[ranked[rank >= k]] = False
        rows, cols, values = rows[keep], cols[keep], values[keep]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    result = sp.csr_matrix((values, cols, indptr), shape=similarity.shape, dtype=np.float32)
    result.sort_indices()
    return result
