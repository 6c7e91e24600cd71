"""Item-item collaborative learners: what item-KNN and EASE share.

Both score a user by their own history times an item x item matrix ``S``:
``score(u) = user_items[u] @ S``. They differ in where ``S`` comes from:

* :class:`training.sources.knn.ItemKNN` keeps each item's most similar items under
  cosine, BM25 or TF-IDF weighting (implicit's item-item recommenders). Sparse
  ``S``, cheap to fit, a different (more local) view than factor models.
* :class:`training.sources.ease.EASE` (Steck, WWW 2019) learns a dense ``S = B`` by ridge
  regression of every item on all others with a zero diagonal, in closed form.
  Strong on sparse catalogues, but ``B`` is ``num_items x num_items`` dense.

This module holds the shared base class, :class:`ItemItemLearner`, and the CSR
helpers both use. Both keep the training ``user_items`` (it is what scores a
known user) and save it with ``S`` as plain CSR arrays in the safetensors state.
"""

from __future__ import annotations

import abc
import time
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp
import torch

from kg.graph import Graph
from training.base import Callback, Learner, as_user_index, as_user_items

__all__ = ["ItemItemLearner", "OnePassLearner", "csr_from_state", "csr_state", "fit_matrix", "sparse_times"]


def fit_matrix(user_items: Any, graph: Graph) -> sp.csr_matrix:
    """Validate ``fit``'s ``user_items`` against ``graph`` and return a private float32 CSR copy."""
    matrix = as_user_items(user_items, num_items=graph.num_items, num_users=graph.num_users)
    if matrix.nnz == 0:
        raise ValueError("user_items holds no interactions; there is nothing to learn from")
    # as_user_items may share the caller's arrays; the learner keeps this one.
    matrix = matrix.copy()
    # A stored 0 adds nothing to user_items @ S, but would give cosine a 0/0 norm.
    matrix.eliminate_zeros()
    return matrix


def csr_state(prefix: str, matrix: sp.csr_matrix) -> dict[str, Any]:
    """A CSR as ``{prefix}_data/_indices/_indptr`` arrays and a ``{prefix}_shape`` scalar list.

    Column indices are stored as int32 where the columns fit (half the bytes of int64: the
    graph filter's operator is ``num_items x neighbors`` of them); ``indptr`` as int64.
    """
    narrow = matrix.shape[1] <= np.iinfo(np.int32).max
    return {
        f"{prefix}_data": matrix.data.astype(np.float32),
        f"{prefix}_indices": matrix.indices.astype(np.int32 if narrow else np.int64),
        f"{prefix}_indptr": matrix.indptr.astype(np.int64),
        f"{prefix}_shape": [int(n) for n in matrix.shape],
    }


def csr_from_state(prefix: str, state: dict[str, Any]) -> sp.csr_matrix:
    """Inverse of :func:`csr_state`; ``ValueError`` naming what is missing or inconsistent."""
    missing = [f"{prefix}_{part}" for part in ("data", "indices", "indptr", "shape") if f"{prefix}_{part}" not in state]
    if missing:
        raise ValueError(f"saved state lacks {missing}; it was not written by this learner")
    shape = tuple(int(n) for n in state[f"{prefix}_shape"])
    try:
        return sp.csr_matrix(
            (state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"]), shape=shape
        )
    except ValueError as exc:
        raise ValueError(f"saved {prefix} CSR arrays are inconsistent with shape {shape}: {exc}") from None


def sparse_times(rows: sp.csr_matrix, right: sp.csr_matrix | torch.Tensor) -> torch.Tensor:
    """Dense float32 ``rows @ right`` on ``right``'s device (CPU for a scipy ``right``).

    On the CPU scipy's sparse x dense kernel does it (torch's sparse CPU kernels
    were up to 60x slower on some builds); on CUDA the batch is densified and
    multiplied densely, which a GPU does in milliseconds and which avoids torch's
    sparse tensors (beta, and warning on some versions).
    """
    if isinstance(right, torch.Tensor) and right.device.type != "cpu":
        coo = rows.tocoo()
        dense = torch.zeros(rows.shape, dtype=right.dtype, device=right.device)
        row = torch.from_numpy(coo.row.astype(np.int64)).to(right.device)
        col = torch.from_numpy(coo.col.astype(np.int64)).to(right.device)
        dense[row, col] = torch.from_numpy(coo.data).to(device=right.device, dtype=right.dtype)
        return dense @ right
    product = rows @ (right.numpy() if isinstance(right, torch.Tensor) else right)
    dense = product.toarray() if sp.issparse(product) else np.asarray(product)
    return torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32))


class OnePassLearner(Learner):
    """A learner fitted in one pass over ``user_items``: nothing iterates and validation is unused.

    Item-KNN, EASE and the graph filter. :meth:`fit` checks and copies the matrix
    (:func:`fit_matrix`), times :meth:`_fit_matrix` and reports its objective once through
    ``callback``; subclasses implement :meth:`_fit_matrix` only.
    """

    def fit(
        self,
        graph: Graph,
        user_items: sp.csr_matrix,
        *,
        valid_items: Optional[sp.csr_matrix] = None,
        show_progress: bool = False,
        callback: Optional[Callback] = None,
    ) -> "OnePassLearner":
        """Learn from ``user_items`` in one pass (:meth:`_fit_matrix` says what is learned).

        Args:
            graph: fixes ``num_users``/``num_items``; no side information is used.
            user_items: CSR ``[num_users, num_items]`` of non-negative weights.
            valid_items: ignored (nothing iterates, so nothing stops early).
            show_progress: passed to :meth:`_fit_matrix` (a bar where the pass has one).
            callback: called once, ``callback(0, elapsed_seconds, objective)`` with what
                :meth:`_fit_matrix` returns.

        Returns:
            ``self``.

        Raises:
            TypeError: ``user_items`` is not a scipy sparse matrix.
            ValueError: its shape does not match ``graph``, or it is empty; or the
                subclass's own limits (see :meth:`_fit_matrix`).
            ModelFitError: the pass produced non-finite values.
        """
        matrix = fit_matrix(user_items, graph)
        start = time.perf_counter()
        objective = self._fit_matrix(matrix, show_progress=show_progress)
        self.fitted_ = True
        if callback is not None:
            callback(0, time.perf_counter() - start, objective)
        return self

    @abc.abstractmethod
    def _fit_matrix(self, matrix: sp.csr_matrix, *, show_progress: bool) -> float:
        """Set the learned state from ``matrix`` (a checked private float32 CSR copy); return the objective."""


class ItemItemLearner(OnePassLearner):
    """A learner that scores a user as their history times an item x item matrix ``S``.

    Subclasses set ``user_items_`` (the training matrix) in :meth:`_fit_matrix` and return ``S``
    from :meth:`_similarity_operand` (a scipy CSR or a dense torch tensor).
    """

    @abc.abstractmethod
    def _similarity_operand(self) -> sp.csr_matrix | torch.Tensor:
        """``S``, ``[num_items, num_items]``."""

    def score(self, users: np.ndarray) -> torch.Tensor:
        """``user_items[users] @ S`` with the ``user_items`` seen in ``fit``.

        Args:
            users: int64 internal user indices, shape ``[B]``.

        Returns:
            float32 tensor ``[B, num_items]``.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: an index outside ``[0, num_users)``.
        """
        self._check_fitted()
        index = as_user_index(users, num_users=self.user_items_.shape[0])
        return sparse_times(self.user_items_[index], self._similarity_operand())

    def _item_similarity(self, itemids: np.ndarray) -> torch.Tensor:
        """Rows ``S[itemids]``: how much each item adds to every other item's score (``similar_items``)."""
        operand = self._similarity_operand()
        if isinstance(operand, torch.Tensor):
            return operand[torch.from_numpy(itemids).to(operand.device)].float()
        return torch.from_numpy(np.ascontiguousarray(operand[itemids].toarray(), dtype=np.float32))

    def score_new_users(self, user_items: sp.csr_matrix) -> torch.Tensor:
        """``user_items @ S`` for users described only by their items.

        Args:
            user_items: CSR ``[B, num_items]`` of weights, like ``fit``'s.

        Returns:
            float32 tensor ``[B, num_items]``.
        """
        self._check_fitted()
        rows = as_user_items(user_items, num_items=self.user_items_.shape[1])
        return sparse_times(rows, self._similarity_operand())
