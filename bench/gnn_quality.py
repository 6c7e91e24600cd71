"""Quality of the GNN learners on a built graph: text vs random initialisation, GAT, MostPop.

    python -m graphrec.build --format recbole --interactions ../shared/data/ml-100k/ml-100k.inter --out /tmp/g-ml100k
    python bench/gnn_quality.py --graph /tmp/g-ml100k
    python bench/gnn_quality.py --graph /tmp/g-lastfm --no-text --name lastfm   # no item text there

Every learner runs with its defaults (only ``init`` differs) as the training
pipeline runs it: fit on train with early stopping on valid NDCG@20, then refit
on train + valid for the best epoch count; scored on test with train + valid
masked (docs/PROTOCOL.md). Item and entity features come from ``training.text``
(the packaged all-MiniLM-L6-v2, not fine-tuned). Prints a markdown table and
writes it to bench/results/gnn_quality[_NAME].md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from eval import MostPop, evaluate, sparse_threshold  # noqa: E402
from kg import load_graph  # noqa: E402
from training.gnn import GAT, LightGCN  # noqa: E402

METRICS = ("recall", "ndcg", "tail_recall", "coverage", "aplt")


def _features(graph, cache_dir):
    from training.text import TextEncoder, entity_texts, item_texts

    encoder = TextEncoder(cache_dir=cache_dir)
    return {
        "item_features": encoder.embed(item_texts(graph)),
        "entity_features": encoder.embed(entity_texts(graph)),
    }


def _two_stage(cls, config: dict, graph, features: dict) -> tuple[object, float, int]:
    """Early-stopped fit on train, then a refit on train + valid for the best epoch count."""
    started = time.perf_counter()
    first = cls(**config).fit(graph, graph.matrix("train"), valid_items=graph.matrix("valid"), **features)
    refit = cls(**{**config, "epochs": first.best_epoch_}).fit(graph, graph.matrix("train", "valid"), **features)
    return refit, time.perf_counter() - started, first.best_epoch_


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, required=True, help="graph artifact (python -m graphrec.build)")
    parser.add_argument("--name", default=None, help="data set name (heading and output file suffix)")
    parser.add_argument("--no-text", action="store_true", help="random initialisation only (graphs without text)")
    parser.add_argument("--no-gat", action="store_true", help="skip the GAT (slow on CPU with a large KG)")
    parser.add_argument("--no-lightgcn", action="store_true", help="skip the LightGCN runs (e.g. to add the GAT row)")
    parser.add_argument("--max-epochs", type=int, default=None, help="cap every learner's epochs (stated in the output)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="text vector cache of training.text")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    name = args.name or args.graph.name
    out = args.out or ROOT / "bench" / "results" / (f"gnn_quality_{args.name}.md" if args.name else "gnn_quality.md")

    graph = load_graph(args.graph)
    train, test = graph.matrix("train", "valid"), graph.matrix("test")
    common = {"seed": args.seed, "device": args.device}
    if args.max_epochs is not None:
        common["epochs"] = args.max_epochs
    runs = [] if args.no_lightgcn else [("LightGCN, random init", LightGCN, {**common, "init": "random"})]
    if not args.no_text and not args.no_lightgcn:
        runs.append(("LightGCN, text init (default)", LightGCN, common))
    if not args.no_gat:
        gat_config = {**common, "init": "random"} if args.no_text else common
        runs.append((f"GAT, {'random' if args.no_text else 'text'} init", GAT, gat_config))
    features = {} if args.no_text else _features(graph, args.cache_dir)

    sparse = sparse_threshold(train, test)
    rows = [("MostPop", evaluate(MostPop().fit(train), train=train, test=test, item_ids=graph.item_ids, k=20,
                                 sparse_max_train=sparse), 0.0, "")]  # fmt: skip
    for label, cls, config in runs:
        model, seconds, best = _two_stage(cls, config, graph, features)
        result = evaluate(model.score, train=train, test=test, item_ids=graph.item_ids, k=20, sparse_max_train=sparse)
        rows.append((label, result, seconds, str(best)))
        print(label, {k: round(result.metrics[k], 4) for k in METRICS}, f"{seconds:.0f}s", flush=True)

    command = shlex.join(["python", "bench/gnn_quality.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        f"## GNN quality on {name} (test split, K = 20)",
        "",
        f"Command: `{command}`  ",
        f"Graph: {graph.num_users:,} users, {graph.num_items:,} items, {train.nnz:,} train + valid pairs, "
        f"{test.nnz:,} test pairs, {graph.num_entities:,} entities. Each learner: defaults, early stopping on "
        "valid NDCG@20, refit on train + valid for the best epoch count"
        + (f"; epochs capped at {args.max_epochs}." if args.max_epochs else ".")
        + f" Sparse users: at most {sparse} train items.",
        "",
        "| model | Recall@20 | NDCG@20 | TailRecall@20 | Coverage@20 | APLT@20 | sparse NDCG@20 | best epoch | "
        "fit s (both stages) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, result, seconds, best in rows:
        cells = " | ".join(f"{result.metrics[k]:.4f}" for k in METRICS)
        cells += f" | {result.sparse['ndcg']:.4f} (n={result.sparse['n_users']})"  # sparse figures carry their count
        lines.append(f"| {label} | {cells} | {best} | {seconds:.0f} |")
    metrics = {label: result.metrics for label, result, _, _ in rows}
    if "LightGCN, text init (default)" in metrics:
        text, random = metrics["LightGCN, text init (default)"], metrics["LightGCN, random init"]
        lines += [
            "",
            f"Text vs random init: TailRecall@20 {text['tail_recall'] / max(random['tail_recall'], 1e-12):.2f}x, "
            f"NDCG@20 {100 * (text['ndcg'] / random['ndcg'] - 1):+.1f}% relative.",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
