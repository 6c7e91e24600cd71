"""The GNN's training schedule, sized to the graph when left at ``"auto"``.

A full-graph step propagates over every edge once forwards and once backwards,
whatever the batch holds, so the cost of an epoch is ``steps x edges``. With a
fixed batch of 2,048 pairs an epoch of ``P`` positives takes ``P / 2048`` full
propagations: cost ``P x E``, quadratic in the log. The automatic schedule fixes
the number of steps per epoch instead (:data:`STEPS_PER_EPOCH`, the batch grows
with ``P``), so an epoch costs ``O(STEPS_PER_EPOCH x E + P)``, linear in the
graph; one negative per positive (a bigger batch already brings enough pairs);
validation every :data:`AUTO_EVAL_EVERY` epochs on at most
:data:`VALIDATION_USERS` users; at most :data:`AUTO_EPOCHS` epochs; stop after
:data:`AUTO_PATIENCE` validations without a relative gain of more than
:data:`AUTO_MIN_GAIN` (large logs keep creeping up by a few hundredths of a percent
per validation long after the curve has flattened: bench/gnn_early_stop.py).
Explicit values override each choice.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Union

import numpy as np
import scipy.sparse as sp

from training.base import sample_at_most

__all__ = [
    "AUTO",
    "AUTO_EPOCHS",
    "AUTO_EVAL_EVERY",
    "AUTO_MIN_GAIN",
    "AUTO_PATIENCE",
    "MIN_BATCH",
    "STEPS_PER_EPOCH",
    "Schedule",
    "VALIDATION_USERS",
    "resolve_schedule",
    "validation_sample",
    "warm_epochs",
]

AUTO = "auto"
STEPS_PER_EPOCH = 8
"""Full-graph propagations (optimiser steps) per epoch of the automatic schedule."""
MIN_BATCH = 2048
"""Smallest automatic batch (small graphs: the classic LightGCN batch)."""
AUTO_NEGATIVES = 1
AUTO_EPOCHS = 120
AUTO_EVAL_EVERY = 2
AUTO_PATIENCE = 4
AUTO_MIN_GAIN = 0.002
"""Relative validation gain that counts as progress. Chosen on the validation curves of
bench/gnn_early_stop.py: the largest value tried that keeps at least 98.9% of each curve's
best validation NDCG@20 on ml-100k, gowalla and synth-1m (0.005 kept 98.45% on gowalla);
it stops gowalla where no minimum gain does, ml-100k 10% and synth-1m 30% earlier."""
VALIDATION_USERS = 3000
"""Validation users per evaluation (a seeded sample above it; NDCG@20 of 3,000 users is a stable signal)."""

Setting = Union[int, str]
GainSetting = Union[float, str]


@dataclass(frozen=True)
class Schedule:
    """The resolved loop settings of one fit (what ``"auto"`` became).

    Attributes:
        batch_size: positive pairs per step.
        num_negatives: negatives per positive.
        epochs: maximum epochs.
        eval_every: epochs between validations.
        patience: validations without progress before stopping.
        steps_per_epoch: full-graph propagations per epoch.
        min_gain: a validation is progress when it beats the last one that was by
            more than this fraction (the best weights are kept regardless).
    """

    batch_size: int
    num_negatives: int
    epochs: int
    eval_every: int
    patience: int
    steps_per_epoch: int
    min_gain: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def describe(self) -> str:
        """One line for the log: ``batch 8,083 x 1 negative, 8 steps/epoch, ...``."""
        return (
            f"batch {self.batch_size:,} x {self.num_negatives} negative(s), {self.steps_per_epoch} steps/epoch, "
            f"at most {self.epochs} epochs, validation every {self.eval_every}, patience {self.patience}, "
            f"min gain {self.min_gain:.1%}"
        )


def resolve_schedule(
    num_pairs: int, *, batch_size: Setting, num_negatives: Setting, epochs: Setting, eval_every: Setting,
    patience: Setting, min_gain: GainSetting = AUTO,
) -> Schedule:  # fmt: skip
    """Turn ``"auto"`` settings into numbers for a fit on ``num_pairs`` positives (module docstring).

    Examples:
        >>> resolve_schedule(64_660, batch_size="auto", num_negatives="auto", epochs="auto",
        ...                  eval_every="auto", patience="auto").batch_size
        8083
    """
    batch = max(MIN_BATCH, math.ceil(num_pairs / STEPS_PER_EPOCH)) if batch_size == AUTO else int(batch_size)
    return Schedule(
        batch_size=batch,
        num_negatives=AUTO_NEGATIVES if num_negatives == AUTO else int(num_negatives),
        epochs=AUTO_EPOCHS if epochs == AUTO else int(epochs),
        eval_every=AUTO_EVAL_EVERY if eval_every == AUTO else int(eval_every),
        patience=AUTO_PATIENCE if patience == AUTO else int(patience),
        steps_per_epoch=max(1, math.ceil(num_pairs / batch)),
        min_gain=AUTO_MIN_GAIN if min_gain == AUTO else float(min_gain),
    )


def validation_sample(valid: sp.csr_matrix, *, max_users: int = VALIDATION_USERS, seed: int = 0) -> sp.csr_matrix:
    """``valid`` restricted to a seeded sample of at most ``max_users`` of its users (same shape).

    Validation scores every item for every validation user; above a few thousand
    users that is the dominant cost of early stopping and adds no signal.
    """
    users = np.flatnonzero(np.diff(valid.indptr) > 0)
    if len(users) <= max_users:
        return valid
    keep = np.zeros(valid.shape[0], np.float32)
    keep[sample_at_most(users, max_users, seed)] = 1.0
    sample = sp.csr_matrix(sp.diags(keep) @ valid, dtype=valid.dtype)
    sample.eliminate_zeros()
    return sample


def warm_epochs(best_epoch: int, fit_pairs: int, final_pairs: int) -> int:
    """Epochs of a warm-started refit (the final phase) after a fit that was best at ``best_epoch``.

    A cold refit on the ``final_pairs`` positives spends ``best_epoch`` passes over
    every pair, the ``final_pairs - fit_pairs`` new ones included. Starting from the
    fit's parameters, the old pairs are already learned; the fine-tune gets the
    passes the new pairs would have had in a cold refit, spread over every pair
    (new and old mixed, so the old are not forgotten): ``best_epoch x new share``,
    rounded up, at least 1 and at most ``best_epoch``.

    Examples:
        >>> warm_epochs(40, 80_000, 100_000)
        8
    """
    best = max(int(best_epoch), 1)
    new = max(int(final_pairs) - int(fit_pairs), 0)
    return int(min(best, max(1, -(-best * new // max(int(final_pairs), 1)))))
