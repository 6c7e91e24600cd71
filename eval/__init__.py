"""Metrics, the full-ranking evaluator, training-free baselines and reports (docs/PROTOCOL.md).

``evaluate(source, train=..., test=..., item_ids=..., k=20)`` ranks every item for
every user with a test item (train items masked) and returns an
:class:`EvalResult`; ``topk``/``iter_topk`` are the memory-bounded top-K routine
the serving layer shares; ``MostPop`` and ``RandomScorer`` need no training.

The names are imported from their modules on first use (PEP 562), so that a
command-line ``--help`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "METRIC_KEYS": "eval.result",
    "EvalResult": "eval.result",
    "MostPop": "eval.baselines",
    "RandomScorer": "eval.baselines",
    "RecommendationsReport": "eval.recfile",
    "TopK": "eval.ranking",
    "evaluate": "eval.evaluator",
    "head_tail": "eval.longtail",
    "iter_topk": "eval.ranking",
    "popularity_deciles": "eval.longtail",
    "popularity_order": "eval.longtail",
    "read_recommendations": "eval.recfile",
    "sparse_threshold": "eval.evaluator",
    "topk": "eval.ranking",
    "write_report": "eval.report",
}

__all__ = sorted(_LAZY)


# kg.lazy.lazy_attributes does this for the other packages; eval imports nothing of the project
# (docs/DESIGN.md), so it keeps these two functions.
def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
