"""Evaluator scale: a random scorer over N users x N items, wall time, users/s and peak memory.

Also times the top-K kernel alone, side by side on the same batches: the evaluator's
``torch.topk`` over ``k + m`` candidates (no copy of the scores) against a masked copy
ranked with ``np.argpartition``.

    python bench/eval_scale.py                       # 50k x 50k
    python bench/eval_scale.py --huge                # and 100k x 100k
    python bench/eval_scale.py --users 5000 --items 5000   # a quick look

Prints a markdown table and writes it to bench/results/eval_scale.md.
"""

from __future__ import annotations

import argparse
import resource
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import scipy.sparse as sp
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import PeakRSS, emit  # noqa: E402
from eval import evaluate  # noqa: E402
from eval.ranking import iter_topk  # noqa: E402

GIB = 1024**3


def random_interactions(n_users: int, n_items: int, n_train: int, n_test: int, seed: int):
    """Power-law item popularity; each user draws ``n_train + n_test`` items (repeats dropped)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    weights = rng.permutation(weights / weights.sum())
    per_user = n_train + n_test
    items = rng.choice(n_items, size=(n_users, per_user), p=weights)
    users = np.repeat(np.arange(n_users), per_user).reshape(n_users, per_user)
    is_test = np.zeros((n_users, per_user), dtype=bool)
    is_test[:, n_train:] = True
    train = sp.csr_matrix(
        (np.ones(n_users * n_train, np.float32), (users[~is_test], items[~is_test])), shape=(n_users, n_items)
    )
    train.sum_duplicates()
    train.data[:] = 1
    test = sp.csr_matrix(
        (np.ones(n_users * n_test, np.float32), (users[is_test], items[is_test])), shape=(n_users, n_items)
    )
    test.sum_duplicates()
    test.data[:] = 1
    test = test - test.multiply(train)  # an item both drawn for train and test stays in train
    test.eliminate_zeros()
    return train.tocsr(), test.tocsr()


def random_scorer(n_items: int, seed: int, device: str = "cpu"):
    """Uniform scores from torch's generator on ``device``, seeded by the batch's first user."""
    generator = torch.Generator(device=device)

    def scorer(users: np.ndarray) -> torch.Tensor:
        generator.manual_seed(seed * 1_000_003 + int(users[0]))
        return torch.rand((len(users), n_items), generator=generator, device=device)

    return scorer


def run_evaluate(n: int, args) -> dict:
    train, test = random_interactions(n, n, args.train_per_user, args.test_per_user, args.seed)
    item_ids = [str(i) for i in range(n)]
    scorer = random_scorer(n, args.seed, args.device)
    score_seconds = 0.0

    def timed_scorer(users):
        nonlocal score_seconds
        started = time.perf_counter()
        out = scorer(users)
        if out.is_cuda:
            torch.cuda.synchronize()  # so the generation is timed here, not inside top-K
        score_seconds += time.perf_counter() - started
        return out

    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as rss:
        started = time.perf_counter()
        result = evaluate(timed_scorer, train=train, test=test, item_ids=item_ids, k=args.k, batch_size=args.batch_size)
        wall = time.perf_counter() - started
    return {
        "shape": f"{n:,} x {n:,}",
        "users": result.n_users,
        "device": args.device,
        "wall": wall,
        "score": score_seconds,
        "users_per_s": result.n_users / wall,
        "rss_start": rss.start / GIB,
        "rss_peak": rss.peak / GIB,
        "recall": result.metrics["recall"],
        "coverage": result.metrics["coverage"],
        "batch_bytes": args.batch_size * n * 4 / GIB,
        "gpu_peak": torch.cuda.max_memory_allocated() / GIB if args.device == "cuda" else None,
    }


def argpartition_topk(scores: np.ndarray, exclude: sp.csr_matrix, k: int) -> np.ndarray:
    """Reference kernel: mask a copy with -inf, argpartition, sort the k winners."""
    masked = scores.copy()
    rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
    masked[rows, exclude.indices] = -np.inf
    part = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(masked, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def compare_kernels(args, n: int, n_batches: int) -> dict:
    train, _ = random_interactions(args.batch_size * n_batches, n, args.train_per_user, 0, args.seed)
    scorer = random_scorer(n, args.seed)
    batches = [np.arange(b * args.batch_size, (b + 1) * args.batch_size) for b in range(n_batches)]
    score_tensors = [scorer(users) for users in batches]
    timings = {"torch.topk (k + m candidates, no copy)": 0.0, "np.argpartition (masked copy)": 0.0}
    for users, scores in zip(batches, score_tensors):
        started = time.perf_counter()
        ours = next(iter_topk(lambda u, s=scores: s, users, args.k, exclude=train, batch_size=len(users)))[2]
        timings["torch.topk (k + m candidates, no copy)"] += time.perf_counter() - started
        started = time.perf_counter()
        reference = argpartition_topk(scores.numpy(), train[users], args.k)
        timings["np.argpartition (masked copy)"] += time.perf_counter() - started
        # Compare the scores ranked: exactly tied items may come in either order.
        assert (ours == np.take_along_axis(scores.numpy(), reference, axis=1)).all(), "the two kernels disagree"
    return {"batches": n_batches, "n": n, **timings}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000, help="users = items for the main run")
    parser.add_argument("--items", type=int, default=None, help="(defaults to --users)")
    parser.add_argument("--huge", action="store_true", help="also run 100k x 100k")
    parser.add_argument("--train-per-user", type=int, default=20)
    parser.add_argument("--test-per-user", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--kernel-batches", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="where the scorer's tensors live (cpu, cuda)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval_scale.md")
    args = parser.parse_args(argv)
    if args.items not in (None, args.users):
        parser.error("this benchmark uses square problems: leave --items unset or equal to --users")

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    sizes = [args.users] + ([100_000] if args.huge and args.users != 100_000 else [])
    rows = [run_evaluate(n, args) for n in sizes]
    kernels = compare_kernels(args, args.users, args.kernel_batches)

    command = shlex.join(["python", "bench/eval_scale.py", *(argv if argv is not None else sys.argv[1:])])
    device = f"cuda ({torch.cuda.get_device_name()})" if args.device == "cuda" else args.device
    lines = [
        "## Evaluator scale (random scorer, full ranking)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {psutil.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"scores on {device}. Batch size {args.batch_size} users; K = {args.k}; {args.train_per_user} train + "
        f"{args.test_per_user} test draws per user from a power-law item popularity.",
        "",
        "| users x items | device | evaluated users | wall s | of which scoring s | users/s | "
        "evaluator users/s (wall - scoring) | RSS before GiB | peak RSS GiB | one batch of scores GiB | "
        "Recall@K | Coverage@K |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['device']} | {r['users']:,} | {r['wall']:.1f} | {r['score']:.1f} | "
            f"{r['users_per_s']:,.0f} | "
            f"{r['users'] / max(r['wall'] - r['score'], 1e-9):,.0f} | "
            f"{r['rss_start']:.2f} | {r['rss_peak']:.2f} | {r['batch_bytes']:.2f} | {r['recall']:.5f} | "
            f"{r['coverage']:.3f} |"
        )
    for r in rows:
        if r["gpu_peak"] is not None:
            lines.append(f"\nPeak GPU memory allocated ({r['shape']}): {r['gpu_peak']:.2f} GiB")
    names = [key for key in kernels if key not in ("batches", "n")]
    base = kernels[names[0]]
    lines += [
        "",
        f"Top-K kernel alone, {kernels['batches']} batches of {args.batch_size} x {kernels['n']:,} scores "
        f"(same batches, same masks, same ranked scores):",
        "",
        "| kernel | seconds | ratio to torch.topk |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {kernels[name]:.2f} | {kernels[name] / base:.2f}x |" for name in names]
    lines.append(f"\nProcess peak RSS (ru_maxrss, whole run incl. data generation): "
                 f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GiB")
    text = "\n".join(lines) + "\n"
    return emit(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
