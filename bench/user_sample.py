"""Accuracy cost of ``user_sample``: test metrics of a full and a sampled model, overall and per user group.

Both models must be trained on the same graph (``python -m graphrec.train``, the second with
``--set user_sample=F``). Each model is evaluated through its served scorer (``TrainedModel.scorer``:
the sampled model folds its unfitted users in), on every test user and on the sampled model's
fitted and folded-in users separately, with the protocol of docs/PROTOCOL.md.

    python bench/user_sample.py --full models/full --sample models/s50 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from eval import evaluate, sparse_threshold
from graphrec.artifacts.model import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", required=True, help="model trained on every user")
    parser.add_argument("--sample", required=True, help="model trained with user_sample")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    sampled = load_model(args.sample, device="cpu")
    if sampled.user_sample is None:
        raise SystemExit(f"{args.sample} was not trained with user_sample")
    graph = sampled.graph
    test, history = graph.matrix("test"), sampled.history
    has_test = np.diff(test.indptr) > 0
    fitted = sampled.user_sample.fitted
    groups = {"all": np.flatnonzero(has_test), "fitted": np.flatnonzero(has_test & fitted),
              "folded in": np.flatnonzero(has_test & ~fitted)}  # fmt: skip
    threshold = sparse_threshold(history, test, 5)
    rows = []
    for label, path, model in (("full", args.full, None), (f"sample {sampled.user_sample.setting}", args.sample, sampled)):
        model = model or load_model(path, device="cpu")
        scorer = model.scorer()
        for group, users in groups.items():
            started = time.process_time()
            result = evaluate(scorer, train=history, test=test, item_ids=graph.item_ids, k=20, users=users,
                              sparse_max_train=threshold)  # fmt: skip
            rows.append({"model": label, "users": group, "n_users": int(len(users)), "ndcg@20": result.metrics["ndcg"],
                         "recall@20": result.metrics["recall"], "tail_recall@20": result.metrics["tail_recall"],
                         "cpu_s": round(time.process_time() - started, 1)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"full": args.full, "sample": args.sample, "user_sample": sampled.user_sample.to_dict(),
                       "rows": rows}, handle, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
