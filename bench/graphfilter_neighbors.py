"""The graph filter's sparse operator (``graphfilter.neighbors``): validation accuracy and cost against exact.

Above ``dense_max_items`` the graph filter scores every batch exactly, through ``2 +
2 sharpen_order`` sparse passes over ``R~`` per user (gowalla's defaults: 10). With
``neighbors = m`` it holds the filter's items x items operator instead, each item's ``m``
largest-magnitude entries, built once at fit by filtering the identity
(:func:`training.sources.spectral.top_entries`), and scores a user with one sparse product.
This bench loads a fit-phase graph filter (a ``--keep-work`` directory's
``fit/graphfilter``: fitted on train, the validation split held out; without ``--fitted`` the
default filter is fitted on the graph's train split here), derives the operator
for each ``--neighbors`` with ``with_filter`` (same SVD), and evaluates every variant on the
validation split (docs/PROTOCOL.md full ranking, fit items masked) on the same users:
NDCG/Recall/TailRecall@K, scoring CPU ms per user (process time over the evaluation), the
operator's build seconds (wall) and its size.

    python bench/graphfilter_neighbors.py --graph G --fitted W/fit/graphfilter --neighbors 256 512 1024 2048

Prints a markdown table and writes it to bench/results/graphfilter_neighbors.md and the
``graphfilter_neighbors`` section of BENCHMARKS.md (``--no-write``: print only).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.merge_results import write_marked_section  # noqa: E402
from eval import evaluate  # noqa: E402
from kg.graph_io import load_graph  # noqa: E402
from training.base import sample_at_most  # noqa: E402
from training.sources.graphfilter import GraphFilter  # noqa: E402


def run(model: GraphFilter, graph, fit, valid, users: np.ndarray, k: int) -> dict:
    start = time.process_time()
    result = evaluate(model.score, train=fit, test=valid, item_ids=graph.item_ids, k=k, users=users, batch_size=256)
    seconds = time.process_time() - start
    m = result.metrics
    return {"ndcg": m["ndcg"], "recall": m["recall"], "tail": m["tail_recall"], "ms": 1000 * seconds / len(users)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graph", required=True, help="graph directory (python -m graphrec.build) with a validation split")
    p.add_argument("--fitted", help="a fit-phase graph filter directory (W/fit/graphfilter; default: fit the "
                   "default filter on the graph's train split here)")
    p.add_argument("--neighbors", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--users", type=int, default=0, help="validation users evaluated (a seeded sample; 0: all)")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--label", default="", help="section suffix, so that several graphs keep a table each")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    graph = load_graph(args.graph)
    fit, valid = graph.matrix("train"), graph.matrix("valid")
    if args.fitted:
        exact = GraphFilter.load(args.fitted, device="cpu").with_filter(neighbors=0)
    else:
        exact = GraphFilter(seed=args.seed).fit(graph, fit)
    if fit.nnz != exact.user_items_.nnz:
        raise SystemExit(f"{args.fitted} was fitted on {exact.user_items_.nnz:,} pairs, the graph's train has {fit.nnz:,}")
    users = sample_at_most(np.flatnonzero(np.diff(valid.indptr) > 0), args.users, args.seed)
    rows = [("exact (neighbors 0)", run(exact, graph, fit, valid, users, args.k), None, None)]
    print(rows[-1], flush=True)
    for m in args.neighbors:
        start = time.perf_counter()
        model = exact.with_filter(neighbors=m)
        built = time.perf_counter() - start
        size = (model._sparse.data.nbytes + model._sparse.indices.nbytes) / 2**20
        rows.append((f"neighbors {m}", run(model, graph, fit, valid, users, args.k), built, size))
        print(rows[-1], flush=True)
        del model

    n = graph.num_items
    command = "python bench/graphfilter_neighbors.py " + shlex.join(sys.argv[1:])
    base = rows[0][1]["ndcg"]
    section = "graphfilter_neighbors" + (f"_{args.label}" if args.label else "")
    lines = [
        f"<!-- {section}:begin -->",
        ("## Graph filter: exact passes against the sparse operator (`graphfilter.neighbors`), validation"
         if not args.label else f"### {args.label}: the same comparison"),
        "",
        f"Command: `{command}`  ",
        f"{graph.num_users:,} users x {n:,} items, {fit.nnz:,} fit pairs; {len(users):,} validation users "
        f"({valid[users].nnz:,} pairs), full ranking, fit items masked, K = {args.k}. Filter: "
        f"{exact.kind}, alpha {exact.alpha}, rank {exact.rank}, sharpen {exact.sharpen} order {exact.sharpen_order}. "
        f"{torch.get_num_threads()} torch thread(s), {platform.machine()}, torch {torch.__version__}; "
        "scoring = CPU ms per user of the evaluation (process time, all threads); build = wall seconds.",
        "",
        f"| filter | NDCG@{args.k} | vs exact | Recall@{args.k} | TailRecall@{args.k} | scoring CPU ms/user "
        "| build s | operator MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r, built, size in rows:
        lines.append(
            f"| {name} | {r['ndcg']:.4f} | {r['ndcg'] / base:.4f}x | {r['recall']:.4f} | {r['tail']:.4f} | "
            f"{r['ms']:.2f} | {'-' if built is None else f'{built:.0f}'} | {'-' if size is None else f'{size:,.0f}'} |"
        )
    lines.append(f"<!-- {section}:end -->")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_marked_section(section, text)


if __name__ == "__main__":
    main()
