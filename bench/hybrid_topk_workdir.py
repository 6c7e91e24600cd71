"""Hybrid batch top-K users/s from a training work dir (final sources + saved ranker), with the running code.

For before/after comparisons across commits (a model artifact of one commit need not load in
another): run it from each checkout (``PYTHONPATH=CHECKOUT``) on the same ``--keep-work`` directory.
With this code: the Recommender's batch path (``graphrec.serving.batch_topk.parallel_hybrid_topk``); with a
checkout whose ranker has no ``topk`` (before issue 12): the Recommender's former path,
``iter_topk`` over ``ranker.score`` rows with the history masked. ``--check N`` compares N users'
lists with the per-user path (each user's dense row alone).

    PYTHONPATH=. python bench/hybrid_topk_workdir.py GRAPH M.work [N_USERS] [--check N]
"""

import sys
import time
from pathlib import Path

import numpy as np

from eval import MostPop
from eval.ranking import iter_topk
from kg.graph_io import load_graph
from training.pipeline.phase import load_source, scorer_of
from training.ranker import HybridRanker
from training.ranker.context import RankerContext

graph_dir, work = sys.argv[1], Path(sys.argv[2])
graph = load_graph(graph_dir)
history = graph.matrix("train", "valid")
times = graph.timestamp_matrix("train", "valid") if graph.has_timestamps else None
folders = sorted((work / "final").iterdir())
sources = {d.name: load_source(d, device="cpu") for d in folders if (d / "config.json").is_file()}
scorers = {n: scorer_of(s) for n, s in sources.items()}
scorers["pop"] = MostPop().fit(history, item_ids=graph.item_ids)
ranker = HybridRanker.load(work / "ranker", device="cpu")
ranker.bind(RankerContext.build(
    graph, history, history_times=times, source_scorers={n: scorers[n] for n in ranker.source_names_}
))
n = int(sys.argv[3]) if len(sys.argv) > 3 else graph.num_users
users = np.arange(n, dtype=np.int64)
start = time.perf_counter()
if hasattr(ranker, "topk"):
    from graphrec.serving.batch_topk import parallel_hybrid_topk
    parts = list(parallel_hybrid_topk(ranker, users, 20, 256, False))
    path = "new batch path (batch_topk.parallel_hybrid_topk)"
else:
    parts = list(iter_topk(ranker.score, users, 20, exclude=history, batch_size=256))
    path = "old path (iter_topk over ranker.score rows)"
seconds = time.perf_counter() - start
print(f"{work}: {path}: {n} users in {seconds:.1f} s = {n / seconds:.1f} users/s; sources {ranker.source_names_}")
if hasattr(ranker, "topk") and "--check" in sys.argv:
    m = int(sys.argv[sys.argv.index("--check") + 1])
    items = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([p[2] for p in parts])
    sample = np.sort(np.random.default_rng(0).choice(n, min(m, n), replace=False))
    same, diff = 0, 0.0
    for u in sample:
        _, ref_items, ref_scores = next(iter_topk(ranker.score, np.array([u]), 20, exclude=history))
        same += int((ref_items[0] == items[u]).all())
        fin = np.isfinite(ref_scores[0])
        diff = max(diff, float(np.abs(ref_scores[0][fin] - scores[u][fin]).max(initial=0)))
    print(f"lists identical to the per-user path: {same}/{len(sample)}; max score diff {diff:.1e}")
