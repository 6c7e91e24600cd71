"""Training-free baselines (MostPop, Random) on a built graph's test split, docs/PROTOCOL.md figures.

    python -m graphrec.build --format recbole --interactions ../shared/data/ml-100k/ml-100k.inter \
        --split random --seed 2026 --out /tmp/ml100k
    python bench/eval_baselines.py --graph /tmp/ml100k

Prints a markdown table and writes it to bench/results/eval_baselines.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from bench.common import emit  # noqa: E402
from eval import MostPop, RandomScorer, evaluate, sparse_threshold  # noqa: E402
from kg import load_graph  # noqa: E402


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.4f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, required=True, help="graph artifact (python -m graphrec.build)")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026, help="seed of the Random baseline")
    parser.add_argument(
        "--sparse-max-train",
        type=int,
        default=None,
        help="sparse-user threshold (default: 5, or the lowest quintile of train counts when no user has <= 5)",
    )
    parser.add_argument("--build-command", default=None, help="how the graph was built, recorded in the section")
    parser.add_argument("--name", default=None, help="data set name for the heading (default: the graph folder)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval_baselines.md")
    args = parser.parse_args(argv)

    graph = load_graph(args.graph)
    train = graph.matrix("train", "valid")  # docs/PROTOCOL.md: "train" when scoring test
    test = graph.matrix("test")
    item_ids = graph.item_ids
    baselines = {
        "MostPop": MostPop().fit(train, item_ids=item_ids),
        f"Random (seed {args.seed})": RandomScorer(args.seed).fit(train),
    }
    # docs/PROTOCOL.md: sparse users have <= 5 train items, "or the lowest quintile, stated" where
    # no user is that sparse (ml-100k keeps only users with 20+ ratings).
    sparse_max = args.sparse_max_train
    if sparse_max is None:
        sparse_max = sparse_threshold(train, test)
    results = {
        name: evaluate(scorer, train=train, test=test, item_ids=item_ids, k=args.k, sparse_max_train=sparse_max)
        for name, scorer in baselines.items()
    }

    k = args.k
    first = next(iter(results.values()))
    counts = graph.counts()
    split = graph.meta.get("split", {})
    if isinstance(split, dict):
        shown = ("method", "seed", "train_fraction", "valid_fraction")
        split = ", ".join(f"{key} {split[key]}" for key in shown if key in split) or "not recorded"
    command = shlex.join(["python", "bench/eval_baselines.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        f"## Training-free baselines on {args.name or args.graph.name} (test split)",
        "",
        *([f"Graph built with: `{args.build_command}`  "] if args.build_command else []),
        f"Command: `{command}`  ",
        f"Graph: {counts['users']:,} users, {counts['items']:,} items, {counts['train']:,} train + "
        f"{counts['valid']:,} valid + {counts['test']:,} test pairs; split: {split}. "
        f"{first.n_users:,} evaluated users, head = {first.head_size} items, "
        f"{first.sparse['n_users']} sparse users (<= {first.sparse['threshold']} train items"
        + (", the lowest quintile" if first.sparse["threshold"] != 5 else "")
        + ").",
        "",
        f"| model | Recall@{k} | NDCG@{k} | Precision@{k} | Coverage@{k} | TailRecall@{k} | APLT@{k} | "
        f"Gini@{k} | sparse-user NDCG@{k} | top-K s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        m = result.metrics
        cells = [m[key] for key in ("recall", "ndcg", "precision", "coverage", "tail_recall", "aplt", "gini")]
        cells.append(result.sparse["ndcg"])
        lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in cells) + f" | {result.seconds:.2f} |")
    text = "\n".join(lines) + "\n"
    return emit(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
