"""The learned hybrid ranker: candidates from every source, features, learned fusion.

See :mod:`training.ranker.hybrid` for the flow and :mod:`training.ranker.features`
for the documented feature table.
"""

from training.ranker.ablation import RankerInputs, ablation
from training.ranker.features import ALL_GROUPS, DEFAULT_GROUPS, feature_names
from training.ranker.hybrid import HybridRanker, Scorer

__all__ = ["ALL_GROUPS", "DEFAULT_GROUPS", "HybridRanker", "RankerInputs", "Scorer", "ablation", "feature_names"]
