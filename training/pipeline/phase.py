"""The sources the hybrid ranker fuses: loading any saved learner, phases, row scorers.

A *source* is a fitted learner (its ``score`` is the row scorer) or a callable
baseline such as ``eval.MostPop``. A :class:`Phase` groups the sources fitted on
one history (train, or train + valid) with that history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import scipy.sparse as sp

from training.base import Learner, load_state
from training.gnn import GAT, LightGCN
from training.ranker import RankerInputs
from training.sources.als import ALS
from training.sources.ease import EASE
from training.sources.graphfilter import GraphFilter
from training.sources.knn import ItemKNN
from training.sources.names import EMBEDDING_PRECEDENCE, Source
from training.text import TextLearner

__all__ = [
    "EMBEDDING_PRECEDENCE", "SOURCE_CLASSES", "Phase", "Source", "embedding_source", "load_source", "scorer_of",
]  # fmt: skip

SOURCE_CLASSES: dict[str, type[Learner]] = {
    cls.name: cls for cls in (TextLearner, ALS, ItemKNN, EASE, GraphFilter, LightGCN, GAT)
}
"""Learner class by the ``name`` a saved learner records (the GNN source's learners: ``lightgcn``, ``gat``)."""


def embedding_source(sources: dict[str, Any]) -> Optional[Source]:
    """The first name of :data:`EMBEDDING_PRECEDENCE` whose source is a learner with item vectors, or ``None``."""
    for name in EMBEDDING_PRECEDENCE:
        source = sources.get(name)
        if isinstance(source, Learner) and source.item_embeddings() is not None:
            return name
    return None


def load_source(path, *, device: Optional[str] = None) -> Learner:
    """Load a saved source learner whatever its kind (read from its ``config.json``)."""
    kind, _, _ = load_state(path)
    if kind not in SOURCE_CLASSES:
        raise ValueError(f"{path} holds a {kind!r}, not one of the sources {sorted(SOURCE_CLASSES)}")
    return SOURCE_CLASSES[kind].load(path, device=device)


@dataclass
class Phase:
    """What the sources of one phase learned from, and the fitted sources."""

    name: str
    history: sp.csr_matrix
    history_times: Optional[sp.csr_matrix]
    sources: dict[str, Any] = field(default_factory=dict)

    def scorers(self) -> dict[str, Callable[[np.ndarray], Any]]:
        """name -> row scorer ``scorer(users) -> [B, num_items]`` of every source."""
        return {name: scorer_of(source) for name, source in self.sources.items()}

    def inputs(self) -> RankerInputs:
        return RankerInputs(self.history, self.scorers(), self.history_times)


def scorer_of(source: Any) -> Callable[[np.ndarray], Any]:
    """A learner's ``score`` method, or the source itself when it is callable (``MostPop``, :attr:`Source.POP`)."""
    return source.score if isinstance(source, Learner) else source
