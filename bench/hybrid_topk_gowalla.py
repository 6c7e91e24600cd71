"""Hybrid batch top-K before and after a change, side by side on one model (issue 12; bench/results/hybrid_topk_gowalla.md).

Runs the Recommender's batch path (``Recommender.iter_topk``, what ``python -m graphrec.recommend``
runs) on the same users of the same model with two checkouts, alternating ``--rounds`` times, each
in a fresh process whose ``PYTHONPATH`` is that checkout. A process reports wall seconds and its CPU
seconds (user + system, all threads: on a shared machine the CPU time is the steadier figure), and
checks ``--check`` sampled users against the per-user path (each user's dense hybrid row alone,
history masked, as tests/graphrec/test_hybrid_topk.py does). The two checkouts' lists are then
compared with each other over every ranked user.

    python bench/hybrid_topk_gowalla.py --model /tmp/h9/gowalla-model --before /tmp/h9/base --users 5000

The model is a ``python -m graphrec.train`` artifact (``--model``), or a ``--keep-work`` directory
with a saved ranker (``--work GRAPH WORK``: final sources + ``WORK/ranker``, as
bench/hybrid_topk_workdir.py loads it). Writes the table to bench/results/hybrid_topk_gowalla.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORKER = "--worker" in sys.argv
if not WORKER:  # a worker imports the checkout its PYTHONPATH names
    sys.path.insert(0, str(ROOT))


def load(args: argparse.Namespace):
    """``(rank, per_user, num_users)``: the batch path and the per-user reference of the model."""
    from eval.ranking import iter_topk

    if args.model:
        from graphrec.serving.recommender import Recommender

        rec = Recommender.load(args.model, device="cpu")
        history = rec.model.history

        def rank(users):
            return list(rec.iter_topk(users, args.k, batch_size=args.batch_size))

        scorer, num_users = rec.score_users, len(rec.user_ids)
    else:
        from bench.hybrid_topk_floor import sources_of  # the checkout's own (PYTHONPATH)
        from graphrec.serving.batch_topk import parallel_hybrid_topk
        from kg.graph_io import load_graph
        from training.ranker import HybridRanker
        from training.ranker.context import RankerContext

        graph, work = load_graph(args.work[0]), Path(args.work[1])
        history = graph.matrix("train", "valid")
        times = graph.timestamp_matrix("train", "valid") if graph.has_timestamps else None
        scorers = sources_of(work, "final", graph, history)
        ranker = HybridRanker.load(work / "ranker", device="cpu")
        used = {name: scorers[name] for name in ranker.source_names_}
        ranker.bind(RankerContext.build(graph, history, history_times=times, source_scorers=used))

        def rank(users):
            return list(parallel_hybrid_topk(ranker, users, args.k, args.batch_size, False))

        scorer, num_users = ranker.score, graph.num_users

    def per_user(users):
        out = [next(iter_topk(scorer, np.array([u]), args.k, exclude=history)) for u in users]
        return np.concatenate([o[1] for o in out]), np.concatenate([o[2] for o in out])

    return rank, per_user, num_users


def sample(num_users: int, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(args.seed)
    everyone = np.arange(num_users, dtype=np.int64)
    users = everyone if args.users is None else np.sort(rng.choice(everyone, min(args.users, num_users), replace=False))
    return users, np.sort(rng.choice(len(users), min(args.check, len(users)), replace=False))


def worker(args: argparse.Namespace) -> None:
    rank, per_user, num_users = load(args)
    users, check = sample(num_users, args)
    rank(users[:8])  # warm: lazy operators, first allocations
    start_cpu, start = os.times(), time.perf_counter()
    parts = rank(users)
    wall, end_cpu = time.perf_counter() - start, os.times()
    items = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([p[2] for p in parts])
    assert np.concatenate([p[0] for p in parts]).tolist() == users.tolist()
    ref_items, ref_scores = per_user(users[check])
    finite = np.isfinite(ref_scores)
    np.savez(args.out, items=items, scores=scores)
    result = {
        "wall": wall, "cpu": (end_cpu.user - start_cpu.user) + (end_cpu.system - start_cpu.system),
        "sys": end_cpu.system - start_cpu.system, "users": len(users),
        "identical": int((items[check] == ref_items).all(axis=1).sum()), "checked": len(check),
        "max_diff": float(np.abs(scores[check][finite] - ref_scores[finite]).max()) if finite.any() else 0.0,
    }  # fmt: skip
    Path(args.out).with_suffix(".json").write_text(json.dumps(result))


def run(checkout: str, args: argparse.Namespace, out: Path) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--out", str(out)] + args.passthrough
    env = {**os.environ, "PYTHONPATH": checkout}
    subprocess.run(command, env=env, cwd=checkout, check=True)
    return json.loads(out.with_suffix(".json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model artifact directory")
    p.add_argument("--work", nargs=2, metavar=("GRAPH", "WORK"), help="graph + --keep-work directory with a ranker")
    p.add_argument("--before", help="checkout of the code before the change (the other side is this checkout)")
    p.add_argument("--users", type=int, help="rank this many sampled users (default: all)")
    p.add_argument("--check", type=int, default=200, help="users checked against the per-user path (default 200)")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=2, help="before/after alternations (default 2)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if (args.model is None) == (args.work is None):
        p.error("give --model or --work")
    if args.worker:
        return worker(args)
    if not args.before:
        p.error("--before CHECKOUT is required")
    args.passthrough = [a for a in sys.argv[1:] if a not in ("--no-write",)]
    sides = {"before": str(Path(args.before).resolve()), "after": str(ROOT)}
    results: dict[str, list[dict]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for side, checkout in sides.items():
                result = run(checkout, args, Path(tmp) / f"{side}{round_}.npz")
                results[side].append(result)
                print(side, round_, result, flush=True)
        lists = {side: np.load(Path(tmp) / f"{side}0.npz")["items"] for side in sides}
    same = int((lists["before"] == lists["after"]).all(axis=1).sum())
    command = "python bench/hybrid_topk_gowalla.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(table(results, same, len(lists["after"]), sides, command, args))
    if not args.no_write:
        out = ROOT / "bench" / "results" / "hybrid_topk_gowalla.md"
        tmp_path = out.with_suffix(".tmp")
        tmp_path.write_text(table(results, same, len(lists["after"]), sides, command, args))
        os.replace(tmp_path, out)


def table(results: dict, same: int, ranked: int, sides: dict, command: str, args: argparse.Namespace) -> str:
    import torch

    lines = [
        "## Hybrid batch top-K before and after (issue 12)",
        "",
        f"Command: `{command}`  ",
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}; K = {args.k}, batches of {args.batch_size}; "
        f"each row one fresh process, before and after alternating. CPU = user + system seconds of the "
        "process (all threads); wall on a shared machine.",
        "",
        "| code | round | users | wall s | users/s (wall) | CPU s | CPU ms/user | system CPU s | "
        "lists identical to the per-user path | max score diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for side, runs in results.items():
        for round_, r in enumerate(runs):
            lines.append(
                f"| {side} ({Path(sides[side]).name}) | {round_ + 1} | {r['users']:,} | {r['wall']:.1f} | "
                f"{r['users'] / r['wall']:,.0f} | {r['cpu']:.1f} | {1000 * r['cpu'] / r['users']:.2f} | "
                f"{r['sys']:.1f} | {r['identical']}/{r['checked']} | {r['max_diff']:.1e} |"
            )
    ratio_wall = np.median([r["wall"] for r in results["before"]]) / np.median([r["wall"] for r in results["after"]])
    ratio_cpu = np.median([r["cpu"] for r in results["before"]]) / np.median([r["cpu"] for r in results["after"]])
    lines += [
        "",
        f"Speed-up after / before (medians): {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x CPU. "
        f"Lists identical between before and after: {same:,}/{ranked:,} users.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
