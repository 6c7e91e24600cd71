"""Hybrid batch top-K throughput: the hybrid ranker's serving path beside the factor-model path.

For each trained model (``--model LABEL=DIR``, from ``python -m graphrec.train``), in one process:

  (a) hybrid, batch path: ``Recommender.iter_topk`` (every source scored once per batch,
      features vectorised over the batch, top-k over each user's candidates, batches on
      one thread per core), all users (or ``--users``);
  (b) hybrid, dense path: the route every hybrid request took before: ``Recommender.score_users``
      (``[B, num_items]`` rows, ``-inf`` outside the candidates) ranked by ``eval.ranking.iter_topk``
      with the history masked, on ``--dense-users`` users (it is slow);
  (c) factor path: the model's ALS factors through ``graphrec.serving.dot_scorer.DotScorer`` and the
      threaded ``iter_topk_parallel``, what ``Recommender`` does for a single factor model.

The lists of (a) are checked against the per-user path (each user's dense row alone,
history masked) on ``--check`` sampled users: identical item lists, scores within 1e-5.

    python bench/hybrid_topk.py --model ml-100k=models/ml-100k --model gowalla=models/gowalla

Prints a markdown table and writes it to bench/results/hybrid_topk.md and BENCHMARKS.md
(between its markers).
"""

from __future__ import annotations

import argparse
import os
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
from eval.ranking import iter_topk  # noqa: E402
from graphrec.serving.dot_scorer import DotScorer  # noqa: E402
from graphrec.serving.recommender import Recommender  # noqa: E402
from graphrec.serving.topk_workers import iter_topk_parallel  # noqa: E402

NAME = "hybrid_topk"


def timed(stream) -> tuple[float, list]:
    start = time.perf_counter()
    parts = list(stream)
    return time.perf_counter() - start, parts


def factor_path(rec: Recommender, users: np.ndarray, k: int, batch_size: int) -> float:
    als = rec.model.sources.get("als")
    if als is None:
        return float("nan")
    dot = DotScorer(als.user_embeddings(), als.item_embeddings())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seconds, _ = timed(
            iter_topk_parallel(dot.fork, users, k, exclude=rec.model.history, batch_size=batch_size, workers=threads)
        )
    finally:
        torch.set_num_threads(threads)
    return seconds


def per_user(rec: Recommender, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    items, scores = [], []
    for user in users:
        _, top_items, top_scores = next(iter_topk(rec.score_users, np.array([user]), k, exclude=rec.model.history))
        items.append(top_items)
        scores.append(top_scores)
    return np.concatenate(items), np.concatenate(scores)


def measure(label: str, path: str, args: argparse.Namespace) -> dict:
    rec = Recommender.load(path)
    everyone = np.arange(len(rec.user_ids), dtype=np.int64)
    rng = np.random.default_rng(args.seed)
    users = everyone if args.users is None else np.sort(rng.choice(everyone, min(args.users, len(everyone)), False))
    k = args.k
    batch_seconds, parts = timed(rec.iter_topk(users, k, batch_size=args.batch_size))
    batch_items = np.concatenate([p[1] for p in parts])
    batch_scores = np.concatenate([p[2] for p in parts])
    dense_users = np.sort(rng.choice(users, min(args.dense_users, len(users)), replace=False))
    dense_seconds, _ = timed(iter_topk(rec.score_users, dense_users, k, exclude=rec.model.history, batch_size=256))
    factor_seconds = factor_path(rec, users, k, args.batch_size)
    check = np.sort(rng.choice(len(users), min(args.check, len(users)), replace=False))
    ref_items, ref_scores = per_user(rec, users[check], k)
    same = (batch_items[check] == ref_items).all(axis=1)
    finite = np.isfinite(ref_scores)
    diff = float(np.abs(batch_scores[check][finite] - ref_scores[finite]).max()) if finite.any() else 0.0
    return {
        "data": label,
        "users": len(users),
        "items": rec.num_items,
        "sources": ", ".join(rec.model.ranker.source_names_),
        "hybrid": len(users) / batch_seconds,
        "dense": len(dense_users) / dense_seconds,
        "dense_users": len(dense_users),
        "factor": len(users) / factor_seconds,
        "identical": f"{int(same.sum())}/{len(check)}",
        "max_diff": diff,
    }


def table(rows: list[dict], command: str, args: argparse.Namespace) -> str:
    cores = os.cpu_count()
    lines = [
        f"<!-- {NAME}:begin -->",
        "## Hybrid batch top-K: hybrid ranker vs factor-model serving",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {cores} CPU cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); K = {args.k}, batches of {args.batch_size} users.",
        "",
        "| data | users | items | sources | hybrid batch path (users/s) | hybrid dense path, before (users/s) | "
        "factor path, ALS (users/s) | lists identical to the per-user path | max score diff |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['users']:,} | {r['items']:,} | {r['sources']} | {r['hybrid']:,.0f} | "
            f"{r['dense']:,.0f} (on {r['dense_users']:,}) | {r['factor']:,.0f} | {r['identical']} | "
            f"{r['max_diff']:.1e} |"
        )
    lines += [
        "",
        "The batch path scores every source once per batch, builds the features with matrix products "
        "over the batch (no step per user), ranks each user's candidates only and runs whole batches "
        "on one thread per core. The dense path is the route every hybrid request took before. "
        "Times are wall seconds on a shared machine; compare columns within a row.",
        f"<!-- {NAME}:end -->",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", required=True, help="LABEL=DIR of a trained model (repeatable)")
    p.add_argument("--users", type=int, help="rank this many sampled users (default: all)")
    p.add_argument("--dense-users", type=int, default=1000, help="users for the slow dense path (default 1000)")
    p.add_argument("--check", type=int, default=200, help="users checked against the per-user path (default 200)")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args()
    rows = []
    for spec in args.model:
        label, sep, path = spec.partition("=")
        if not sep:
            p.error(f"--model takes LABEL=DIR, got {spec!r}")
        rows.append(measure(label, path, args))
        print(rows[-1], flush=True)
    command = "python bench/hybrid_topk.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = table(rows, command, args)
    print(text)
    if not args.no_write:
        write_marked_section(NAME, text)


if __name__ == "__main__":
    main()
