"""The collaborative source stages: ``als`` and ``neighbors`` (item-KNN, graph filter, EASE).

Each source is fitted per phase (:meth:`StageContext.fitted_phases`); with
``tune.budget_minutes`` > 0 the sources named in ``tune.sources`` are tuned on the validation
split first (:mod:`training.pipeline.tune`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from training.base import Learner
from training.pipeline.stages.base import TRAIN, VALID, phased, stage
from training.sources.names import Source

if TYPE_CHECKING:
    from training.pipeline.context import StageContext

__all__ = ["als", "neighbors"]

NEIGHBOR_SOURCES = (Source.ITEMKNN, Source.GRAPHFILTER, Source.EASE)


@stage(needs=(TRAIN, VALID), makes=(Source.ALS,), sources=(Source.ALS,), checkpoint=phased(Source.ALS))
def als(ctx: StageContext) -> None:
    """Alternating least squares."""
    if ctx.config.als.enabled:
        fit_collaborative(ctx, Source.ALS)


@stage(
    needs=(TRAIN, VALID), makes=NEIGHBOR_SOURCES, sources=NEIGHBOR_SOURCES, checkpoint=phased(*NEIGHBOR_SOURCES)
)
def neighbors(ctx: StageContext) -> None:
    """The item-item sources: item-KNN, the graph filter and EASE (each skipped above its ``max_items``)."""
    for name in NEIGHBOR_SOURCES:
        if not getattr(ctx.config, name).enabled:
            continue
        why = _too_large(ctx, name)
        if why:
            ctx.work.note(name, f"skipped: {why}")
            ctx.log(f"  {name} skipped: {why}")
            continue
        fit_collaborative(ctx, name)


def _too_large(ctx: StageContext, name: str) -> str:
    """Why source ``name`` is not fitted on this catalogue ("" where it is).

    EASE solves a dense items x items system; the graph filter's sparse operator (or, without
    one, every user's exact scores) costs about items x interactions, so above its
    ``graphfilter.max_items`` item-KNN is the item-item view.
    """
    items = ctx.graph.num_items
    if name == Source.EASE:
        limit = ctx.make(Source.EASE).item_limit()
        if items > limit:
            return f"{items:,} items > ease.max_items={limit:,} (dense items x items solve)"
    if name == Source.GRAPHFILTER:
        limit = ctx.config.graphfilter.max_items
        if limit and items > limit:
            return f"{items:,} items > graphfilter.max_items={limit:,} (its operator costs items x interactions)"
    return ""


def fit_collaborative(ctx: StageContext, name: str) -> None:
    """Fit a collaborative source per phase; with ``tune.budget_minutes`` > 0, tuned on valid first.

    Tuning (``training.pipeline.tune.tune_source``) runs in the fit phase only: trials are
    fitted on train and scored on the validation split (never test); the best trial's
    learner is the fit-phase source, and the final phase refits its settings on
    train+valid. A resumed run takes the settings from the saved fit-phase source.
    """
    make: Callable[[], Learner] = lambda: ctx.make(name)  # noqa: E731
    phases = ctx.fitted_phases()
    tune = ctx.config.tune
    # The budget is split over the tuned sources that are fitted: a skipped one takes no share.
    tuned = [n for n in tune.sources if n in ctx.source_names() and not _too_large(ctx, n)]
    if tune.budget_minutes > 0 and name in tuned and not ctx.valid.nnz:
        ctx.work.note(f"tune_{name}", "skipped: the graph has no validation split to tune on")
        ctx.log(f"  {name} not tuned: the graph has no validation split")
    elif tune.budget_minutes > 0 and name in tuned:
        fit = ctx.phases["fit"]
        ctx.fit_or_load(name, fit, lambda: _tuned(ctx, name, budget_seconds=tune.budget_minutes * 60.0 / len(tuned)))
        chosen = fit.sources[name]
        make = lambda: type(chosen)(**chosen.get_config())  # noqa: E731  the tuned settings, refitted
        phases = [phase for phase in phases if phase is not fit]
    for phase in phases:
        ctx.fit_or_load(name, phase, lambda p=phase: make().fit(ctx.graph, ctx.matrix(name, p)))
    ctx.share_fit_sources([name])


def _tuned(ctx: StageContext, name: str, *, budget_seconds: float) -> Learner:
    """Source ``name`` tuned on the validation split within ``budget_seconds`` (noted and logged)."""
    from training.pipeline.tune import tune_source

    def configured(**changes: Any) -> Learner:
        learner = ctx.make(name)
        return type(learner)(**{**learner.get_config(), **changes})

    tune, k = ctx.config.tune, ctx.config.eval.k
    result = tune_source(
        name, ctx.graph, ctx.matrix(name, ctx.phases["fit"]), ctx.valid, configured, budget_seconds=budget_seconds,
        seed=ctx.config.seed, valid_users=tune.valid_users, max_trials=tune.max_trials, k=k, log=ctx.log,
    )  # fmt: skip
    ctx.work.note(f"tune_{name}", result.to_dict())
    ctx.log(
        f"  {name} tuned: valid NDCG@{k} {result.best_value:.4f} (configured {result.default_value:.4f}) in "
        f"{len(result.history)} trials, {result.seconds:.0f} s: {result.changed or 'configured setting kept'}"
    )
    return result.learner
