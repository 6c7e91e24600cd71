"""Does the hybrid's gain over its sources survive the pipeline's refit? Simulated on VALIDATION only.

The pipeline fits the sources on train, the ranker on valid, then refits the sources on train + valid
and scores test. This bench plays the same game one level down, so that no test item is used: sources
fitted on "sub-train" (train minus a seeded 15% of each user's items), the ranker on those 15%, then
applied with the sources fitted on all of train (the fit-phase sources of a kept work directory:
``python -m graphrec.train --graph G --out M --stages als,neighbors --keep-work``) and scored on valid.
Sources: ALS, item-KNN, graph filter (the pipeline's defaults) and MostPop; no GNN (cost). The pseudo-valid
items are held out per user by kg.split.held_out (the build's validation split), seed 7.

    python bench/ranker_refit_sim.py G M.work 5000

Prints valid NDCG@20 / Recall@20 / TailRecall@20 of the graph filter (refitted / not) and of the hybrid
(default feature groups, and with ``ranks``), refitted sources or not.
"""
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from eval import MostPop, evaluate
from kg.graph_io import load_graph
from kg.split import held_out
from training.base import sample_at_most
from training.pipeline.config import TrainConfig
from training.pipeline.phase import load_source, scorer_of
from training.ranker import HybridRanker
from training.ranker.context import RankerContext
from training.sources.als import ALS
from training.sources.graphfilter import GraphFilter
from training.sources.knn import ItemKNN

torch.set_num_threads(1)
g = load_graph(sys.argv[1])
work = Path(sys.argv[2])
n_users = int(sys.argv[3])
cfg = TrainConfig()
train = g.matrix("train")
valid = g.matrix("valid")
coo = train.tocoo()
# Each user's pseudo-valid items: a seeded 15%, split the way kg builds validation (kg.split.held_out).
pv_mask = held_out(coo.row, np.random.default_rng(7).random(coo.nnz), 0.85)


def csr(mask):
    return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=train.shape, dtype=np.float32)


sub, pv = csr(~pv_mask), csr(pv_mask)
print("sub", sub.nnz, "pseudo-valid", pv.nnz, flush=True)
t = time.perf_counter()
subs = {
    "als": ALS(**cfg.als.learner_kwargs(), seed=cfg.seed).fit(g, sub),
    "graphfilter": GraphFilter(**cfg.graphfilter.learner_kwargs(), seed=cfg.seed).fit(g, sub),
    "itemknn": ItemKNN(**cfg.itemknn.learner_kwargs()).fit(g, sub),
}
print("sub sources fitted in %.0f s" % (time.perf_counter() - t), flush=True)
full = {d.name: load_source(d, device="cpu") for d in sorted((work / "fit").iterdir()) if (d / "config.json").is_file()}
def scorers(sources, history):
    out = {n: scorer_of(s) for n, s in sources.items()}
    out["pop"] = MostPop().fit(history, item_ids=g.item_ids)
    return out
sc_sub = scorers(subs, sub)
sc_full = {n: scorer for n, scorer in scorers(full, train).items() if n in sc_sub}  # the same sources
fit_users = sample_at_most(np.flatnonzero(np.diff(pv.indptr) > 0).astype(np.int64), n_users, seed=2026)
eval_users = sample_at_most(np.flatnonzero(np.diff(valid.indptr) > 0).astype(np.int64), n_users, seed=2026)
ctx_sub = RankerContext.build(g, sub, source_scorers=sc_sub)
ctx_refit = RankerContext.build(g, train, source_scorers=sc_full)
ctx_norefit = RankerContext.build(g, train, source_scorers=sc_sub)
def ev(score, label):
    r = evaluate(score, train=train, test=valid, item_ids=g.item_ids, k=20, users=eval_users)
    m = r.metrics
    print(f"{label}: valid NDCG@20 {m['ndcg']:.4f} Recall@20 {m['recall']:.4f} Tail {m['tail_recall']:.4f}", flush=True)
ev(sc_full["graphfilter"], "graph filter, refit on train")
ev(sc_sub["graphfilter"], "graph filter, sub-train only")
ALL = ("sources", "ranks", "popularity", "activity", "content", "kg", "context")
for label, extra in [("default", {}), ("ranks", {"feature_groups": ALL})]:
    t = time.perf_counter()
    ranker = HybridRanker(**{**cfg.ranker.learner_kwargs(), "ensemble": 2, **extra}, seed=cfg.seed)
    ranker.fit(ctx_sub.with_scorers(sc_sub), fit_users, pv)
    print(f"ranker {label} fitted in {time.perf_counter() - t:.0f} s", flush=True)
    ev(ranker.bound(ctx_refit).score, f"hybrid {label}, sources refit on train")
    ev(ranker.bound(ctx_norefit).score, f"hybrid {label}, sources not refit")
