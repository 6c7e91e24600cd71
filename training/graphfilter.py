"""Graph filtering: a training-free item-item source from the normalised interaction matrix.

GF-CF (Shen et al., "How Powerful is Graph Convolution for Recommendation?",
CIKM 2021) and BSPM (Choi et al., "Blurring-Sharpening Process Models for
Collaborative Filtering", SIGIR 2023) score a user's row ``r`` (binary history)
with filters of the normalised matrix

.. math::

    \\tilde R = D_U^{-e} R\\, D_I^{-e}, \\qquad \\tilde P = \\tilde R^\\top \\tilde R

(``e`` = ``exponent``, 1/2 in the papers; ``P~`` is divided by its largest
eigenvalue ``sigma_1^2``, which is 1 at ``e = 1/2``, so that ``alpha`` and ``sharpen``
mean the same for every exponent):

* a **linear** low-pass filter ``r P~``;
* an **ideal** low-pass filter ``r D_I^{-e} V V^T D_I^{e}`` with ``V`` the top
  ``rank`` right singular vectors of ``R~`` (weighted by ``alpha``);
* optionally BSPM's one-step **sharpening** ``s <- s - sharpen * s P~``, a second
  polynomial term that pushes back what blurring spread to popular items.

Nothing is learned by gradient descent: ``fit`` normalises ``R`` and computes the
truncated SVD (a seeded randomized SVD: 3 s on ml-100k where a dense
eigendecomposition took 50 s on a loaded machine). A user's scores are a function
of their row only, so fold-in of new users is exact and free.

Memory: ``P~`` is formed densely (``4 n^2`` bytes) only when the catalogue has at
most ``dense_max_items`` items; above that ``r P~`` is computed as
``(r R~^T) R~`` with sparse products per batch, and the fitted state is ``R`` plus
the ``num_items x rank`` matrix ``V``.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp
import torch

from kg.graph import Graph
from training.base import Callback, Learner, ModelFitError, as_user_index, as_user_items
from training.neighbors import csr_from_state, csr_state, fit_matrix

__all__ = ["GraphFilter", "auto_rank", "normalised_matrix", "randomized_svd"]


def normalised_matrix(user_items: sp.csr_matrix, exponent: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """``R~ = D_U^-e R D_I^-e`` and the item scale ``d_I^-e`` (0 for items nobody has).

    Args:
        user_items: float32 CSR ``[num_users, num_items]``.
        exponent: ``e``; 0 leaves ``R`` as it is.

    Returns:
        ``(R~ as float32 CSR, item_scale float64 [num_items])``.
    """
    user_degree = np.asarray(user_items.sum(axis=1), dtype=np.float64).ravel()
    item_degree = np.asarray(user_items.sum(axis=0), dtype=np.float64).ravel()
    user_scale = np.zeros_like(user_degree)
    item_scale = np.zeros_like(item_degree)
    np.power(user_degree, -exponent, out=user_scale, where=user_degree > 0)
    np.power(item_degree, -exponent, out=item_scale, where=item_degree > 0)
    normalised = sp.diags(user_scale) @ user_items.astype(np.float64) @ sp.diags(item_scale)
    return sp.csr_matrix(normalised, dtype=np.float32), item_scale


def randomized_svd(
    matrix: sp.csr_matrix, rank: int, *, seed: int, oversample: int = 64, power_iterations: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``rank`` singular values and right singular vectors of a sparse matrix.

    Halko, Martinsson and Tropp's randomized range finder with power iterations
    (each re-orthonormalised by QR), run on the item side: ``Q`` spans
    ``(A^T A)^q A^T G`` for a seeded Gaussian ``G``. Only sparse x dense products
    and orthonormalisation of ``[num_items, rank + oversample]`` blocks are needed
    (ARPACK's ``svds`` took minutes for rank 256 on Gowalla).

    Args:
        matrix: CSR ``[m, n]``.
        rank: ``k``, at most ``min(m, n)``.
        seed: seeds ``G``.
        oversample: extra columns of the sketch.
        power_iterations: ``q``; more sharpens the tail of the spectrum.

    Returns:
        ``(values float32 [k] descending, vectors float32 [n, k])``.
    """
    left = matrix.astype(np.float64).tocsr()
    right = left.T.tocsr()
    width = min(rank + oversample, min(left.shape))
    sketch = np.random.default_rng(seed).standard_normal((left.shape[0], width))
    basis = _orthonormal(right @ sketch)
    for _ in range(power_iterations):
        basis = _orthonormal(right @ _orthonormal(left @ basis))
    # (A Q)^T (A Q) = W S^2 W^T  =>  A ~ U S (Q W)^T; a [width, width] eigenproblem.
    projected = torch.from_numpy(left @ basis)
    squares, small = torch.linalg.eigh(projected.T @ projected)
    values = squares.flip(0).clamp_min(0).sqrt().numpy()
    vectors = basis @ small.flip(1)[:, :rank].numpy()
    return values[:rank].astype(np.float32), np.ascontiguousarray(vectors, dtype=np.float32)


def _orthonormal(block: np.ndarray) -> np.ndarray:
    """An orthonormal basis of a tall block's columns: CholeskyQR2, QR where it fails.

    Two Cholesky passes cost two small Gram products; LAPACK's Householder QR of
    a ``[40k, 320]`` block was 5-40x slower on a shared 2-core machine.
    """
    basis = torch.from_numpy(block)
    try:
        for _ in range(2):
            factor = torch.linalg.cholesky(basis.T @ basis)
            basis = torch.linalg.solve_triangular(factor, basis.T, upper=False).T
    except torch.linalg.LinAlgError:
        basis, _ = torch.linalg.qr(torch.from_numpy(block))
    return basis.contiguous().numpy()


def auto_rank(num_items: int) -> int:
    """``rank="auto"``: ``num_items / 50`` within [16, 256].

    A rule read off the validation searches of ``bench/graphfilter.py``: a small
    dense catalogue wants few singular vectors (ml-100k, 1,682 items: 16-32), a
    large sparse one many (Gowalla, 41k items: 256, GF-CF's choice).
    """
    return int(min(256, max(16, num_items // 50)))


class GraphFilter(Learner):
    """Linear + ideal low-pass graph filter (GF-CF), with optional BSPM sharpening.

    .. math::

        s(r) = r \\tilde P + \\alpha\\, r D_I^{-e} V V^\\top D_I^{e},
        \\qquad s \\leftarrow s - \\text{sharpen}\\; s \\tilde P

    Args:
        alpha: weight of the ideal low-pass term (GF-CF used 0.3 on Gowalla).
        rank: singular vectors in the ideal low-pass term (capped at
            ``min(num_users, num_items) - 1``); 0 drops the term; ``"auto"``:
            :func:`auto_rank` of the catalogue size.
        exponent: ``e`` of the degree normalisation (1/2: the symmetric one).
        sharpen: BSPM's one Euler step of sharpening (its ``T_s``, on ``P~`` scaled to
            spectral radius 1); 0: none.
        dense_max_items: largest catalogue for which ``P~`` is held densely
            (``4 n^2`` bytes); above it every product is sparse.
        seed: seeds the randomized SVD's sketch, so fits are reproducible.
        device: where :meth:`score` computes (``"cpu"``, ``"cuda"``); CUDA uses
            torch sparse CSR products.

    Raises:
        ValueError: a hyper-parameter is out of range.
    """

    name = "graphfilter"

    def __init__(
        self,
        *,
        alpha: float = 0.3,
        rank: int | str = "auto",
        exponent: float = 0.5,
        sharpen: float = 0.2,
        dense_max_items: int = 10_000,
        seed: int = 2026,
        device: str = "cpu",
    ) -> None:
        checked = (("dense_max_items", dense_max_items, 0), ("seed", seed, 0))
        if rank != "auto":
            checked += (("rank", rank, 0),)
        for arg, value, low in checked:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{arg} must be an integer >= {low}, got {value!r}")
        for arg, value in (("alpha", alpha), ("sharpen", sharpen)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{arg} must be a finite number >= 0, got {value!r}")
        if not (isinstance(exponent, (int, float)) and 0 <= exponent <= 1):
            raise ValueError(f"exponent must be in [0, 1] (1/2: symmetric normalisation), got {exponent!r}")
        self.alpha = float(alpha)
        self.rank = rank if rank == "auto" else int(rank)
        self.exponent = float(exponent)
        self.sharpen = float(sharpen)
        self.dense_max_items = int(dense_max_items)
        self.seed = int(seed)
        self.device = str(device)

    # -- fitting --------------------------------------------------------------------------
    def fit(
        self,
        graph: Graph,
        user_items: sp.csr_matrix,
        *,
        valid_items: Optional[sp.csr_matrix] = None,
        show_progress: bool = False,
        callback: Optional[Callback] = None,
    ) -> "GraphFilter":
        """Normalise ``user_items`` and compute the truncated SVD of ``R~``.

        Args:
            graph: fixes ``num_users``/``num_items``; no side information is used.
            user_items: CSR ``[num_users, num_items]`` of non-negative weights
                (the pipeline passes 0/1, as the papers do).
            valid_items: ignored (nothing is trained).
            show_progress: accepted for the contract; one SVD has no progress to show.
            callback: called once, ``callback(0, elapsed_seconds, loss)`` with the
                share of ``||R~||_F^2`` the kept singular vectors leave out.

        Returns:
            ``self``.

        Raises:
            TypeError: ``user_items`` is not a scipy sparse matrix.
            ValueError: its shape does not match ``graph``, or it is empty.
            ModelFitError: the SVD failed or produced non-finite vectors.
        """
        matrix = fit_matrix(user_items, graph)
        start = time.perf_counter()
        self._build(matrix, self._svd(matrix))
        if callback is not None:
            # R~ is held divided by sigma_1 (see _build): undo it for ||R~||_F^2.
            top = float(self.singular_values_[0])
            energy = float(np.square(self._normalised.data, dtype=np.float64).sum()) * top**2
            kept = float(np.square(self.singular_values_, dtype=np.float64).sum())
            callback(0, time.perf_counter() - start, max(0.0, 1.0 - kept / energy) if energy else 0.0)
        self.fitted_ = True
        return self

    def with_filter(self, *, alpha: Optional[float] = None, rank: Optional[int] = None,
                    sharpen: Optional[float] = None) -> "GraphFilter":
        """A fitted copy with another ``alpha``/``rank``/``sharpen``, reusing this fit's SVD.

        Validation searches vary these without recomputing the SVD (the expensive
        part); ``exponent`` changes ``R~`` and needs a new ``fit``.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: ``rank`` above the rank this learner was fitted with.
        """  # fmt: skip
        self._check_fitted()
        config = self.get_config()
        config.update({k: v for k, v in (("alpha", alpha), ("rank", rank), ("sharpen", sharpen)) if v is not None})
        copy = GraphFilter(**config)
        kept = self.vectors_.shape[1]
        wanted = max(1, copy._effective_rank(self.user_items_.shape))
        if wanted > kept:
            raise ValueError(f"rank={copy.rank} needs {wanted} singular vectors; this fit kept {kept}")
        copy._build(self.user_items_, (self.singular_values_[:wanted], self.vectors_[:, :wanted]))
        copy.fitted_ = True
        return copy

    def _effective_rank(self, shape: tuple[int, int]) -> int:
        """Singular vectors the ideal term uses: ``rank`` capped, 0 when ``alpha`` is 0."""
        rank = auto_rank(shape[1]) if self.rank == "auto" else self.rank
        return max(0, min(rank, min(shape) - 1)) if self.alpha else 0

    def _svd(self, matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """Top singular values (descending) and right vectors ``[num_items, k]`` of ``R~``."""
        normalised, _ = normalised_matrix(matrix, self.exponent)
        # At least one: the top singular value scales P~ to spectral radius 1 for any exponent.
        rank = max(1, self._effective_rank(normalised.shape))
        try:
            values, vectors = randomized_svd(normalised, rank, seed=self.seed)
        except np.linalg.LinAlgError as exc:
            raise ModelFitError(f"GraphFilter: truncated SVD of rank {rank} failed ({exc})") from None
        if not (np.isfinite(vectors).all() and np.isfinite(values).all()):
            raise ModelFitError(f"GraphFilter: the rank-{rank} SVD produced non-finite vectors")
        return values, vectors

    def _build(self, matrix: sp.csr_matrix, svd: tuple[np.ndarray, np.ndarray]) -> None:
        """Set the learned state and the operators derived from it on :attr:`device`."""
        self.user_items_ = matrix
        self.singular_values_, self.vectors_ = svd
        self._normalised, item_scale = normalised_matrix(matrix, self.exponent)
        top = float(self.singular_values_[0]) if len(self.singular_values_) else 0.0
        if top > 0:  # P~ / sigma_1^2: eigenvalues in [0, 1] whatever the exponent (sigma_1 = 1 at e = 1/2)
            self._normalised.data /= np.float32(top)
        device = torch.device(self.device)
        # Ideal low-pass as two factors: (r * d^-e) V and V^T * d^e.
        vectors = self.vectors_[:, : self._effective_rank(matrix.shape)]
        self._has_ideal = bool(vectors.shape[1])
        left = (vectors * item_scale[:, None]).astype(np.float32)
        with np.errstate(divide="ignore"):
            inverse = np.where(item_scale > 0, 1.0 / item_scale, 0.0)
        right = np.ascontiguousarray((vectors * inverse[:, None]).T, dtype=np.float32)
        num_items = matrix.shape[1]
        self._dense: Optional[torch.Tensor] = None
        if num_items <= self.dense_max_items:
            gram = torch.from_numpy((self._normalised.T @ self._normalised).toarray()).to(device)
            operator = gram.clone()
            if self._has_ideal:
                operator += self.alpha * (torch.from_numpy(left).to(device) @ torch.from_numpy(right).to(device))
            if self.sharpen:
                operator -= self.sharpen * (operator @ gram)
            self._dense = operator
            return
        self._left = torch.from_numpy(left).to(device)
        self._right = torch.from_numpy(right).to(device)
        if device.type != "cpu":
            self._r = _torch_csr(self._normalised, device)
            self._rt = _torch_csr(self._normalised.T.tocsr(), device)
        else:
            self._rt_csr = self._normalised.T.tocsr()

    # -- scoring --------------------------------------------------------------------------
    def _filter(self, rows: sp.csr_matrix) -> torch.Tensor:
        """The filter applied to a batch of users' rows: float32 ``[B, num_items]``."""
        device = torch.device(self.device)
        if self._dense is not None:
            return _dense_rows(rows, device) @ self._dense
        if device.type == "cpu":
            scores = torch.from_numpy(((rows @ self._rt_csr) @ self._normalised).toarray())
        else:
            dense = _dense_rows(rows, device)
            scores = self._propagate(dense)
        if self._has_ideal:
            scaled = _dense_rows(rows, device) if device.type == "cpu" else dense
            scores += self.alpha * ((scaled @ self._left) @ self._right)
        if self.sharpen:
            scores -= self.sharpen * self._propagate(scores)
        return scores

    def _propagate(self, dense: torch.Tensor) -> torch.Tensor:
        """``dense @ P~`` as ``((R~ dense^T)^T R~)`` without forming ``P~``."""
        if dense.device.type == "cpu":
            users = self._normalised @ dense.numpy().T  # [num_users, B]
            return torch.from_numpy(np.ascontiguousarray((self._rt_csr @ users).T, dtype=np.float32))
        users = torch.sparse.mm(self._r, dense.T.contiguous())
        return torch.sparse.mm(self._rt, users).T.contiguous()

    def score(self, users: np.ndarray) -> torch.Tensor:
        """Filtered scores of every item for known users (their ``fit`` rows).

        Args:
            users: int64 internal user indices, shape ``[B]``.

        Returns:
            float32 tensor ``[B, num_items]`` on :attr:`device`.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: an index outside ``[0, num_users)``.
        """
        self._check_fitted()
        index = as_user_index(users, num_users=self.user_items_.shape[0])
        return self._filter(self.user_items_[index])

    def score_new_users(self, user_items: sp.csr_matrix) -> torch.Tensor:
        """The same filter applied to rows of users the model was not fitted on.

        Args:
            user_items: CSR ``[B, num_items]`` of the users' interactions (0/1 or weights).

        Returns:
            float32 tensor ``[B, num_items]``.
        """
        self._check_fitted()
        return self._filter(as_user_items(user_items, num_items=self.user_items_.shape[1]))

    def item_embeddings(self) -> Optional[np.ndarray]:
        """``D_I^{-e} V`` (the ideal filter's item side), or ``None`` without an SVD."""
        if not self.is_fitted or not self.vectors_.shape[1]:
            return None
        _, scale = normalised_matrix(self.user_items_, self.exponent)
        return (self.vectors_ * scale[:, None]).astype(np.float32)

    # -- state ----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "singular_values": self.singular_values_,
            "vectors": self.vectors_,
            **csr_state("user_items", self.user_items_),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        for key in ("singular_values", "vectors"):
            if key not in state:
                raise ValueError(f"saved GraphFilter state has no {key!r} array")
        matrix = csr_from_state("user_items", state)
        vectors = np.asarray(state["vectors"], dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != matrix.shape[1]:
            raise ValueError(f"saved GraphFilter vectors have shape {vectors.shape}, expected ({matrix.shape[1]}, k)")
        self._build(matrix, (np.asarray(state["singular_values"], dtype=np.float32), vectors))


def _dense_rows(rows: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """A CSR batch as a dense float32 tensor on ``device``."""
    if device.type == "cpu":
        return torch.from_numpy(rows.toarray().astype(np.float32, copy=False))
    coo = rows.tocoo()
    dense = torch.zeros(rows.shape, dtype=torch.float32, device=device)
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)).to(device)
    dense[index[0], index[1]] = torch.from_numpy(coo.data.astype(np.float32)).to(device)
    return dense


def _torch_csr(matrix: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    return torch.sparse_csr_tensor(
        torch.from_numpy(matrix.indptr.astype(np.int64)),
        torch.from_numpy(matrix.indices.astype(np.int64)),
        torch.from_numpy(matrix.data.astype(np.float32)),
        size=matrix.shape,
    ).to(device)
