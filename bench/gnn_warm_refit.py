"""Cost of the GNN stage at scale, and whether the warm-started final phase loses anything on validation.

The pipeline's final phase refits the GNN on ``train + valid``; it used to retrain from
scratch for the fit phase's best epoch count, it now continues from the fit phase's
parameters for ``training.gnn.schedule.warm_epochs`` epochs. This script simulates that
one level down, where validation can judge it: ``train`` is split into a sub-train and
a held-out share as large as validation's share of ``train + valid``; LightGCN is fitted
on the sub-train with early stopping on ``valid`` (the simulated fit phase), then
refitted on the whole of ``train`` (the simulated final phase) cold (``best_epoch``
epochs from scratch) and warm (``warm_epochs`` and twice that, from the sub-train
fit). Every variant is scored on ``valid`` with ``train`` masked (all validation users,
NDCG@20 and Recall@20); ``test`` figures, with ``train + valid`` masked, are printed for
information only. One JSON line per run goes to ``--runs``::

    nice python bench/gnn_warm_refit.py --graph /tmp/sg/gowalla --threads 1 --runs bench/results/gnn_warm_refit.jsonl

CPU s is the process time (one torch thread by default): on the shared machine it is
the figure that compares.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _features(graph, init: str):
    if init != "text":
        return {}
    from training.text import TextEncoder, item_texts

    return {"item_features": TextEncoder(None).embed(item_texts(graph))}


def _score(learner, graph, history, labels) -> dict:
    from eval import evaluate

    result = evaluate(lambda users: learner.score(users), train=history, test=labels, item_ids=graph.item_ids, k=20)
    return {key: round(float(result.metrics[key]), 5) for key in ("ndcg", "recall")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graph", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--init", choices=("auto", "text", "random"), default="auto",
                        help="auto: text when the graph has item text (base encoder, no fine-tuning)")
    parser.add_argument("--set", action="append", default=[], help="gnn.key=value overrides (e.g. epochs=40)")
    parser.add_argument("--runs", default=None, help="append the JSON line here")
    args = parser.parse_args()

    import numpy as np
    import scipy.sparse as sp
    import torch
    import yaml

    from kg import load_graph
    from training.gnn import LightGCN
    from training.gnn.schedule import warm_epochs
    from training.pipeline.config import TrainConfig
    from training.text import item_texts

    torch.set_num_threads(args.threads)
    graph = load_graph(args.graph)
    kwargs = TrainConfig().gnn.learner_kwargs()
    for text in args.set:
        key, value = text.split("=", 1)
        kwargs[key] = yaml.safe_load(value)
    has_text = any(t.strip() for t in item_texts(graph))
    kwargs["init"] = ("text" if has_text else "random") if args.init == "auto" else args.init
    features = _features(graph, kwargs["init"])
    train, valid, test = graph.matrix("train"), graph.matrix("valid"), graph.matrix("test")
    history_test = graph.matrix("train", "valid")
    share = valid.nnz / (train.nnz + valid.nnz)
    rng = np.random.default_rng(args.seed)
    held = rng.random(train.nnz) < share
    coo = train.tocoo()
    sub = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=train.shape, dtype=np.float32)

    row: dict = {"graph": args.graph, "init": kwargs["init"], "threads": args.threads, "new_share": round(share, 4),
                 "settings": args.set, "command": "python bench/gnn_warm_refit.py " + " ".join(sys.argv[1:])}

    def timed(label: str, fit) -> LightGCN:
        cpu, wall = time.process_time(), time.perf_counter()
        learner = fit()
        row[label] = {"cpu_s": round(time.process_time() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1),
                      "epochs": len(learner.history_), "valid": _score(learner, graph, train, valid),
                      "test_info": _score(learner, graph, history_test, test)}
        print(label, json.dumps(row[label]), flush=True)
        return learner

    def make(**changes) -> LightGCN:
        return LightGCN(**{**kwargs, **changes}, seed=args.seed, device="cpu")

    fitted = timed("sim_fit", lambda: make().fit(graph, sub, valid_items=valid, **features))
    best = max(fitted.best_epoch_, 1)
    evaluated = [h for h in fitted.history_ if "ndcg" in h]
    row["sim_fit"].update(best_epoch=best, curve=[(h["epoch"], round(h["ndcg"], 5)) for h in evaluated])
    rule = warm_epochs(best, sub.nnz, train.nnz)
    row["warm_rule_epochs"] = rule
    timed("cold", lambda: make(epochs=best).fit(graph, train, **features))
    for label, epochs in (("warm_rule", rule), ("warm_2x", min(2 * rule, best))):
        timed(label, lambda e=epochs: make(epochs=e).fit(graph, train, warm_start=fitted, **features))
    row["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(row))
    if args.runs:
        with open(args.runs, "a") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
