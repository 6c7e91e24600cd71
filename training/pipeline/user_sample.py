"""Training on a seeded sample of users and folding every other user in (``user_sample``).

When a log's user side does not fit, every source, the GNN and the hybrid ranker can
be fitted on the train rows of a seeded sample of users only (``--set user_sample=0.5``
or ``=200000``). The graph and its id maps are untouched: an unsampled user keeps its
index, but its rows are empty in every matrix a learner sees. Such users are served,
and evaluated, by fold-in from their own rows, exactly as a new user is
(:meth:`training.base.Learner.score_new_users` per source, the ranker's ``score_rows``
on top): :func:`fold_in_scorer` routes each user of a batch to the right path.

A fitted user's history is its ``train + valid`` rows; an unsampled user is folded in
from the same rows, each source's weighted as that source was fitted
(``TrainConfig.weighted``), and the ranker's history features from the binary rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import scipy.sparse as sp
import torch

from training.base import Learner
from training.pipeline.config import check_user_sample

__all__ = ["UserSample", "draw_user_sample", "fold_in_hybrid", "fold_in_scorer", "fold_in_sources"]

Scores = Union[np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class UserSample:
    """Which users the learners were fitted on.

    Attributes:
        fitted: bool ``[num_users]``, true for the sampled (fitted) users.
        setting: the ``user_sample`` setting that drew it (a fraction in (0, 1) or a count).
        seed: the seed of the draw.
    """

    fitted: np.ndarray
    setting: float
    seed: int

    @property
    def num_users(self) -> int:
        return len(self.fitted)

    @property
    def num_fitted(self) -> int:
        return int(self.fitted.sum())

    def restrict(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """``matrix`` (``[num_users, n]`` CSR) with every unsampled user's row emptied."""
        matrix = sp.csr_matrix(matrix)
        if matrix.shape[0] != self.num_users:
            raise ValueError(f"matrix has {matrix.shape[0]} rows, expected one per user ({self.num_users})")
        lengths = np.diff(matrix.indptr)
        keep = np.repeat(self.fitted, lengths)
        indptr = np.concatenate([[0], np.cumsum(lengths * self.fitted)]).astype(matrix.indptr.dtype)
        return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)

    def to_dict(self) -> dict[str, Any]:
        """What the manifest's notes and the report say about the sample."""
        return {
            "setting": self.setting, "seed": self.seed, "users": self.num_users, "fitted": self.num_fitted,
            "folded_in": self.num_users - self.num_fitted,
        }  # fmt: skip


def draw_user_sample(num_users: int, setting: float, seed: int) -> Optional[UserSample]:
    """The seeded sample of ``setting`` users, or ``None`` when every user is fitted.

    Args:
        num_users: users of the graph.
        setting: 0 (off), a fraction in (0, 1) (``ceil(fraction * num_users)`` users) or a
            whole count >= 1 (at least every user: off).
        seed: seeds the draw (``numpy.random.default_rng(seed)``, without replacement).

    Raises:
        ValueError: a negative setting, or a count >= 1 that is not whole.
    """
    check_user_sample(setting)
    if setting == 0:
        return None
    size = math.ceil(setting * num_users) if setting < 1 else int(setting)
    if size >= num_users:
        return None
    fitted = np.zeros(num_users, dtype=bool)
    fitted[np.random.default_rng(seed).choice(num_users, size=size, replace=False)] = True
    return UserSample(fitted=fitted, setting=setting, seed=seed)


def fold_in_sources(
    sources: Mapping[str, Any], rows: sp.csr_matrix, source_rows: Optional[Mapping[str, sp.csr_matrix]] = None
) -> dict[str, Scores]:
    """Every source's scores of users known only by ``rows`` (CSR ``[B, num_items]``).

    Learners fold the rows in (``score_new_users``), or their own ``source_rows[name]`` where
    given (the same users' rows weighted as that source was fitted); a user-independent
    callable source (``eval.MostPop``) is asked for ``B`` rows.
    """
    batch = np.zeros(rows.shape[0], np.int64)
    own = source_rows or {}
    return {
        name: source.score_new_users(own.get(name, rows)) if isinstance(source, Learner) else source(batch)
        for name, source in sources.items()
    }


def fold_in_hybrid(
    ranker: Any,
    sources: Mapping[str, Any],
    rows: sp.csr_matrix,
    history_times: Optional[sp.csr_matrix] = None,
    *,
    source_rows: Optional[Mapping[str, sp.csr_matrix]] = None,
) -> torch.Tensor:
    """The hybrid ranker's scores ``[B, num_items]`` of users known only by ``rows``, ``-inf`` outside the candidates.

    Every source of the ranker folds the rows in (:func:`fold_in_sources`) and the ranker
    fuses them as for a fitted user (``score_rows``), ``ranker.batch_users`` rows at a time.

    Args:
        ranker: a fitted ``training.ranker.HybridRanker`` bound to its context.
        sources: name -> source, holding at least the ranker's.
        rows: CSR ``[B, num_items]``, the users' known items (never candidates).
        history_times: CSR ``[B, num_items]`` float64 timestamps of ``rows``, or ``None``.
        source_rows: per source, the same users' rows to fold in from instead of ``rows``
            (weighted as that source was fitted), or ``None``.
    """
    rows = sp.csr_matrix(rows, dtype=np.float32)
    used = {name: sources[name] for name in ranker.source_names_}
    parts = []
    for start in range(0, rows.shape[0], ranker.batch_users):
        end = start + ranker.batch_users
        block = rows[start:end]
        times = history_times[start:end] if history_times is not None else None
        own = {name: matrix[start:end] for name, matrix in (source_rows or {}).items()}
        parts.append(ranker.score_rows(fold_in_sources(used, block, own), block, history_times=times).float().cpu())
    return torch.cat(parts) if parts else torch.zeros((0, rows.shape[1]))


def fold_in_scorer(
    score_users: Callable[[np.ndarray], Scores],
    score_rows: Callable[[np.ndarray], Scores],
    fitted: np.ndarray,
) -> Callable[[np.ndarray], torch.Tensor]:
    """A row scorer that scores fitted users with ``score_users`` and the others with ``score_rows``.

    Args:
        score_users: ``users -> [B, n]`` for fitted users (the learner's or ranker's ``score``).
        score_rows: ``users -> [B, n]`` by fold-in from those users' rows.
        fitted: bool ``[num_users]`` (:attr:`UserSample.fitted`).

    Returns:
        ``scorer(users int64 [B]) -> float32 [B, n]`` on the CPU, in the order of ``users``.
    """

    def scorer(users: np.ndarray) -> torch.Tensor:
        users = np.asarray(users, dtype=np.int64)
        known = fitted[users]
        if known.all():
            return torch.as_tensor(score_users(users)).float().cpu()
        folded = torch.as_tensor(score_rows(users[~known])).float().cpu()
        if not known.any():
            return folded
        out = torch.empty((len(users), folded.shape[1]), dtype=torch.float32)
        out[torch.from_numpy(~known)] = folded
        out[torch.from_numpy(known)] = torch.as_tensor(score_users(users[known])).float().cpu()
        return out

    return scorer
