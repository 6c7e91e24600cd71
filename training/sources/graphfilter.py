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
identity, no dense matrix product). Above that, with ``neighbors = m > 0``, the
operator is held sparse with each item's ``m`` largest-magnitude entries (``8 n m``
bytes, saved with the model): scoring is one sparse product, like item-KNN, instead
of ``2 + 2 sharpen_order`` passes over ``R~`` per user (gowalla, m = 1024: 0.42 against
4.84 CPU ms per user, the filter's validation NDCG@20 0.1370 against 0.1375 exact;
bench/results/graphfilter_neighbors.md). With ``neighbors = 0`` every product is
sparse per batch, exact, and the fitted state is ``R`` plus the ``num_items x rank``
matrix ``V``.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from training.base import ModelFitError, as_user_index, as_user_items, to_torch_csr
from training.sources.names import Source
from training.sources.neighbors import OnePassLearner, csr_from_state, csr_state, sparse_times
from training.sources.spectral import (
    KINDS,
    _degree_scales,
    _dense_rows,
    auto_rank,
    chebyshev_coefficients,
    check_settings,
    cpu_operators,
    filter_columns,
    filter_settings,
    normalised_matrix,
    randomized_svd,
    top_entries,
)

__all__ = ["GraphFilter", "auto_rank", "chebyshev_coefficients", "normalised_matrix", "randomized_svd"]


class GraphFilter(OnePassLearner):
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
            (``4 n^2`` bytes); above it the filter is sparse.
        neighbors: above ``dense_max_items``, entries kept per item of the sparse
            operator (built at fit, saved with the model); 0: no operator, every
            batch filtered exactly through ``R~``.
        seed: seeds the randomized SVD's sketch, so fits are reproducible.
        device: where :meth:`score` computes (``"cpu"``, ``"cuda"``); CUDA uses
            torch sparse CSR products.

    Raises:
        ValueError: a hyper-parameter is out of range.
    """

    name = Source.GRAPHFILTER
    KINDS = KINDS  # the filter families, owned by training.sources.spectral

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
        neighbors: int = 1024,
        seed: int = 2026,
        device: str = "cpu",
    ) -> None:
        check_settings(alpha=alpha, rank=rank, exponent=exponent, sharpen=sharpen, sharpen_order=sharpen_order,
                       kind=kind, order=order, flatness=flatness, degree_power=degree_power,
                       ideal_exponent=ideal_exponent, dense_max_items=dense_max_items, neighbors=neighbors,
                       seed=seed)  # fmt: skip
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
        self.neighbors = int(neighbors)
        self.seed = int(seed)
        self.device = str(device)

    # -- fitting --------------------------------------------------------------------------
    def _fit_matrix(self, matrix: sp.csr_matrix, *, show_progress: bool) -> float:
        """Normalise ``matrix`` (the pipeline passes 0/1, as the papers do) and compute the truncated SVD of ``R~``.

        Returns the share of ``||R~||_F^2`` the kept singular vectors leave out.

        Raises:
            ModelFitError: the SVD failed or produced non-finite vectors.
        """
        self._build(matrix, self._svd(matrix), show_progress=show_progress)
        # R~ is held divided by sigma_1 (see _build): undo it for ||R~||_F^2.
        top = float(self.singular_values_[0])
        energy = float(np.square(self._normalised.data, dtype=np.float64).sum()) * top**2
        kept = float(np.square(self.singular_values_, dtype=np.float64).sum())
        return max(0.0, 1.0 - kept / energy) if energy else 0.0

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

    def _build(
        self, matrix: sp.csr_matrix, svd: tuple[np.ndarray, np.ndarray], operator: Optional[sp.csr_matrix] = None,
        *, show_progress: bool = False,
    ) -> None:  # fmt: skip
        """Set the learned state and the operators derived from it on :attr:`device`.

        ``operator``: the sparse operator a saved model carries (built here when it applies and is
        not given, with a progress bar when ``show_progress``).
        """
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
        self._cpu_operators = None  # torch CSR views of R~, R~^T for the CPU linear filter, built on first use
        if device.type != "cpu":
            self._r = to_torch_csr(self._normalised, device)
            self._rt = to_torch_csr(self._rt_csr, device)
        self._dense: Optional[torch.Tensor] = None
        self._sparse: Optional[sp.csr_matrix] = None
        num_items = matrix.shape[1]
        if num_items <= self.dense_max_items:
            # The filter is linear in the row: filtering the identity gives its [n, n] operator.
            identity = sp.identity(num_items, dtype=np.float32, format="csr")
            block = 1024
            self._dense = torch.cat([self._filter(identity[i : i + block]) for i in range(0, num_items, block)])
        elif self.neighbors:
            if operator is None:
                operator = top_entries(self._filter, num_items, self.neighbors, show_progress=show_progress)
            elif operator.shape != (num_items, num_items):
                raise ValueError(f"saved GraphFilter operator has shape {operator.shape}, expected {(num_items,) * 2}")
            self._sparse = operator

    # -- scoring --------------------------------------------------------------------------
    def _filter(self, rows: sp.csr_matrix) -> torch.Tensor:
        """The filter applied to a batch of users' rows: float32 ``[B, num_items]``."""
        device = torch.device(self.device)
        if self._dense is not None:
            return _dense_rows(rows, device) @ self._dense
        if self._sparse is not None:  # scipy's product on the CPU, as item-KNN's sparse similarity
            return sparse_times(rows, self._sparse).to(device)
        if self.kind == "linear" and device.type == "cpu":
            ideal = self._has_ideal
            if self._cpu_operators is None:
                self._cpu_operators = cpu_operators(self._normalised, self._rt_csr)
            return filter_columns(
                rows, normalised=self._normalised, transposed=self._rt_csr, pre=self._pre,
                post=self._post.numpy() if self._post is not None else None,
                left=self._left.numpy() if ideal else None, right=self._right.numpy() if ideal else None,
                alpha=self.alpha, sharpen=self.sharpen, sharpen_order=self.sharpen_order,
                operators=self._cpu_operators,
            )  # fmt: skip
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
            ``self.with_filter(**setting).score_new_users(rows)`` up to float rounding
            for the exact filter (``neighbors`` is ignored: no sparse operator is used).

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: as :meth:`with_filter` (checked for every setting before any work).
        """
        return filter_settings(self, rows, settings)

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
            **(csr_state("operator", self._sparse) if self._sparse is not None else {}),
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
        operator = csr_from_state("operator", state) if "operator_data" in state else None
        self._build(matrix, (np.asarray(state["singular_values"], dtype=np.float32), vectors), operator)
