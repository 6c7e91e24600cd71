"""Serving throughput: batch top-K for every user of a factor model, ours against implicit.

A synthetic factor model (random float32 user and item factors, seeded) and a random
sparse "seen" matrix of about ``--seen`` items per user that must not be recommended.
Side by side in one process:

  (a) implicit 0.7.3: ``AlternatingLeastSquares.recommend(userids, seen[userids], N=k,
      filter_already_liked_items=True)`` with the factors set, in batches of users;
  (b) ours: ``graphrec.serving.topk_workers.iter_topk_parallel``: ``eval.ranking.iter_topk`` on whole
      user batches in ``--threads`` worker threads (torch single-threaded inside each), scores
      from ``graphrec.serving.dot_scorer.DotScorer`` (torch matmul into a reused buffer), seen items
      masked and ``torch.topk`` as ``iter_topk`` does;
  (c) (b) plus streaming every list to Parquet with ``graphrec.serving.topk_writer.RecommendationWriter``
      (external string ids);
  (b1) plain ``iter_topk`` in the calling thread with ``--threads`` torch intra-op threads,
      same ``DotScorer``; with ``--naive`` also (b2), the same with a fresh ``u @ V.T`` per batch.

Each path runs ``--repeats`` times, alternating; the table reports the best wall time,
users/s, the ratio to implicit and the peak RSS increase over the run's start (RSS sampled
every 10 ms in a thread). The top-K lists of (a) and (b) are compared on a sample of users.

    python bench/serving_throughput.py                          # 100k users x 50k items x 64
    python bench/serving_throughput.py --users 20000 --items 10000   # a quick look

Prints a markdown table and writes it (atomically) to bench/results/serving.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import PeakRSS  # noqa: E402
from eval.ranking import iter_topk  # noqa: E402
from graphrec.serving.dot_scorer import DotScorer  # noqa: E402
from graphrec.serving.topk_workers import iter_topk_parallel  # noqa: E402
from graphrec.serving.topk_writer import RecommendationWriter  # noqa: E402
from kg.artifact import atomic_file  # noqa: E402

MIB = 1024**2


def make_model(n_users: int, n_items: int, factors: int, seen: int, seed: int):
    """Random factors (N(0, 1/sqrt(f))) and a CSR of ``seen`` random items per user (repeats dropped)."""
    rng = np.random.default_rng(seed)
    scale = np.float32(1 / np.sqrt(factors))
    user_factors = rng.standard_normal((n_users, factors), dtype=np.float32) * scale
    item_factors = rng.standard_normal((n_items, factors), dtype=np.float32) * scale
    rows = np.repeat(np.arange(n_users), seen)
    cols = rng.integers(0, n_items, n_users * seen)
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return user_factors, item_factors, matrix


def run_implicit(model, seen: sp.csr_matrix, k: int, batch_size: int, keep: np.ndarray) -> dict:
    """implicit's configuration of choice: its own threads over users, BLAS single-threaded."""
    kept = {}
    n_users = seen.shape[0]
    for start in range(0, n_users, batch_size):
        users = np.arange(start, min(start + batch_size, n_users))
        with threadpool_limits(1, "blas"):  # what implicit's check_blas_config asks for
            ids, _ = model.recommend(users, seen[users], N=k, filter_already_liked_items=True)
        hit = keep[(keep >= start) & (keep < start + len(users))]
        for u in hit:
            kept[int(u)] = ids[u - start]
    return kept


def naive_scorer(user_factors: np.ndarray, item_factors: np.ndarray):
    """``user_factors[users] @ item_factors.T``: a fresh [B, n_items] allocation per batch."""
    users_t, items_t = torch.from_numpy(user_factors), torch.from_numpy(item_factors)
    return lambda users: users_t[torch.from_numpy(users)] @ items_t.T


def run_ours(topk_batches, writer=None, user_ids=None, item_ids=None, keep=()):
    """Consume ``(users, items, scores)`` batches; optionally stream them to ``writer``."""
    kept = {}
    for users, items, scores in topk_batches:
        if writer is not None:
            counts = (items >= 0).sum(axis=1)
            writer.write_batch(user_ids[users], item_ids[np.maximum(items, 0)], scores, counts=counts)
        for row in np.flatnonzero(np.isin(users, keep)):
            kept[int(users[row])] = items[row]
    return kept


def timed(fn) -> tuple[float, int, object]:
    with PeakRSS() as rss:
        started = time.perf_counter()
        out = fn()
        wall = time.perf_counter() - started
    return wall, rss.increase, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--seen", type=int, default=20, help="random seen items per user (masked)")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=512, help="users per iter_topk batch (ours)")
    parser.add_argument("--implicit-batch-size", type=int, default=10_000, help="users per recommend() call")
    parser.add_argument("--threads", type=int, default=2, help="cores: implicit num_threads, our workers / torch threads")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each path; best is reported")
    parser.add_argument("--naive", action="store_true", help="also time iter_topk with a plain matmul scorer")
    parser.add_argument("--sample", type=int, default=2000, help="users whose lists are compared")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serving.md")
    args = parser.parse_args(argv)

    from implicit.cpu.als import AlternatingLeastSquares

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    user_factors, item_factors, seen = make_model(args.users, args.items, args.factors, args.seen, args.seed)
    setup = time.perf_counter() - started
    model = AlternatingLeastSquares(factors=args.factors, num_threads=args.threads, random_state=args.seed)
    model.user_factors, model.item_factors = user_factors, item_factors
    user_ids = np.char.add("user_", np.arange(args.users).astype(str))
    item_ids = np.char.add("item_", np.arange(args.items).astype(str))
    keep = np.sort(np.random.default_rng(args.seed + 1).choice(args.users, min(args.sample, args.users), replace=False))

    tmp = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    parquet = tmp / "recs.parquet"

    all_users = np.arange(args.users)

    def sequential(scorer):
        # torch's own intra-op threads inside each batch
        torch.set_num_threads(args.threads)
        return iter_topk(scorer, all_users, args.k, exclude=seen, batch_size=args.batch_size)

    def parallel():
        # whole batches per thread, torch single-threaded inside each
        torch.set_num_threads(1)
        shared = DotScorer(user_factors, item_factors)
        return iter_topk_parallel(
            shared.fork, all_users, args.k, exclude=seen, batch_size=args.batch_size, workers=args.threads
        )

    def with_writer():
        with RecommendationWriter(parquet) as writer:
            got = run_ours(parallel(), writer, user_ids, item_ids, keep)
        return got

    paths = {
        "(a) implicit recommend (batched)": lambda: run_implicit(model, seen, args.k, args.implicit_batch_size, keep),
        f"(b) ours: iter_topk_parallel, {args.threads} workers x 1 torch thread, DotScorer": lambda: run_ours(
            parallel(), keep=keep
        ),
        "(c) = (b) + Parquet (RecommendationWriter)": with_writer,
        f"(b1) ours: iter_topk, 1 worker x {args.threads} torch threads, DotScorer": lambda: run_ours(
            sequential(DotScorer(user_factors, item_factors)), keep=keep
        ),
    }
    if args.naive:
        paths[f"(b2) ours: iter_topk, 1 worker x {args.threads} torch threads, plain matmul scorer"] = lambda: run_ours(
            sequential(naive_scorer(user_factors, item_factors)), keep=keep
        )
    # Warm-up on a few batches (thread pools, first-call allocations), not timed.
    warm = seen[: 2 * args.batch_size]
    with threadpool_limits(1, "blas"):
        model.recommend(np.arange(warm.shape[0]), warm, N=args.k)
    run_ours(iter_topk(DotScorer(user_factors, item_factors), np.arange(warm.shape[0]), args.k, exclude=warm))

    results = {name: {"wall": float("inf"), "rss": 0} for name in paths}
    kept = {}
    for _ in range(args.repeats):
        for name, fn in paths.items():
            wall, rss, got = timed(fn)
            print(f"{name}: {wall:.2f} s, peak RSS +{rss / MIB:.0f} MiB", flush=True)
            results[name]["wall"] = min(results[name]["wall"], wall)
            results[name]["rss"] = max(results[name]["rss"], rss)
            kept[name] = got
    parquet_bytes = parquet.stat().st_size
    parquet.unlink()
    tmp.rmdir()

    names = list(paths)
    theirs, ours = kept[names[0]], kept[names[1]]
    overlap = np.mean([len(set(theirs[u].tolist()) & set(ours[u].tolist())) / args.k for u in keep])
    same_order = np.mean([np.array_equal(theirs[u], ours[u]) for u in keep])
    writer_same = np.mean([np.array_equal(kept[names[2]][u], ours[u]) for u in keep])

    command = shlex.join(["python", "bench/serving_throughput.py", *(argv if argv is not None else sys.argv[1:])])
    import implicit

    base = results[names[0]]["wall"]
    lines = [
        "## Serving throughput: batch top-K for all users (factor model)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {psutil.cpu_count()} CPUs ({os.cpu_count()} visible), "
        f"{psutil.virtual_memory().total / 1024**3:.0f} GiB RAM, Python {platform.python_version()}, "
        f"torch {torch.__version__}, implicit {implicit.__version__} "
        f"with num_threads={args.threads} and BLAS limited to 1 thread around its calls (threadpoolctl, as implicit "
        f"recommends; with 2 BLAS threads it was slower here); ours uses the same {args.threads} cores as the row says. The CPUs were shared with other work during the run: "
        f"compare the ratios, not the absolute times.  ",
        f"Problem: {args.users:,} users x {args.items:,} items x {args.factors} float32 factors (seed {args.seed}), "
        f"{seen.nnz / args.users:.1f} seen items per user masked, K = {args.k}. Batches: ours "
        f"{args.batch_size} users, implicit {args.implicit_batch_size} users per recommend() call. "
        f"Best of {args.repeats} alternating runs; peak RSS increase is the largest over the runs. "
        f"Data generation {setup:.1f} s (not timed).",
        "",
        "| path | wall s | users/s | ratio to implicit (users/s) | peak RSS increase MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        r = results[name]
        lines.append(
            f"| {name} | {r['wall']:.2f} | {args.users / r['wall']:,.0f} | {base / r['wall']:.2f}x | "
            f"{r['rss'] / MIB:,.0f} |"
        )
    lines += [
        "",
        f"Agreement on {len(keep):,} sampled users: top-{args.k} id overlap (a) vs (b) {overlap:.4f}, identical "
        f"ordered lists {same_order:.4f}; (c) lists identical to (b) {writer_same:.4f}. "
        f"Parquet output: {args.users * args.k:,} rows, {parquet_bytes / MIB:.1f} MiB.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with atomic_file(args.out) as tmp_out:
        tmp_out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
