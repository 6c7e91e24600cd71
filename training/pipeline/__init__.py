"""``graphrec.train``'s machinery: the configuration, the stages, their checkpoints and the report.

* :mod:`training.pipeline.config` (and :mod:`training.pipeline.config_sections`): :class:`TrainConfig`,
  one section per stage, loaded once at the entry point. Importing it loads no torch.
* :mod:`training.pipeline.stages`: the stages as objects (name, needs, makes, checkpoint), listed once.
* :mod:`training.pipeline.runner`: :class:`Pipeline`, which iterates the stages and checkpoints each.
* :mod:`training.pipeline.context`: :class:`~training.pipeline.context.StageContext`, what the stages share.
* :mod:`training.pipeline.learners`: each learner built from its config section, every argument named.
* :mod:`training.pipeline.scorers`: the evaluate stage's test scorers (fold-in with ``user_sample``).
* :mod:`training.pipeline.phase`: a phase's fitted sources (fit on train, final on train + valid).
* :mod:`training.pipeline.workdir`: the resumable work directory (stage checkpoints).
* :mod:`training.pipeline.tune`: validation-driven tuning of the sources (Optuna).
* :mod:`training.pipeline.user_sample`: fitting on a sample of users, folding the rest in.
* :mod:`training.pipeline.report`: the markdown report.

Names load on first use (PEP 562).
"""

from __future__ import annotations

from kg.lazy import lazy_attributes

_LAZY = {
    "Pipeline": "training.pipeline.runner",
    "PipelineResult": "training.pipeline.runner",
    "TrainConfig": "training.pipeline.config",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
