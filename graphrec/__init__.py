"""graphrec: a graph-based hybrid recommender engine.

The public face: the Python API, the ``python -m graphrec.<verb>`` entry points,
the model artifact, serving, export and the embedded demo data.

The Python API mirrors the verbs::

    import graphrec
    from kg import BuildConfig

    graphrec.run_build(BuildConfig(interactions="ml-100k.inter", format="recbole"), "graphs/ml-100k")
    graphrec.run_train("graphs/ml-100k", "models/ml-100k", settings={"als.factors": 64})
    rec = graphrec.Recommender.load("models/ml-100k")
    rec.recommend(["196", "186"], k=10)          # DataFrame user, item, rank, score

Names resolve on first use (PEP 562), so ``import graphrec`` stays light.
"""

from __future__ import annotations

from kg.lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "Recommender": "graphrec.serving.recommender",
    "run_build": "graphrec.build",
    "run_train": "graphrec.train",
}

__all__ = ["Recommender", "run_build", "run_train"]
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
