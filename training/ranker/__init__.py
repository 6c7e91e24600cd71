"""The learned hybrid ranker: candidates from every source, features, learned fusion.

See :mod:`training.ranker.hybrid` for the flow and :mod:`training.ranker.features`
for the documented feature table.

The ranker contract. The sources are learners (``training.base.Learner``, one
``fit(graph, user_items)`` contract, tests/training/contract.py); the ranker learns
from their rows instead, so it has a sibling contract of its own, which every
configuration passes (tests/training/ranker_contract.py):

* its users' history, item statistics and sources come from one explicit
  :class:`~training.ranker.context.RankerContext` (``RankerContext.build(graph,
  history, ..., source_scorers=...)``): ``fit(context, users, labels)`` learns in it
  from held-out labels and returns the ranker; ``bind(context)`` moves it to another
  phase's refitted sources (or binds one after ``load``), ``bound(context)`` a copy;
  the ablation (:func:`ablation`) returns its table;
* ``score(users)`` gives float32 ``[B, num_items]`` rows, finite on the candidates
  only; ``topk(users, k)`` gives their lists without the full rows; ``score_rows``
  scores rows of users the sources fold in, as ``score`` does known ones;
* ``save``/``load`` write and read ``config.json`` + ``state.safetensors``;
  ``get_config()`` rebuilds the ranker; fits are deterministic under ``seed``.
"""

from training.ranker.ablation import RankerInputs, ablation
from training.ranker.features import ALL_GROUPS, DEFAULT_GROUPS, feature_names
from training.ranker.hybrid import HybridRanker, Scorer

__all__ = ["ALL_GROUPS", "DEFAULT_GROUPS", "HybridRanker", "RankerInputs", "Scorer", "ablation", "feature_names"]
