"""The stages of ``python -m graphrec.train``, listed once, in the order they run.

Each is a :class:`~training.pipeline.stages.base.Stage` (name, needs, makes, sources,
checkpoint) over a function of the run's :class:`~training.pipeline.context.StageContext`:

* ``text`` (:mod:`.text_stage`): fine-tuned text encoder, the text source, item/entity vectors.
* ``als``, ``neighbors`` (:mod:`.cf_stages`): ALS; item-KNN, the graph filter and EASE.
* ``gnn`` (:mod:`.gnn_stage`): LightGCN or GAT, warm-started in the final phase.
* ``ranker`` (:mod:`.ranker_stage`): the hybrid ranker, fitted on the validation split.
* ``evaluate`` (:mod:`.evaluate_stage`): valid and test metrics, the ablation.

``training.pipeline.config.STAGES`` (the names the CLI accepts; that module loads no torch)
is checked equal to :data:`STAGE_NAMES` by tests/training/test_pipeline_stages.py.
"""

from __future__ import annotations

from training.pipeline.stages.base import Stage
from training.pipeline.stages.cf_stages import als, neighbors
from training.pipeline.stages.evaluate_stage import evaluate
from training.pipeline.stages.gnn_stage import gnn
from training.pipeline.stages.ranker_stage import ranker
from training.pipeline.stages.text_stage import text

__all__ = ["ALL_STAGES", "STAGE_NAMES", "Stage"]

ALL_STAGES: tuple[Stage, ...] = (text, als, neighbors, gnn, ranker, evaluate)
"""Every stage, in the order they run."""

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in ALL_STAGES)
"""Their names, as ``--stages`` takes them."""
