"""The ``text`` stage: fine-tune the text encoder, the text source, item and entity text vectors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from training.pipeline.stages.base import ENTITY_TEXT, ITEM_TEXT, TRAIN, VALID, phased, stage
from training.sources.names import Source
from training.text import entity_vectors

if TYPE_CHECKING:
    from training.pipeline.context import StageContext

__all__ = ["text"]

ENTITIES = "text/entities.npy"


@stage(
    needs=(TRAIN, VALID), makes=(Source.TEXT, ITEM_TEXT, ENTITY_TEXT), sources=(Source.TEXT,),
    checkpoint=(*phased(Source.TEXT), ENTITIES),
)  # fmt: skip
def text(ctx: StageContext) -> None:
    """Fine-tune the encoder on train, embed items and entities; the text source per phase."""
    if not ctx.config.text.enabled:
        return
    if not ctx.graph_has_text:
        ctx.work.note(Source.TEXT, "skipped: the graph holds no item text (ids only)")
        ctx.log(
            "  text skipped: the graph holds no item text (ids only): no fine-tuning, no text source, "
            "GNN starts from random vectors"
        )
        return
    fit, final = ctx.phases["fit"], ctx.phases["final"]
    ctx.fit_or_load(
        Source.TEXT, fit,
        lambda: ctx.make(Source.TEXT).fit(ctx.graph, ctx.matrix(Source.TEXT, fit), show_progress=ctx.show_progress),
    )  # fmt: skip
    learner = fit.sources[Source.TEXT]
    if ctx.config.ranker.refit:
        ctx.fit_or_load(Source.TEXT, final, lambda: learner.with_history(ctx.matrix(Source.TEXT, final)))
    ctx.share_fit_sources([Source.TEXT])
    ctx.item_text = learner.item_embeddings()
    entities = ctx.work.load_array(ENTITIES)
    if entities is None and ctx.graph.num_entities:
        entities, counts = entity_vectors(ctx.graph, learner.encoder, ctx.item_text, show_progress=ctx.show_progress)
        ctx.work.note("entity_text", counts)
        ctx.log(
            f"  entity vectors: {counts['encoded']} readable names encoded, {counts['item_mean']} opaque ids "
            f"as the mean of their items, {counts['none']} without text"
        )
        ctx.work.save_array(ENTITIES, entities)
    ctx.entity_text = entities
