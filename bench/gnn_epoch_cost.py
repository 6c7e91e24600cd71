"""CPU seconds per GNN epoch (8 full-graph steps with the auto schedule) and per validation, one torch thread.

Times a default LightGCN fit of ``--epochs`` epochs on a graph artifact with validation
every 2 epochs, and prints one JSON line. To compare two checkouts, run it twice on the
same machine with each checkout first on ``PYTHONPATH``::

    PYTHONPATH=/path/to/old python bench/gnn_epoch_cost.py --graph /tmp/sg/gowalla --epochs 4
    PYTHONPATH=$PWD python bench/gnn_epoch_cost.py --graph /tmp/sg/gowalla --epochs 4

With ``--epochs 120`` (the auto cap) it is a whole default fit phase, early stopping
included (``best_epoch``, ``valid_ndcg_curve``).

``--item-features``: ``.npy`` text vectors for ``init="text"`` (default: ``init="random"``).
CPU s, not wall s: on a loaded shared machine the process time is the figure that compares.
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graph", required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--item-features", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch

    import training
    from kg import load_graph
    from training.gnn import LightGCN
    from training.pipeline.config import TrainConfig

    torch.set_num_threads(args.threads)
    graph = load_graph(args.graph)
    kwargs = TrainConfig().gnn.learner_kwargs()
    features = {}
    if args.item_features:
        features = {"item_features": np.load(args.item_features)}
    else:
        kwargs["init"] = "random"
    kwargs.update(epochs=args.epochs, eval_every=2)
    marks: list[float] = []
    learner = LightGCN(**kwargs, seed=2026, device="cpu")
    cpu = time.process_time()
    learner.fit(
        graph, graph.matrix("train"), valid_items=graph.matrix("valid"),
        callback=lambda epoch, seconds, loss: marks.append(time.process_time()), **features,
    )  # fmt: skip
    total = time.process_time() - cpu
    evaluated = [h for h in learner.history_ if "eval_seconds" in h]
    # Epoch CPU: between the first and the last callback, which brackets (epochs - 1) epochs
    # and the validations among them; the validations' share is split off with their wall ratio.
    train_wall = sum(h["seconds"] for h in learner.history_[1:])
    eval_wall = sum(h["eval_seconds"] for h in evaluated if h["epoch"] > 1)
    span = marks[-1] - marks[0]
    epoch_cpu = span * train_wall / max(train_wall + eval_wall, 1e-9) / (len(marks) - 1)
    eval_cpu = span * eval_wall / max(train_wall + eval_wall, 1e-9) / max(len([h for h in evaluated if h["epoch"] > 1]), 1)
    print(json.dumps({
        "code": str(training.__file__).rsplit("/training/", 1)[0], "graph": args.graph, "init": kwargs["init"],
        "threads": args.threads, "schedule": learner.schedule_.describe(), "epochs": args.epochs,
        "cpu_s_per_epoch": round(epoch_cpu, 2), "cpu_s_per_validation": round(eval_cpu, 2),
        "cpu_s_total": round(total, 1), "losses": [round(h["loss"], 4) for h in learner.history_],
        "best_epoch": learner.best_epoch_, "valid_ndcg_curve": [(h["epoch"], round(h["ndcg"], 5)) for h in evaluated],
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
