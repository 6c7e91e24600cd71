"""Graph filtering: a training-free item-item source from the normalised interaction matrix.

GF-CF (Shen et al., "How Powerful is Graph Convolution for Recommendation?",
CIKM 2021), BSPM (Choi et al., "Blurring-Sharpening Process Models for
Collaborative Filtering", SIGIR 2023) and ChebyCF (Kim et al., "Graph Spectral
Filtering with Chebyshev Interpolation for Recommendation", SIGIR 2025) score a
user's row ``r`` (binary history) with filters of the normalised matrix

.. math::

    \\tilde R = D_U^{-e} R\\, D_I^{-e}, \\qquad \\tilde P = \\tilde R^\\top \\tilde R

(``e`` = ``exponent``, 1/2 in the papers; ``P~`` is divided by its largest
eigenvalue ``sigma_1^2``, which is 1 at ``e = 1/2``, so its spectrum is [0, 1] and
``alpha``, ``sharpen`` and the Chebyshev filter mean the same for every exponent):

* a low-pass filter ``g(P~)`` of the row, pre-scaled by ``D_I^{-b}`` and post-scaled
  by ``D_I^{b}`` (``b`` = ``degree_power``, ChebyCF's degree normalisation; 0: none):
  ``kind="linear"``: ``g(P~) = P~`` (GF-CF, BSPM's one-step blur);
  ``kind="chebyshev"``: ChebyCF's plateau response ``g(l) = 1/2 - 1/2 sign(x)|x|^phi``
  with ``x = 1 - 2l`` (``phi`` = ``flatness``; ``phi = 1`` is the linear filter),
  interpolated by a Chebyshev polynomial of ``order`` in ``L = I - 2 P~``;
* an **ideal** low-pass filter ``r D_I^{-c} V V^T D_I^{c}`` with ``V`` the top
  ``rank`` right singular vectors of ``R~`` (weighted by ``alpha``; ``c`` =
  ``ideal_exponent``, default ``exponent``);
* optionally BSPM's **sharpening** ``s <- s exp(-sharpen P~)``, the ODE
  ``ds/dt = -s P~`` integrated over time ``sharpen`` in one step of a Taylor
  polynomial of degree ``sharpen_order`` (1: one Euler step ``s - sharpen s P~``;
  4: one classical Runge-Kutta step, BSPM's Gowalla setting).

Every term is a polynomial in ``P~`` applied to the row, so scoring needs only
products with ``R~`` (two sparse products per power of ``P~``); nothing is learned
by gradient descent: ``fit`` normalises ``R`` and computes the truncated SVD (a
seeded randomized SVD: 3 s on ml-100k where a dense eigendecomposition took 50 s
on a loaded machine). A user's scores are a function of their row only, so
fold-in of new users is exact and free.

Memory: when the catalogue has at most ``dense_max_items`` items the whole filter
is held as one dense ``[n, n]`` operator (``4 n^2`` bytes; built by filtering the
identity, no dense matrix product); above that every product is sparse per batch,
and the fitted state is ``R`` plus the ``num_items x rank`` matrix ``V``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from kg.graph import Graph
from training.base import Callback, Learner, ModelFitError, as_user_index, as_user_items
from training.neighbors import csr_from_state, csr_state, fit_matrix

COLUMN_BLOCK = 64
"""Users per cache-sized block in the CPU filter (:meth:`GraphFilter._filter_columns`)."""

__all__ = ["GraphFilter", "auto_rank", "chebyshev_coefficients", "normalised_matrix", "randomized_svd"]


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
    """``rank="auto"``: ``num_items / 80`` within [16, 512].

    A rule read off the validation searches of ``bench/graphfilter.py``: a small
    dense catalogue wants few singular vectors (ml-100k, 1,682 items: 16-32), a
    large sparse one many (Gowalla, 41k items: 512 beat 256 in every filter family;
    BSPM used 448, ChebyCF 512).
    """
    return int(min(512, max(16, num_items // 80)))


def chebyshev_coefficients(order: int, flatness: float) -> np.ndarray:
    """Chebyshev interpolation coefficients of ChebyCF's plateau response.

    The target on ``x`` in [-1, 1] (``x = 1 - 2 l`` for an eigenvalue ``l`` of ``P~``)
    is ``f(x) = 1/2 - 1/2 sign(x) |x|^flatness``: 1 at the top of the spectrum
    (``l = 1``), 0 at its bottom, flat around the middle for ``flatness > 1``. It is
    interpolated at the ``order + 1`` Chebyshev nodes ``x_j = cos(pi (j + 1/2) / (order + 1))``
    (the discrete orthogonality of ``T_k`` at those nodes gives the coefficients).

    Returns:
        float64 ``[order + 1]``: ``f(x) ~ sum_k c_k T_k(x)``.
    """
    nodes = np.cos(np.pi * (np.arange(order + 1) + 0.5) / (order + 1))
    target = 0.5 - 0.5 * np.sign(nodes) * np.abs(nodes) ** flatness
    basis = np.polynomial.chebyshev.chebvander(nodes, order)  # [nodes, k]: T_k(x_j)
    coefficients = basis.T @ target * (2.0 / (order + 1))
    coefficients[0] /= 2.0
    return coefficients


class GraphFilter(Learner):
    """Low-pass + ideal graph filter (GF-CF, ChebyCF), with optional BSPM sharpening.

    .. math::

        s(r) = \\big(r D_I^{-b}\\, g(\\tilde P)\\big) D_I^{b}
              + \\alpha\\, r D_I^{-c} V V^\\top D_I^{c},
        \\qquad s \\leftarrow s \\sum_{j \\le m} (-t \\tilde P)^j / j!

    Args:
        alpha: weight of the ideal low-pass term (GF-CF used 0.3 on Gowalla).
        rank: singular vectors in the ideal low-pass term (capped at
            ``min(num_users, num_items) - 1``); 0 drops the term; ``"auto"``:
            :func:`auto_rank` of the catalogue size.
        exponent: ``e`` of the degree normalisation of ``R~`` (1/2: the symmetric one).
        sharpen: ``t``, BSPM's sharpening time (on ``P~`` scaled to spectral radius 1); 0: none.
        sharpen_order: ``m``, degree of the one-step Taylor polynomial of ``exp(-t P~)``
            (1: Euler, 4: Runge-Kutta 4); each degree costs one more pass over ``R~``.
        kind: ``"linear"`` (``g(P~) = P~``) or ``"chebyshev"`` (ChebyCF's plateau response).
        order: degree of the Chebyshev polynomial (``kind="chebyshev"``; ``order``
            passes over ``R~`` per batch).
        flatness: ``phi`` of the plateau response (1: linear; ChebyCF used 1.5 on Gowalla).
        degree_power: ``b``, ChebyCF's item-degree pre/post normalisation of ``g``'s input
            and output (0: none).
        ideal_exponent: ``c`` of the ideal term's degree scaling (``None``: ``exponent``).
        dense_max_items: largest catalogue for which the whole filter is held densely
            (``4 n^2`` bytes); above it every product is sparse.
        seed: seeds the randomized SVD's sketch, so fits are reproducible.
        device: where :meth:`score` computes (``"cpu"``, ``"cuda"``); CUDA uses
            torch sparse CSR products.

    Raises:
        ValueError: a hyper-parameter is out of range.
    """

    name = "graphfilter"
    KINDS = ("linear", "chebyshev")

    def __init__(
        self,
        *,
        alpha: float = 0.3,
        rank: int | str = "auto",
        exponent: float = 0.5,
        sharpen: float = 1.5,
        sharpen_order: int = 4,
        kind: str = "linear",
        order: int = 8,
        flatness: float = 1.5,
        degree_power: float = 0.0,
        ideal_exponent: Optional[float] = None,
        dense_max_items: int = 10_000,
        seed: int = 2026,
        device: str = "cpu",
    ) -> None:
        checked = (("dense_max_items", dense_max_items, 0, None), ("seed", seed, 0, None),
                   ("sharpen_order", sharpen_order, 1, 8), ("order", order, 1, 64))  # fmt: skip
        if rank != "auto":
            checked += (("rank", rank, 0, None),)
        for arg, value, low, high in checked:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{arg} must be an integer >= {low}, got {value!r}")
            if high is not None and value > high:
                raise ValueError(f"{arg} must be at most {high}, got {value!r}")
        for arg, value in (("alpha", alpha), ("sharpen", sharpen), ("flatness", flatness)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{arg} must be a finite number >= 0, got {value!r}")
        if not flatness > 0:
            raise ValueError(f"flatness must be > 0 (1: the linear response), got {flatness!r}")
        for arg, value in (("exponent", exponent), ("degree_power", degree_power), ("ideal_exponent", ideal_exponent)):
            if value is None and arg == "ideal_exponent":
                continue
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ValueError(f"{arg} must be in [0, 1] (1/2: symmetric normalisation), got {value!r}")
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.alpha = float(alpha)
        self.rank = rank if rank == "auto" else int(rank)
        self.exponent = float(exponent)
        self.sharpen = float(sharpen)
        self.sharpen_order = int(sharpen_order)
        self.kind = str(kind)
        self.order = int(order)
        self.flatness = float(flatness)
        self.degree_power = float(degree_power)
        self.ideal_exponent = None if ideal_exponent is None else float(ideal_exponent)
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

    def with_filter(self, **changes: Any) -> "GraphFilter":
        """A fitted copy with other filter settings, reusing this fit's SVD.

        Validation searches vary ``alpha``, ``rank``, ``sharpen``, ``kind``, ``order``,
        ``degree_power`` ... without recomputing the SVD (the expensive part);
        ``exponent`` changes ``R~`` and needs a new ``fit``.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: ``rank`` above the rank this learner was fitted with, an unknown
                setting, or a different ``exponent``/``seed``.
        """
        self._check_fitted()
        config = self.get_config()
        unknown = sorted(set(changes) - set(config))
        if unknown:
            raise ValueError(f"with_filter: unknown settings {unknown}; known: {sorted(config)}")
        for fixed in ("exponent", "seed"):
            if fixed in changes and changes[fixed] != config[fixed]:
                raise ValueError(f"with_filter cannot change {fixed} (it changes the SVD): fit a new GraphFilter")
        config.update({k: v for k, v in changes.items() if v is not None or k == "ideal_exponent"})
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
        self._normalised, _ = normalised_matrix(matrix, self.exponent)
        top = float(self.singular_values_[0]) if len(self.singular_values_) else 0.0
        if top > 0:  # P~ / sigma_1^2: eigenvalues in [0, 1] whatever the exponent (sigma_1 = 1 at e = 1/2)
            self._normalised.data /= np.float32(top)
        device = torch.device(self.device)
        degree = np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()
        # Ideal low-pass as two factors: (r * d^-c) V and V^T * d^c.
        vectors = self.vectors_[:, : self._effective_rank(matrix.shape)]
        self._has_ideal = bool(vectors.shape[1])
        ideal = self.exponent if self.ideal_exponent is None else self.ideal_exponent
        scale, inverse = _degree_scales(degree, ideal)
        self._left = torch.from_numpy((vectors * scale[:, None]).astype(np.float32)).to(device)
        self._right = torch.from_numpy(np.ascontiguousarray((vectors * inverse[:, None]).T, dtype=np.float32)).to(device)
        pre, post = _degree_scales(degree, self.degree_power)
        self._pre = sp.diags(pre.astype(np.float32)) if self.degree_power else None
        self._post = torch.from_numpy(post.astype(np.float32)).to(device) if self.degree_power else None
        self._coefficients = chebyshev_coefficients(self.order, self.flatness) if self.kind == "chebyshev" else None
        self._rt_csr = self._normalised.T.tocsr()
        if device.type != "cpu":
            self._r = _torch_csr(self._normalised, device)
            self._rt = _torch_csr(self._rt_csr, device)
        self._dense: Optional[torch.Tensor] = None
        num_items = matrix.shape[1]
        if num_items <= self.dense_max_items:
            # The filter is linear in the row: filtering the identity gives its [n, n] operator.
            identity = sp.identity(num_items, dtype=np.float32, format="csr")
            block = 1024
            self._dense = torch.cat([self._filter(identity[i : i + block]) for i in range(0, num_items, block)])

    # -- scoring --------------------------------------------------------------------------
    def _filter(self, rows: sp.csr_matrix) -> torch.Tensor:
        """The filter applied to a batch of users' rows: float32 ``[B, num_items]``."""
        device = torch.device(self.device)
        if self._dense is not None:
            return _dense_rows(rows, device) @ self._dense
        if self.kind == "linear" and device.type == "cpu":
            return self._filter_columns(rows)
        scaled = rows @ self._pre if self._pre is not None else rows
        if self.kind == "linear":
            scores = self._propagate(_dense_rows(scaled, device))
        else:
            scores = self._chebyshev(_dense_rows(scaled, device))
        if self._post is not None:
            scores *= self._post
        if self._has_ideal:
            scores += self.alpha * ((_dense_rows(rows, device) @ self._left) @ self._right)
        if self.sharpen:
            term = scores
            for step in range(1, self.sharpen_order + 1):  # sum_j (-t P~)^j / j!, one Taylor step of exp(-t P~)
                term = self._propagate(term) * (-self.sharpen / step)
                scores = scores + term
        return scores

    def _filter_columns(self, rows: sp.csr_matrix) -> torch.Tensor:
        """:meth:`_filter` of the linear kind on CPU, computed on transposed ``[num_items, b]`` blocks.

        The same terms in the same order as the row form, laid out for the cache: users
        go through in blocks of :data:`COLUMN_BLOCK`, each kept as C-ordered columns, so
        every power of ``P~`` is ``R~^T (R~ X)`` streamed row by row over an ``X`` that
        stays in the last-level cache (gowalla, 41k items, one thread: 0.56 ms per user and
        power with blocks of 64 against 0.92 ms with 256). The first pass ``r R~^T`` is
        sparse on the user's row, and the ideal term multiplies the sparse rows (not a
        dense copy) by ``V``. Scores equal the row form's up to float rounding.
        """
        left = self._left.numpy() if self._has_ideal else None
        right = self._right.numpy().T if self._has_ideal else None  # [n, k]
        out = np.empty(rows.shape, dtype=np.float32)
        for start in range(0, rows.shape[0], COLUMN_BLOCK):
            part = rows[start : start + COLUMN_BLOCK]
            scaled = part @ self._pre if self._pre is not None else part
            users = np.asarray((scaled @ self._rt_csr).T.toarray(), dtype=np.float32)  # r R~^T: [num_users, b]
            block = self._rt_csr @ users  # r P~: [n, b]
            if self._post is not None:
                block *= self._post.numpy()[:, None]
            if self._has_ideal:
                block += self.alpha * (right @ np.asarray(part @ left, dtype=np.float32).T)
            if self.sharpen:
                term = block
                for step in range(1, self.sharpen_order + 1):  # sum_j (-t P~)^j / j!, as in the row form
                    term = self._rt_csr @ (self._normalised @ term)
                    term *= np.float32(-self.sharpen / step)
                    block += term
            out[start : start + part.shape[0]] = block.T
        return torch.from_numpy(out)

    def _chebyshev(self, signal: torch.Tensor) -> torch.Tensor:
        """``sum_k c_k T_k(L) signal`` with ``L = I - 2 P~`` (three-term recurrence, row form)."""
        coefficients = self._coefficients
        previous, current = signal, signal - 2.0 * self._propagate(signal)
        out = coefficients[0] * previous + coefficients[1] * current
        for k in range(2, len(coefficients)):
            previous, current = current, 2.0 * (current - 2.0 * self._propagate(current)) - previous
            out += coefficients[k] * current
        return out

    def _propagate(self, dense: torch.Tensor) -> torch.Tensor:
        """``dense @ P~`` as ``((R~ dense^T)^T R~)`` without forming ``P~``."""
        if dense.device.type == "cpu":
            users = self._normalised @ dense.numpy().T  # [num_users, B]
            return torch.from_numpy(np.ascontiguousarray((self._rt_csr @ users).T, dtype=np.float32))
        users = torch.sparse.mm(self._r, dense.T.contiguous())
        return torch.sparse.mm(self._rt, users).T.contiguous()

    def score_settings(self, rows: sp.csr_matrix, settings: Sequence[Mapping[str, Any]]) -> Iterator[torch.Tensor]:
        """The same rows filtered under many settings, sharing the powers of ``P~``.

        Every setting is a polynomial in ``P~`` applied to the rows, so a search over
        ``alpha``/``rank``/``sharpen``/``sharpen_order``/``flatness``/``order`` needs each
        power ``r P~^j`` (two sparse passes) once per batch, not once per setting: the
        scores of a setting are a weighted sum of cached powers. ``exponent`` and ``seed``
        stay this fit's. Memory: one ``[B, num_items]`` float32 block per cached power.

        Args:
            rows: CSR ``[B, num_items]`` of users' rows (as :meth:`score_new_users`).
            settings: keyword changes as :meth:`with_filter` takes them.

        Yields:
            float32 ``[B, num_items]`` per setting, in order; equal to
            ``self.with_filter(**setting).score_new_users(rows)`` up to float rounding.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: as :meth:`with_filter` (checked for every setting before any work).
        """
        self._check_fitted()
        rows = as_user_items(rows, num_items=self.user_items_.shape[1])
        config = self.get_config()
        learners = []
        for setting in settings:
            unknown = sorted(set(setting) - set(config))
            if unknown or any(setting.get(k, config[k]) != config[k] for k in ("exponent", "seed")):
                raise ValueError(f"score_settings: {dict(setting)} changes {unknown or 'exponent/seed'}")
            learner = GraphFilter(**{**config, **setting})
            if learner._effective_rank(self.user_items_.shape) > self.vectors_.shape[1]:
                raise ValueError(f"rank={learner.rank} needs more singular vectors than this fit kept ({self.vectors_.shape[1]})")
            learners.append(learner)
        device = torch.device(self.device)
        degree = np.asarray(self.user_items_.sum(axis=0), dtype=np.float64).ravel()
        dense = _dense_rows(rows, device)
        memo: dict[tuple, torch.Tensor] = {}

        def scales(power: float) -> tuple[torch.Tensor, torch.Tensor]:
            if ("d", power) not in memo:
                pre, post = _degree_scales(degree, power)
                memo["d", power] = torch.from_numpy(pre.astype(np.float32)).to(device)
                memo["D", power] = torch.from_numpy(post.astype(np.float32)).to(device)
            return memo["d", power], memo["D", power]

        def cached(key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
            if key not in memo:
                memo[key] = make()
            return memo[key]

        def signal(power: float) -> torch.Tensor:  # r D^-b
            return cached(("x", power), lambda: dense * scales(power)[0] if power else dense)

        def linear(power: float, j: int) -> torch.Tensor:  # ((r D^-b P~) D^b) P~^j
            if j == 0:
                return cached(("lin", power, 0), lambda: self._propagate(signal(power)) * (scales(power)[1] if power else 1.0))
            return cached(("lin", power, j), lambda: self._propagate(linear(power, j - 1)))

        def chebyshev(power: float, k: int) -> torch.Tensor:  # T_k(I - 2 P~) applied to r D^-b
            if k == 0:
                return signal(power)
            if k == 1:
                return cached(("T", power, 1), lambda: signal(power) - 2.0 * self._propagate(signal(power)))
            return cached(("T", power, k), lambda: 2.0 * (chebyshev(power, k - 1) - 2.0 * self._propagate(
                chebyshev(power, k - 1))) - chebyshev(power, k - 2))  # fmt: skip

        def ideal(rank: int, power: float, j: int) -> torch.Tensor:  # (r D^-c V V^T D^c) P~^j
            if j == 0:
                def make() -> torch.Tensor:
                    pre, post = scales(power)
                    vectors = torch.from_numpy(self.vectors_[:, :rank]).to(device)
                    return ((dense * pre) @ vectors) @ (vectors.T * post)
                return cached(("ideal", rank, power, 0), make)
            return cached(("ideal", rank, power, j), lambda: self._propagate(ideal(rank, power, j - 1)))

        for learner in learners:
            power = learner.degree_power
            steps = learner.sharpen_order if learner.sharpen else 0
            weights = [(-learner.sharpen) ** j / math.factorial(j) for j in range(steps + 1)]
            rank = learner._effective_rank(self.user_items_.shape)
            ideal_power = learner.exponent if learner.ideal_exponent is None else learner.ideal_exponent
            if learner.kind == "linear":
                scores = sum(w * linear(power, j) for j, w in enumerate(weights))
                if rank:
                    scores = scores + learner.alpha * sum(w * ideal(rank, ideal_power, j) for j, w in enumerate(weights))
                yield scores
                continue
            coefficients = chebyshev_coefficients(learner.order, learner.flatness)
            scores = sum(float(c) * chebyshev(power, k) for k, c in enumerate(coefficients))
            if power:
                scores = scores * scales(power)[1]
            if rank:
                scores = scores + learner.alpha * ideal(rank, ideal_power, 0)
            term = scores
            for j in range(1, steps + 1):  # sharpening a Chebyshev output: no shared powers
                term = self._propagate(term) * (-learner.sharpen / j)
                scores = scores + term
            yield scores

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
            # also in the config; here too so that artifacts saved before sharpen_order existed
            # (whose config lacks it) load with the one Euler step they were fitted with
            "sharpen_order": self.sharpen_order,
            **csr_state("user_items", self.user_items_),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        for key in ("singular_values", "vectors"):
            if key not in state:
                raise ValueError(f"saved GraphFilter state has no {key!r} array")
        self.sharpen_order = int(state.get("sharpen_order", 1))
        matrix = csr_from_state("user_items", state)
        vectors = np.asarray(state["vectors"], dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != matrix.shape[1]:
            raise ValueError(f"saved GraphFilter vectors have shape {vectors.shape}, expected ({matrix.shape[1]}, k)")
        self._build(matrix, (np.asarray(state["singular_values"], dtype=np.float32), vectors))


def _degree_scales(degree: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray]:
    """``(d^-power, d^power)`` per item, both 0 for items nobody has."""
    scale = np.zeros_like(degree)
    np.power(degree, -power, out=scale, where=degree > 0)
    inverse = np.zeros_like(degree)
    np.power(degree, power, out=inverse, where=degree > 0)
    return scale, inverse


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
