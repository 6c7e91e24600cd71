"""EASE: a dense item x item linear model in closed form.

Steck, "Embarrassingly Shallow Autoencoders for Sparse Data" (WWW 2019). Every
item is regressed on all the others with a zero diagonal; a user scores
``user_items[u] @ B`` (see :mod:`training.sources.neighbors`). ``B`` is dense
``num_items x num_items``, so ``fit`` estimates its memory first.
"""

from __future__ import annotations

import warnings
from typing import Any, Union

import numpy as np
import scipy.sparse as sp
import torch

from eval.checks import int_or_auto, positive_float
from training.base import GraphrecWarning, ModelFitError
from training.sources.names import Source
from training.sources.neighbors import ItemItemLearner, csr_from_state, csr_state

__all__ = ["AUTO_MAX_ITEMS", "EASE", "FLOAT64_MAX_ITEMS", "ease_memory_bytes"]

AUTO_MAX_ITEMS = {"cpu": 15_000, "cuda": 40_000}
"""``max_items="auto"`` per device type. The solve (Cholesky + inverse, ~1.33 n^3 flops)
ran at ~50 GFLOP/s per core in float32 on the 2-core CPU machines (25 in float64;
``bench`` figures in BENCHMARKS.md): 15,000 items are ~45 s per fit on 2 cores and
2.7 GiB; on a GPU the bound is memory (40,000 items: ~19 GiB). Above it the pipeline
skips EASE (the sparse item-item sources cover that range)."""
FLOAT64_MAX_ITEMS = 4_000
"""Largest catalogue solved in float64 (cheap there); above it float32 halves the time
(``lambda`` bounds the condition number, so float32 weights agree to ~1e-4)."""


def ease_memory_bytes(num_items: int, dtype: torch.dtype = torch.float64) -> int:
    """Peak bytes EASE's solve needs on its device.

    Three ``num_items x num_items`` matrices in the solve's dtype (the Gram
    matrix, its Cholesky factor, the inverse) plus the float32 ``B`` kept.
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    return int(num_items) ** 2 * (3 * itemsize + 4)


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


class EASE(ItemItemLearner):
    """EASE: a dense item x item linear model in closed form.

    .. math::

        \\min_B \\lVert X - XB \\rVert_F^2 + \\lambda \\lVert B \\rVert_F^2
        \\;\\text{s.t.}\\; \\operatorname{diag}(B) = 0
        \\quad\\Rightarrow\\quad
        B = I - P \\operatorname{diag}(1 / \\operatorname{diag} P),\\;
        P = (X^\\top X + \\lambda I)^{-1}

    with ``X`` the weighted ``user_items``. The Gram matrix is built sparse on the
    CPU; the Cholesky inverse runs on ``device``.

    Memory: before allocating, :func:`ease_memory_bytes` is compared with the
    memory available on ``device`` (and, for CUDA, the host's for the Gram
    matrix). Up to :data:`FLOAT64_MAX_ITEMS` items the solve runs in float64 when
    that fits, else falls back to float32 with a
    :class:`~training.base.GraphrecWarning`; larger catalogues are solved in
    float32 (twice as fast; ``lambda`` bounds the condition number, so float32 is
    accurate enough); when nothing fits,
    or when ``num_items > max_items``, ``fit`` raises ``ValueError``.

    Args:
        regularization: ``lambda``; it grows with the data (validation picked
            500 on ml-100k, 50-100 on lastfm with 0/1 input).
        max_items: the largest catalogue ``fit`` accepts; a ``B`` of ``n`` items
            holds ``4 n^2`` bytes. ``"auto"``: :data:`AUTO_MAX_ITEMS` of the device.
        device: where the solve and :meth:`score` run (``"cpu"``, ``"cuda"``).

    Raises:
        ValueError: a hyper-parameter is out of range.
    """

    name = Source.EASE

    def __init__(
        self, *, regularization: float = 500.0, max_items: Union[int, str] = "auto", device: str = "cpu"
    ) -> None:
        positive_float(regularization, "regularization", reason=" (it keeps X^T X + lambda I invertible)")
        int_or_auto(max_items, "max_items")
        self.regularization = float(regularization)
        self.max_items = max_items if max_items == "auto" else int(max_items)
        self.device = str(device)

    def item_limit(self) -> int:
        """``max_items`` as a number (``"auto"`` resolved for the device)."""
        if self.max_items != "auto":
            return int(self.max_items)
        return AUTO_MAX_ITEMS["cuda" if torch.device(self.device).type == "cuda" else "cpu"]

    def _solve_dtype(self, num_items: int) -> torch.dtype:
        """float64 if it fits, else float32 (warned); ``ValueError`` when nothing fits."""
        gib = 2.0**30
        estimate64 = ease_memory_bytes(num_items, torch.float64)
        if num_items > self.item_limit():
            raise ValueError(
                f"EASE needs dense num_items x num_items matrices: num_items={num_items} exceeds "
                f"max_items={self.item_limit()} (the solve would need ~{estimate64 / gib:.1f} GiB); "
                "raise max_items if the memory is there, or use ItemKNN"
            )
        device = torch.device(self.device)
        available = _available_bytes(device)
        host_available = _available_bytes(torch.device("cpu"))
        dtypes = (torch.float64, torch.float32) if num_items <= FLOAT64_MAX_ITEMS else (torch.float32,)
        for dtype in dtypes:
            estimate = ease_memory_bytes(num_items, dtype)
            gram_on_host = num_items**2 * torch.empty((), dtype=dtype).element_size() if device.type == "cuda" else 0
            if estimate <= available and gram_on_host <= host_available:
                if dtype != dtypes[0]:
                    warnings.warn(
                        f"EASE with num_items={num_items} needs ~{estimate64 / gib:.1f} GiB in float64 but "
                        f"{available / gib:.1f} GiB is free on {device}; solving in float32 "
                        f"(~{estimate / gib:.1f} GiB)",
                        GraphrecWarning,
                        stacklevel=3,
                    )
                return dtype
        raise ValueError(
            f"EASE with num_items={num_items} needs ~{ease_memory_bytes(num_items, torch.float32) / gib:.1f} GiB "
            f"even in float32 (max_items={self.item_limit()}) but {available / gib:.1f} GiB is free on {device}; "
            "use ItemKNN, or a device with more memory"
        )

    def _fit_matrix(self, matrix: sp.csr_matrix, *, show_progress: bool) -> float:
        """Solve for ``B`` in closed form; returns the minimised ``||X - XB||^2 + lambda ||B||^2``.

        Raises:
            ValueError: the item count is beyond ``max_items`` or the available memory.
            ModelFitError: the solve failed or produced non-finite values.
        """
        num_items = matrix.shape[1]
        dtype = self._solve_dtype(num_items)
        device = torch.device(self.device)
        gram = torch.from_numpy(_gram(matrix, np.float64 if dtype == torch.float64 else np.float32)).to(device)
        gram.diagonal().add_(self.regularization)
        try:
            factor = torch.linalg.cholesky(gram)
        except torch.linalg.LinAlgError as exc:
            raise ModelFitError(f"EASE: X^T X + {self.regularization} I is not positive definite ({exc})") from None
        weights = torch.cholesky_inverse(factor)
        del factor
        # B = I - P diag(1/diag P): column j of P divided by -P_jj, zero diagonal.
        weights.div_(-weights.diagonal().clone())
        weights.diagonal().zero_()
        # At the optimum the objective is tr(X^T X) - <B, X^T X> (the lambda-terms
        # cancel), and <B, lambda I> = 0, so the regularised Gram gives it in O(n^2).
        loss = float(gram.diagonal().sum() - num_items * self.regularization - torch.dot(weights.reshape(-1), gram.reshape(-1)))
        del gram
        if not torch.isfinite(weights).all():
            raise ModelFitError(f"EASE produced non-finite weights (regularization={self.regularization})")
        self.weights_ = weights.to(torch.float32)
        self.user_items_ = matrix
        return loss

    def _similarity_operand(self) -> torch.Tensor:
        return self.weights_

    def _state(self) -> dict[str, Any]:
        return {"weights": self.weights_, **csr_state("user_items", self.user_items_)}

    def _set_state(self, state: dict[str, Any]) -> None:
        if "weights" not in state:
            raise ValueError("saved EASE state has no 'weights' array")
        self.user_items_ = csr_from_state("user_items", state)
        num_items = self.user_items_.shape[1]
        if state["weights"].shape != (num_items, num_items):
            raise ValueError(f"saved EASE weights have shape {state['weights'].shape}, expected ({num_items}, {num_items})")
        self.weights_ = torch.from_numpy(np.ascontiguousarray(state["weights"], dtype=np.float32)).to(torch.device(self.device))


def _gram(matrix: sp.csr_matrix, dtype: type) -> np.ndarray:
    """Dense ``X^T X`` built from sparse row blocks, so no sparse n x n matrix is ever held."""
    num_items = matrix.shape[1]
    left = matrix.T.tocsr().astype(dtype)
    right = matrix.astype(dtype)
    gram = np.empty((num_items, num_items), dtype=dtype)
    block = max(1, (1 << 24) // max(num_items, 1))
    for begin in range(0, num_items, block):
        end = min(begin + block, num_items)
        (left[begin:end] @ right).toarray(out=gram[begin:end])
    return gram
