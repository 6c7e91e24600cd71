"""The ``gnn`` stage: LightGCN or GAT over the graph, in process or on ``gnn.nproc`` DDP processes.

The fit phase trains on train with early stopping on the validation split; with
``ranker.refit`` the final phase continues from the fit phase's parameters on train + valid
for ``best epoch x new share`` epochs (:func:`training.gnn.schedule.warm_epochs`), passed to
the learner's constructor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from training.base import Learner
from training.gnn.learner import GraphLearner
from training.gnn.schedule import warm_epochs
from training.pipeline.learners import make_gnn
from training.pipeline.phase import Phase
from training.pipeline.stages.base import ENTITY_TEXT, ITEM_TEXT, TRAIN, VALID, phased, stage
from training.sources.names import Source

if TYPE_CHECKING:
    from training.pipeline.context import StageContext

__all__ = ["gnn"]


@stage(
    needs=(TRAIN, VALID, ITEM_TEXT, ENTITY_TEXT), makes=(Source.GNN,), sources=(Source.GNN,),
    checkpoint=(*phased(Source.GNN), "gnn-checkpoints", "gnn-ddp"),
)  # fmt: skip
def gnn(ctx: StageContext) -> None:
    """Graph propagation: fit on train (early stopping on valid), warm-started refit on train + valid."""
    if not ctx.config.gnn.enabled:
        return
    features = _init_features(ctx)
    fit = ctx.phases["fit"]
    schedule = ctx.make(Source.GNN).schedule(ctx.matrix(Source.GNN, fit).nnz)
    ctx.work.note("gnn_schedule", schedule.to_dict())
    ctx.log(f"  gnn schedule: {schedule.describe()}")
    if ctx.config.gnn.nproc > 1:
        ctx.log(f"  gnn on {ctx.config.gnn.nproc} processes (torch.distributed DDP)")
    ctx.fit_or_load(
        Source.GNN, fit, lambda: _fit(ctx, ctx.make(Source.GNN), fit, valid=True, warm_start=None, features=features)
    )
    best = max(int(fit.sources[Source.GNN].best_epoch_), 1)
    ctx.work.note("gnn_best_epoch", best)
    if ctx.config.ranker.refit:
        _refit(ctx, best, features)
    ctx.share_fit_sources([Source.GNN])


def _init_features(ctx: StageContext) -> dict[str, Any]:
    """The text stage's vectors the GNN starts from (``gnn.init: text``), or none (random init, noted)."""
    if ctx.make(Source.GNN).init != "text":
        ctx.work.note("gnn_init", "random")
        return {}
    if ctx.item_text is None:
        raise ValueError("gnn.init is 'text' but the text stage produced no embeddings")
    return {"item_features": ctx.item_text, "entity_features": ctx.entity_text}


def _refit(ctx: StageContext, best: int, features: dict[str, Any]) -> None:
    """The final phase: continue from the fit phase's parameters for the passes the new interactions would get."""
    fit, final = ctx.phases["fit"], ctx.phases["final"]
    # Same graph, same node space: a cold refit's epochs scaled by the share of new interactions.
    epochs = warm_epochs(best, ctx.matrix(Source.GNN, fit).nnz, ctx.matrix(Source.GNN, final).nnz)
    ctx.work.note("gnn_final", {"warm_start": "fit phase", "epochs": epochs, "rule": "best epoch x new share"})
    ctx.log(f"  gnn final phase: warm start from the fit phase, {epochs} epoch(s) (best epoch {best})")
    learner = lambda: make_gnn(ctx.config, text_on=ctx.text_on, epochs=epochs)  # noqa: E731
    ctx.fit_or_load(
        Source.GNN, final,
        lambda: _fit(ctx, learner(), final, valid=False, warm_start=fit.sources[Source.GNN], features=features),
    )  # fmt: skip


def _fit(
    ctx: StageContext, learner: GraphLearner, phase: Phase, *, valid: bool, warm_start: Optional[GraphLearner],
    features: dict[str, Any],
) -> Learner:  # fmt: skip
    """Fit the GNN of ``phase``: in process, or on ``gnn.nproc`` DDP processes (training.gnn.distributed)."""
    checkpoints = ctx.work.gnn_checkpoints(phase.name)
    nproc = ctx.config.gnn.nproc
    if nproc <= 1:
        return learner.fit(
            ctx.graph, ctx.matrix(Source.GNN, phase), valid_items=ctx.valid if valid else None,
            show_progress=ctx.show_progress, checkpoint_dir=checkpoints, warm_start=warm_start, **features,
        )  # fmt: skip
    if ctx.graph_path is None:
        raise ValueError("gnn.nproc > 1 needs the graph artifact's path (Pipeline(graph_path=...))")
    from safetensors.numpy import save_file

    from training.gnn.distributed import fit_distributed

    ddp = ctx.work.path / "gnn-ddp" / phase.name
    ddp.mkdir(parents=True, exist_ok=True)
    feature_file = None
    present = {name: np.ascontiguousarray(array) for name, array in features.items() if array is not None}
    if present:
        feature_file = ddp / "features.safetensors"
        save_file(present, str(feature_file))
    warm_dir = ctx.work.source_dir("fit", Source.GNN) if warm_start is not None else None
    splits = ("train",) if phase.name == "fit" else ("train", "valid")
    return fit_distributed(
        {**learner.get_config(), "model": ctx.config.gnn.model}, graph_path=ctx.graph_path, splits=splits,
        out=ddp, nproc=nproc, valid_splits=("valid",) if valid else (), features=feature_file,
        warm_start=warm_dir, checkpoint_dir=checkpoints, log=ctx.log,
    )  # fmt: skip
