"""graphrec: a graph-based hybrid recommender engine.

The public face: the Python API, the ``python -m graphrec.<verb>`` entry points,
the model artifact, serving, export and the embedded demo data.

The Python API mirrors the verbs (each ``run_*`` does what its verb does; errors are
exceptions, not exit codes)::

    import graphrec
    from kg import BuildConfig

    graphrec.run_build(BuildConfig(interactions="ml-100k.inter", format="recbole"), "graphs/ml-100k")
    graphrec.run_train("graphs/ml-100k", "models/ml-100k", settings={"als.factors": 64})
    result = graphrec.run_evaluate("models/ml-100k", k=20)   # docs/PROTOCOL.md metrics on test
    result.metrics["ndcg"], result.metrics["recall"]
    rec = graphrec.Recommender.load("models/ml-100k")
    rec.recommend(["196", "186"], k=10)          # DataFrame user, item, rank, score
    rec.recommend_new_user(["242", "302"], k=10) # fold-in, no retraining
    rec.similar_items(["242"], k=5)

Where things live: the verbs are the modules at the top (``build``, ``train``,
``recommend``, ``export``, ``evaluate``, ``demo``, ``datasets``), sharing
:func:`graphrec.cli.run_verb`; :mod:`graphrec.serving` answers requests from a
trained model; :mod:`graphrec.artifacts` holds the model artifact and the
embeddings export.

Names resolve on first use (PEP 562), so ``import graphrec`` stays light.
"""

from __future__ import annotations

import os

# torch's CPU allocator puts tensors of 2 MB and more on transparent huge pages when this
# is set before its first allocation. The GNN's node matrices (183 MB on the synthetic 10M
# log) are fresh tensors every step and are read at random: with 4 KiB pages the page
# faults and TLB misses cost a quarter of a full-graph step there (bench/gnn_step_cost.py).
# Set to 0 in the environment to keep torch's default.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from kg.lazy import lazy_attributes  # noqa: E402 (after the environment default above)

__version__ = "0.1.0"

_LAZY = {
    "Recommender": "graphrec.serving.recommender",
    "run_build": "graphrec.build",
    "run_train": "graphrec.train",
    "run_evaluate": "graphrec.evaluate",
}

__all__ = ["Recommender", "run_build", "run_evaluate", "run_train"]
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
