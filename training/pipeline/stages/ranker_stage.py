"""The ``ranker`` stage: the hybrid ranker learns from the validation split which source to trust."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from training.pipeline.stages.base import RANKER, VALID, stage
from training.ranker import HybridRanker
from training.sources.names import Source

if TYPE_CHECKING:
    from training.pipeline.context import StageContext

__all__ = ["ranker"]

LEARNED_SOURCES = (Source.TEXT, Source.ALS, Source.ITEMKNN, Source.GRAPHFILTER, Source.EASE, Source.GNN)


@stage(needs=(VALID, *LEARNED_SOURCES), makes=(Source.POP, RANKER), checkpoint=("ranker",))
def ranker(ctx: StageContext) -> None:
    """Fit the hybrid ranker on the fit phase's sources and the validation split; bind it to the final phase."""
    if not ctx.config.ranker.enabled:
        return
    ctx.add_popularity()
    fit = ctx.phases["fit"]
    if not fit.sources:
        raise ValueError("the ranker stage needs at least one source stage (text, als, neighbors, gnn)")
    if (ctx.work.ranker_dir / "config.json").is_file():
        hybrid = HybridRanker.load(ctx.work.ranker_dir, device=ctx.config.device)
    else:
        hybrid = ctx.make_ranker()
        start = time.perf_counter()
        hybrid.fit(ctx.ranker_context(fit), ctx.fit_users(), ctx.valid, show_progress=ctx.show_progress)
        hybrid.save(ctx.work.ranker_dir)
        ctx.log(
            f"  ranker fitted in {time.perf_counter() - start:.1f} s "
            f"(inner-valid NDCG@{hybrid.valid_k} {hybrid.diagnostics_['best_valid_ndcg']:.4f})"
        )
        left_out = [name for name in hybrid.source_names_ if name not in hybrid.candidate_sources_]
        ctx.log(
            f"  ranks the top {hybrid.candidates_per_source} of {', '.join(hybrid.candidate_sources_)} "
            f"(ranker.candidate_sources={hybrid.get_config()['candidate_sources']})"
            + (f"; {', '.join(left_out)} only as features (factor models: scored at the candidates)" if left_out else "")
        )
    hybrid.bind(ctx.ranker_context(ctx.phases["final"]))
    ctx.ranker = hybrid
