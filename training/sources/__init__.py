"""The collaborative sources the hybrid ranks over, and the type that names them.

* :mod:`training.sources.names`: :class:`Source`, every source's name, its item-vector precedence.
* :mod:`training.sources.als`: implicit's ALS behind the learner contract.
* :mod:`training.sources.neighbors`: the item-item base (fit a sparse item x item matrix, score a row by it),
  with :mod:`training.sources.knn` (item-KNN), :mod:`training.sources.ease` (EASE) and
  :mod:`training.sources.graphfilter` (linear + ideal low-pass graph filter; its maths in
  :mod:`training.sources.spectral`).
* :mod:`training.sources.implicit_api`: the implicit-style ``fit(user_items)`` / ``recommend`` light path
  every learner gets from :class:`training.base.Learner`.

The GNNs (:mod:`training.gnn`), the text learner (:mod:`training.text`) and the hybrid ranker
(:mod:`training.ranker`) have folders of their own. Names load on first use (PEP 562).
"""

from __future__ import annotations

from kg.lazy import lazy_attributes

_LAZY = {
    "ALS": "training.sources.als",
    "EASE": "training.sources.ease",
    "GraphFilter": "training.sources.graphfilter",
    "ItemKNN": "training.sources.knn",
    "Source": "training.sources.names",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
