"""Metrics, the full-ranking evaluator, training-free baselines and reports (PROTOCOL.md).

``evaluate(source, train=..., test=..., item_ids=..., k=20)`` ranks every item for
every user with a test item (train items masked) and returns an
:class:`EvalResult`; ``topk``/``iter_topk`` are the memory-bounded top-K routine
the serving layer shares; ``MostPop`` and ``RandomScorer`` need no training.
"""

from eval.baselines import MostPop, RandomScorer
from eval.evaluator import evaluate, sparse_threshold
from eval.longtail import head_tail, popularity_deciles, popularity_order
from eval.recfile import RecommendationsReport, read_recommendations
from eval.report import write_report
from eval.result import METRIC_KEYS, EvalResult
from eval.ranking import TopK, iter_topk, topk

__all__ = [
    "METRIC_KEYS",
    "EvalResult",
    "MostPop",
    "RandomScorer",
    "RecommendationsReport",
    "TopK",
    "evaluate",
    "head_tail",
    "iter_topk",
    "popularity_deciles",
    "popularity_order",
    "read_recommendations",
    "sparse_threshold",
    "topk",
    "write_report",
]
