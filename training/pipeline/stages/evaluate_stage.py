"""The ``evaluate`` stage: every source and the hybrid on valid and test (docs/PROTOCOL.md), and the ablation.

Writes ``evaluation.json`` (metrics and the ablation table). A resumed run reads it back and
only re-scores the hybrid on test (the report's plots need the per-user result).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from eval import EvalResult, sparse_threshold
from training.pipeline.phase import scorer_of
from training.pipeline.scorers import hybrid_test_scorer, source_test_scorer
from training.pipeline.stages.base import EVALUATION, RANKER, TEST, VALID, stage
from training.pipeline.stages.ranker_stage import LEARNED_SOURCES
from training.ranker import ablation
from training.ranker.evaluation import HYBRID
from training.sources.names import Source

if TYPE_CHECKING:
    from training.pipeline.context import StageContext

__all__ = ["evaluate"]


@stage(needs=(VALID, TEST, *LEARNED_SOURCES, Source.POP, RANKER), makes=(EVALUATION,), checkpoint=(EVALUATION,))
def evaluate(ctx: StageContext) -> None:
    """Evaluate each source on valid and test, the hybrid on test, and the ablation table."""
    test_users = ctx.test_sample()  # None: every test user
    if ctx.work.done("evaluate"):
        if ctx.ranker is not None:
            ctx.hybrid_test = ctx.evaluate(
                hybrid_test_scorer(ctx), ctx.served_history(), ctx.test(), label="evaluate hybrid (test)",
                users=test_users,
            )  # fmt: skip
        return
    if test_users is not None:
        seed = ctx.config.seed
        ctx.log(f"  test rows on a sample of {len(test_users):,} test users (eval.test_users, seed {seed})")
    if Source.POP not in ctx.phases["fit"].sources:
        ctx.add_popularity()
    served = ctx.served_history()  # every user's train + valid: final.history unless user_sample
    threshold = sparse_threshold(served, ctx.test(), ctx.config.eval.sparse_max_train)
    metrics: dict[str, Any] = {"sparse_threshold": threshold, "valid": _valid_metrics(ctx, threshold), "test": {}}
    # The ablation evaluates every source and the hybrid on (the sample of) test users already.
    rows, results = _ablation(ctx, threshold, test_users)
    for name, source in ctx.phases["final"].sources.items():
        if name not in results:
            results[name] = ctx.evaluate(
                source_test_scorer(ctx, name, source), served, ctx.test(), max_train=threshold,
                label=f"evaluate {name} (test)", users=test_users,
            )  # fmt: skip
        metrics["test"][name] = results[name].to_dict()
    if ctx.ranker is not None:
        if HYBRID not in results:
            ctx.ranker.bind(ctx.ranker_context(ctx.phases["final"]))
            results[HYBRID] = ctx.evaluate(
                hybrid_test_scorer(ctx), served, ctx.test(), max_train=threshold, label="evaluate hybrid (test)",
                users=test_users,
            )  # fmt: skip
        ctx.hybrid_test = results[HYBRID]
        metrics["test"][HYBRID] = ctx.hybrid_test.to_dict()
        metrics["valid"]["hybrid_inner_ndcg"] = ctx.ranker.diagnostics_["best_valid_ndcg"]
    ctx.work.save_json(EVALUATION, {"metrics": metrics, "ablation": rows})


def _valid_metrics(ctx: StageContext, threshold: int) -> dict[str, Any]:
    """Each fit-phase source on (a seeded sample of) the validation users, as dicts."""
    if not ctx.valid.nnz:
        return {}
    fit = ctx.phases["fit"]
    users = ctx.valid_sample("valid_users", ctx.config.eval.valid_users)
    return {
        name: ctx.evaluate(
            scorer_of(source), fit.history, ctx.valid, max_train=threshold, label=f"evaluate {name} (valid)",
            users=users,
        ).to_dict()
        for name, source in fit.sources.items()
    }  # fmt: skip


def _ablation(
    ctx: StageContext, threshold: int, test_users: Optional[np.ndarray]
) -> tuple[list[dict[str, Any]], dict[str, EvalResult]]:
    """The ablation table's rows and its test results by name (both empty without the ranker or ``ranker.ablation``).

    ``test_users``: the test users evaluated (``None``: all).

    With ``user_sample`` the rows cover the fitted users only, so no result is reused for the test metrics.
    """
    if ctx.ranker is None or not ctx.config.ranker.ablation:
        return [], {}
    members = ctx.config.ranker.ablation_ensemble  # cheaper refits, compared with a reference refit
    budget = {"ensemble": members} if members and members != ctx.ranker.ensemble else None
    fit, final = ctx.phases["fit"], ctx.phases["final"]
    table = ablation(
        ctx.ranker, ctx.graph, fit_inputs=fit.inputs(), fit_users=ctx.fit_users(), labels=ctx.valid,
        eval_inputs=final.inputs(), test=ctx.restrict(ctx.test()), item_text_embeddings=ctx.item_text,
        k=ctx.config.eval.k, users=test_users, sparse_max_train=threshold,
        sample_users=ctx.config.ranker.ablation_users,
        seed=ctx.config.seed, budget=budget, show_progress=ctx.show_progress,
    )  # fmt: skip
    results = dict(table.results)
    if ctx.sample is not None:  # the ablation's rows cover the fitted users; the test rows every user
        results = {}
        ctx.work.note("ablation_users", "fitted users only (user_sample)")
    where = ""
    if table.sample_users:
        where = f" on a sample of {table.sample_users} users (seed {table.sample_seed})"
        ctx.work.note("ablation_sample", {"users": table.sample_users, "seed": table.sample_seed})
    ctx.log(f"  ablation: each source, the hybrid, the hybrid without each feature group{where}")
    return table.rows, results
