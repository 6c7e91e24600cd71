"""Implicit-feedback matrix factorisation: implicit's Alternating Least Squares.

Hu, Koren and Volinsky, "Collaborative Filtering for Implicit Feedback Datasets"
(ICDM 2008), solved with the conjugate-gradient updates of Takacs, Pilaszy and
Tikk (RecSys 2011), as implemented by `implicit <https://github.com/benfred/implicit>`_.

Every user-item pair is a preference ``p_ui`` (1 where the pair is in ``user_items``,
0 elsewhere) with a confidence ``c_ui``; ALS minimises

.. math::

    \\sum_{u,i} c_{ui} (p_{ui} - x_u^\\top y_i)^2
      + \\lambda \\Big(\\sum_u \\lVert x_u \\rVert^2 + \\sum_i \\lVert y_i \\rVert^2\\Big),
    \\qquad c_{ui} = 1 + \\alpha\\, w_{ui} \\text{ (stored pairs)}, \\quad c_{ui} = 1 \\text{ (the rest)}.

implicit reads the *stored value* of a pair as its confidence (times its own
``alpha``), not as ``w``; this module therefore hands implicit the matrix
``1 + alpha * w`` with implicit's ``alpha`` left at 1, which makes the formula
above exactly what is solved (a stored pair of weight 0 is a positive of
confidence 1). ``tests/training/test_als.py`` checks it against a direct solve.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import scipy.sparse as sp
import torch

from eval.checks import positive_float, positive_int
from kg.graph import Graph
from training.base import Callback, Learner, ModelFitError, as_user_index, as_user_items
from training.sources.names import Source

__all__ = ["ALS", "confidence_matrix"]


def confidence_matrix(user_items: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """The matrix implicit is fitted on: stored values ``1 + alpha * weight``.

    Args:
        user_items: validated float32 CSR of weights (see :func:`training.base.as_user_items`).
        alpha: confidence gained per unit of weight.

    Returns:
        A float32 CSR with the same sparsity pattern.

    Raises:
        ValueError: a confidence does not fit in float32.
    """
    values = 1.0 + alpha * user_items.data.astype(np.float64)
    if values.size and values.max() > np.finfo(np.float32).max:
        raise ValueError(
            f"alpha={alpha} times the largest weight ({user_items.data.max()}) overflows float32 confidences"
        )
    confidence = user_items.copy()
    confidence.data = values.astype(np.float32)
    return confidence


class ALS(Learner):
    """Implicit ALS (``implicit.als``) behind the :class:`~training.base.Learner` contract.

    Args:
        factors: latent dimensions.
        regularization: ``lambda`` above (implicit does not scale it by the number of
            interactions, so useful values grow with the data: ~10 on ml-100k).
        alpha: confidence per unit of weight, ``c = 1 + alpha * w``; 0 makes every
            positive count the same. Its best value shrinks as weights grow (raw
            play counts want ~0.1, 0/1 input ~1-5) and moves with
            ``regularization``: ``bench/tune_cf.py`` tunes both per data set.
        iterations: ALS sweeps (users then items).
        num_threads: OpenMP threads for fitting and fold-in. 0 lets OpenMP choose,
            which is every core (unless ``OMP_NUM_THREADS`` says otherwise). BLAS is
            held to one thread while fitting, as implicit recommends, since its
            per-user solves are already parallel.
        use_gpu: fit with implicit's CUDA ALS. ``None`` means "when
            ``implicit.gpu.HAS_CUDA`` and ``torch.cuda.is_available()``"; implicit's
            PyPI wheels are built without CUDA, so on them this is CPU.
        seed: seeds the random initial factors. The CPU fit is deterministic for
            any ``num_threads``: each user's (item's) solve reads only the other
            side's factors, so thread scheduling cannot change the result.
        device: where :meth:`score` computes (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Raises:
        ValueError: a hyper-parameter is out of range.
    """

    name = Source.ALS
    factor_scores = True

    def __init__(
        self,
        *,
        factors: int = 128,
        regularization: float = 30.0,
        alpha: float = 1.0,
        iterations: int = 30,
        num_threads: int = 0,
        use_gpu: Optional[bool] = None,
        seed: int = 2026,
        device: str = "cpu",
    ) -> None:
        for arg, value, low in (("factors", factors, 1), ("iterations", iterations, 1), ("num_threads", num_threads, 0)):
            positive_int(value, arg, minimum=low)
        positive_float(regularization, "regularization", reason=" (the least-squares solves need it)")
        positive_float(alpha, "alpha", allow_zero=True)
        if use_gpu is not None and not isinstance(use_gpu, bool):
            raise ValueError(f"use_gpu must be True, False or None (auto), got {use_gpu!r}")
        self.factors = int(factors)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.num_threads = int(num_threads)
        self.use_gpu = use_gpu
        self.seed = int(seed)
        self.device = str(device)
        self._fold_in_model = None

    # -- fitting --------------------------------------------------------------------------
    def _resolve_use_gpu(self) -> bool:
        import implicit.gpu

        available = bool(implicit.gpu.HAS_CUDA) and torch.cuda.is_available()
        if self.use_gpu is None:
            return available
        if self.use_gpu and not available:
            raise ValueError(
                f"use_gpu=True but implicit.gpu.HAS_CUDA={implicit.gpu.HAS_CUDA} and "
                f"torch.cuda.is_available()={torch.cuda.is_available()}; install implicit with its CUDA "
                "extension (conda-forge implicit-proc=*=gpu) or pass use_gpu=None/False"
            )
        return self.use_gpu

    def fit(
        self,
        graph: Graph,
        user_items: sp.csr_matrix,
        *,
        valid_items: Optional[sp.csr_matrix] = None,
        show_progress: bool = False,
        callback: Optional[Callback] = None,
    ) -> "ALS":
        """Factorise ``user_items`` (values are weights ``w``; see the module docstring).

        Args:
            graph: fixes ``num_users``/``num_items``; no side information is used.
            user_items: CSR ``[num_users, num_items]`` of non-negative weights.
            valid_items: ignored (ALS runs a fixed number of iterations).
            show_progress: implicit's tqdm bar (with the loss when ``callback`` is set).
            callback: ``callback(iteration, elapsed_seconds, loss)`` after each sweep;
                ``loss`` is implicit's training loss (the objective above divided by
                the total confidence), computed only when a callback is given.

        Returns:
            ``self``.

        Raises:
            TypeError: ``user_items`` is not a scipy sparse matrix.
            ValueError: its shape does not match ``graph``, or it is empty.
            ModelFitError: the factors came out NaN or infinite.
        """
        import threadpoolctl
        from implicit.recommender_base import ModelFitError as ImplicitModelFitError

        matrix = as_user_items(user_items, num_items=graph.num_items, num_users=graph.num_users)
        if matrix.nnz == 0:
            raise ValueError("user_items holds no interactions; there is nothing to learn from")
        confidence = confidence_matrix(matrix, self.alpha)
        use_gpu = self._resolve_use_gpu()

        def report(iteration: int, elapsed: float, loss: Optional[float]) -> None:
            callback(iteration, elapsed, float("nan") if loss is None else float(loss))

        # implicit warns when BLAS runs its own thread pool under its OpenMP one; its
        # advice (one BLAS thread) is also the faster setting.
        with threadpoolctl.threadpool_limits(1, "blas"):
            model = self._implicit_model(use_gpu, calculate_loss=callback is not None)
            try:
                model.fit(confidence, show_progress=show_progress, callback=report if callback else None)
            except ImplicitModelFitError as exc:
                raise ModelFitError(
                    f"implicit ALS diverged ({exc}; regularization={self.regularization}, alpha={self.alpha}); "
                    "raise regularization or lower alpha"
                ) from exc
        if use_gpu:
            model = model.to_cpu()
        user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        for side, factors in (("user", user_factors), ("item", item_factors)):
            bad = ~np.isfinite(factors).all(axis=1)
            if bad.any():
                raise ModelFitError(
                    f"ALS produced non-finite {side} factors for {int(bad.sum())} of {len(factors)} {side}s "
                    f"(regularization={self.regularization}, alpha={self.alpha}); raise regularization "
                    "or lower alpha"
                )
        self._set_factors(user_factors, item_factors)
        self.fitted_ = True
        return self

    def _implicit_model(self, use_gpu: bool, *, calculate_loss: bool):
        if use_gpu:
            import implicit.gpu.als

            return implicit.gpu.als.AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,
                iterations=self.iterations,
                calculate_training_loss=calculate_loss,
                random_state=self.seed,
            )
        import implicit.cpu.als

        return implicit.cpu.als.AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=1.0,  # the confidence is already in the matrix, see confidence_matrix
            dtype=np.float32,
            iterations=self.iterations,
            calculate_training_loss=calculate_loss,
            num_threads=self.num_threads,
            random_state=self.seed,
        )

    def _set_factors(self, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
        device = torch.device(self.device)
        self.user_factors_ = torch.from_numpy(user_factors).to(device)
        self.item_factors_ = torch.from_numpy(item_factors).to(device)
        self._fold_in_model = None

    # -- scoring --------------------------------------------------------------------------
    def score(self, users: np.ndarray) -> torch.Tensor:
        """``user_factors[users] @ item_factors.T``.

        Args:
            users: int64 internal user indices, shape ``[B]``.

        Returns:
            float32 tensor ``[B, num_items]`` on ``device``.

        Raises:
            NotFittedError: before ``fit``/``load``.
            ValueError: an index outside ``[0, num_users)``.
        """
        self._check_fitted()
        index = as_user_index(users, num_users=self.user_factors_.shape[0])
        rows = self.user_factors_[torch.from_numpy(index).to(self.user_factors_.device)]
        return rows @ self.item_factors_.T

    def recalculate_users(self, user_items: sp.csr_matrix) -> np.ndarray:
        """Fold users in: exact least-squares user factors against the fitted item factors.

        Uses implicit's ``recalculate_user`` (a Cholesky solve per user, batched and
        threaded); the model is not changed.

        Args:
            user_items: CSR ``[B, num_items]`` of weights, like ``fit``'s.

        Returns:
            float32 ``[B, factors]``; a row with no items gets zeros.

        Raises:
            NotFittedError: before ``fit``/``load``.
            TypeError: ``user_items`` is not a scipy sparse matrix.
            ValueError: it does not have one column per item.
        """
        self._check_fitted()
        import threadpoolctl

        rows = as_user_items(user_items, num_items=self.item_factors_.shape[0])
        if self._fold_in_model is None:
            import implicit.cpu.als

            with threadpoolctl.threadpool_limits(1, "blas"):
                model = implicit.cpu.als.AlternatingLeastSquares(
                    factors=self.factors,
                    regularization=self.regularization,
                    alpha=1.0,
                    dtype=np.float32,
                    num_threads=self.num_threads,
                )
            model.item_factors = self.item_factors_.cpu().numpy()
            self._fold_in_model = model
        with threadpoolctl.threadpool_limits(1, "blas"):
            factors = self._fold_in_model.recalculate_user(
                np.arange(rows.shape[0]), confidence_matrix(rows, self.alpha)
            )
        return np.asarray(factors, dtype=np.float32)

    def score_new_users(self, user_items: sp.csr_matrix) -> torch.Tensor:
        """Scores for users described only by their items (see :meth:`recalculate_users`).

        Args:
            user_items: CSR ``[B, num_items]`` of weights, like ``fit``'s.

        Returns:
            float32 tensor ``[B, num_items]`` on ``device``.
        """
        factors = torch.from_numpy(self.recalculate_users(user_items)).to(self.item_factors_.device)
        return factors @ self.item_factors_.T

    def item_embeddings(self) -> np.ndarray:
        """Item factors, float32 ``[num_items, factors]``."""
        self._check_fitted()
        return self.item_factors_.cpu().numpy().copy()

    def user_embeddings(self) -> np.ndarray:
        """User factors, float32 ``[num_users, factors]``."""
        self._check_fitted()
        return self.user_factors_.cpu().numpy().copy()

    # -- state ----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"user_factors": self.user_embeddings(), "item_factors": self.item_embeddings()}

    def _set_state(self, state: dict[str, Any]) -> None:
        for key in ("user_factors", "item_factors"):
            if key not in state:
                raise ValueError(f"saved ALS state has no {key!r} array")
            if state[key].ndim != 2 or state[key].shape[1] != self.factors:
                raise ValueError(f"saved {key} has shape {state[key].shape}, expected [n, {self.factors}]")
        self._set_factors(
            np.ascontiguousarray(state["user_factors"], dtype=np.float32),
            np.ascontiguousarray(state["item_factors"], dtype=np.float32),
        )

