"""The test scorers of the ``evaluate`` stage: each final source and the hybrid, as ``TrainedModel`` serves them.

Without ``user_sample`` a source's scorer is its own ``score``. With it, the sampled users
are scored by the fitted sources and every other user is folded in from their
``train + valid`` rows (:mod:`training.pipeline.user_sample`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from training.base import Learner
from training.pipeline.phase import scorer_of
from training.pipeline.user_sample import fold_in_hybrid, fold_in_scorer

if TYPE_CHECKING:
    from training.pipeline.context import StageContext

__all__ = ["hybrid_test_scorer", "source_test_scorer"]


def source_test_scorer(ctx: StageContext, name: str, source: Any) -> Callable[[np.ndarray], Any]:
    """A final source's test scorer: its own, with unsampled users folded in (``user_sample``)."""
    if ctx.sample is None or not isinstance(source, Learner):  # MostPop scores every user alike
        return scorer_of(source)
    rows = ctx.graph.matrix("train", "valid", weighted=ctx.config.weighted(name))  # as the source was fitted
    return fold_in_scorer(source.score, lambda users: source.score_new_users(rows[users]), ctx.sample.fitted)


def hybrid_test_scorer(ctx: StageContext) -> Callable[[np.ndarray], Any]:
    """The hybrid's test scorer, unsampled users folded in as ``TrainedModel.scorer`` serves them."""
    ranker = ctx.ranker
    if ctx.sample is None:
        return ranker.score
    history, sources = ctx.served_history(), ctx.phases["final"].sources
    rows = {name: ctx.graph.matrix("train", "valid", weighted=ctx.config.weighted(name)) for name in sources}
    times = ctx.graph.timestamp_matrix("train", "valid") if ctx.graph.has_timestamps else None

    def folded(users: np.ndarray):
        return fold_in_hybrid(
            ranker, sources, history[users], times[users] if times is not None else None,
            source_rows={name: matrix[users] for name, matrix in rows.items()},
        )  # fmt: skip

    return fold_in_scorer(ranker.score, folded, ctx.sample.fitted)
