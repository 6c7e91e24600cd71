"""ALS fit CPU seconds and validation NDCG@20 / Recall@20 per number of iterations (defaults otherwise).

One thread, ``graph.matrix("train")`` as the pipeline gives it, scored on every validation
user with train masked; test is never read. One JSON line per setting::

    OMP_NUM_THREADS=1 python bench/als_iterations.py --graph /tmp/sg/gowalla --iterations 10 15 20 30
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graph", required=True)
    parser.add_argument("--iterations", type=int, nargs="+", default=[10, 15, 20, 30])
    args = parser.parse_args()

    import torch

    from eval import evaluate
    from kg import load_graph
    from training.pipeline.config import TrainConfig
    from training.sources.als import ALS

    torch.set_num_threads(1)
    graph, config = load_graph(args.graph), TrainConfig().als
    train, valid = graph.matrix("train", weighted=config.weighted), graph.matrix("valid")
    for iterations in args.iterations:
        kwargs = {**config.learner_kwargs(), "iterations": iterations, "num_threads": 1}
        cpu = time.process_time()
        model = ALS(**kwargs).fit(graph, train)
        cpu = time.process_time() - cpu
        result = evaluate(model.score, train=graph.matrix("train"), test=valid, item_ids=graph.item_ids, k=20)
        print(json.dumps({
            "graph": args.graph, "iterations": iterations, "cpu_s": round(cpu, 1),
            "valid_ndcg": round(result.metrics["ndcg"], 5), "valid_recall": round(result.metrics["recall"], 5),
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
