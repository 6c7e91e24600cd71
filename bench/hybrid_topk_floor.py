"""Where the hybrid's batch top-K spends its time: sources, candidates, features, scorer, top-k.

From a training work directory (``python -m graphrec.train ... --keep-work``; the ranker stage
need not have run): fits a small ranker on a sample of validation users with the fit-phase
sources (``--fit-users``, ``--epochs``: the weights do not change the cost, the ensemble size
and candidates do), prepares it on the final phase and times, on one torch thread, each step
of ``HybridRanker.topk`` for ``--users`` users in batches of ``--batch-size``. Then it runs the
Recommender's threaded batch path (``graphrec.serving.batch_topk.parallel_hybrid_topk``, one thread per
core) on the same users and checks ``--check`` users' lists against the per-user dense path.
Rows: one per ``--ensemble`` x ``--candidates`` setting.

    python bench/hybrid_topk_floor.py --graph /tmp/sg/gowalla --work M.work --users 2048 \\
        --ensemble 1 --ensemble 5 --candidates 50 --candidates 100

Prints a markdown table and writes it to bench/results/hybrid_topk_floor.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval import MostPop  # noqa: E402
from eval.ranking import iter_topk  # noqa: E402
from graphrec.serving.batch_topk import parallel_hybrid_topk  # noqa: E402
from kg.graph_io import load_graph  # noqa: E402
from training.pipeline.phase import load_source, scorer_of  # noqa: E402
from training.ranker import HybridRanker  # noqa: E402
from training.ranker.candidates import generate_candidates, segment_topk  # noqa: E402
from training.ranker.context import RankerContext  # noqa: E402
from training.ranker.features import build_features  # noqa: E402


def sources_of(work: Path, phase: str, graph, history) -> dict:
    folders = sorted((work / phase).iterdir())
    loaded = {d.name: load_source(d, device="cpu") for d in folders if (d / "config.json").is_file()}
    scorers = {name: scorer_of(source) for name, source in loaded.items()}
    scorers["pop"] = MostPop().fit(history, item_ids=graph.item_ids)
    return scorers


def breakdown(ranker: HybridRanker, users: np.ndarray, k: int, batch_size: int) -> dict[str, float]:
    """Seconds per step of ``ranker.topk`` (same code, timed step by step), one thread."""
    seconds: dict[str, float] = defaultdict(float)
    context = ranker.context_
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        rows_in = {}
        for name in ranker.source_names_:
            t0 = time.perf_counter()
            rows_in[name] = torch.as_tensor(context.source_scorers[name](batch)).to("cpu", torch.float32)
            seconds[f"source {name}"] += time.perf_counter() - t0
        history = context.history[batch]
        t0 = time.perf_counter()
        candidates = generate_candidates(rows_in, history, ranker.candidates_per_source)
        seconds["candidates"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        times = context.history_times[batch] if context.history_times is not None else None
        features = build_features(
            candidates.rows, candidates.items, source_scores=rows_in, ranks={}, history=history,
            history_times=times, stats=context.stats, now=context.stats.now, source_names=ranker.source_names_,
            groups=ranker.feature_groups,
        )  # fmt: skip
        seconds["features"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        values = ranker.score_features(features)
        seconds["scorer"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        segment_topk(candidates.rows, values, candidates.offsets, k)
        seconds["top-k"] += time.perf_counter() - t0
    return dict(seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--graph", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--label", default=None)
    p.add_argument("--users", type=int, default=2048)
    p.add_argument("--fit-users", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--ensemble", type=int, action="append")
    p.add_argument("--candidates", type=int, action="append")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--check", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    cores = torch.get_num_threads()
    torch.set_num_threads(1)
    graph = load_graph(args.graph)
    work = Path(args.work)
    fit_history, final_history = graph.matrix("train"), graph.matrix("train", "valid")
    timed = graph.has_timestamps
    fit_scorers = sources_of(work, "fit", graph, fit_history)
    final_scorers = sources_of(work, "final", graph, final_history)
    valid = graph.matrix("valid")
    rng = np.random.default_rng(args.seed)
    with_valid = np.flatnonzero(np.diff(valid.indptr) > 0)
    fit_users = np.sort(rng.choice(with_valid, min(args.fit_users, len(with_valid)), replace=False))
    users = np.sort(rng.choice(graph.num_users, min(args.users, graph.num_users), replace=False)).astype(np.int64)
    rows = []
    for candidates in args.candidates or [100]:
        for ensemble in args.ensemble or [5]:
            ranker = HybridRanker(candidates_per_source=candidates, ensemble=ensemble, epochs=args.epochs, seed=2026)
            fit_context = RankerContext.build(
                graph, fit_history, history_times=graph.timestamp_matrix("train") if timed else None,
                source_scorers=fit_scorers,
            )  # fmt: skip
            ranker.fit(fit_context, fit_users, valid)
            ranker.bind(RankerContext.build(
                graph, final_history, history_times=graph.timestamp_matrix("train", "valid") if timed else None,
                source_scorers=final_scorers,
            ))  # fmt: skip
            steps = breakdown(ranker, users, args.k, args.batch_size)
            one_thread = sum(steps.values())
            torch.set_num_threads(cores)
            start = time.perf_counter()
            parts = list(parallel_hybrid_topk(ranker, users, args.k, args.batch_size, False))
            threaded = time.perf_counter() - start
            torch.set_num_threads(1)
            got = np.concatenate([part[1] for part in parts])
            check = np.sort(rng.choice(len(users), min(args.check, len(users)), replace=False))
            same = 0
            for position in check:
                batch = users[position : position + 1]
                _, expected, _ = next(iter_topk(ranker.score, batch, args.k, exclude=final_history))
                same += int((expected[0] == got[position]).all())
            row = {
                "candidates": candidates, "ensemble": ensemble, "users": len(users),
                "steps": {name: len(users) / s for name, s in steps.items()},
                "one_thread": len(users) / one_thread, "threaded": len(users) / threaded,
                "identical": f"{same}/{len(check)}", "sources": ", ".join(ranker.source_names_),
            }  # fmt: skip
            rows.append(row)
            print(row, flush=True)
    command = "python bench/hybrid_topk_floor.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    step_names = list(rows[0]["steps"])
    lines = [
        f"## Hybrid batch top-K, where the time goes ({args.label or 'graph'}: {graph.num_users:,} users x "
        f"{graph.num_items:,} items)",
        "",
        f"Command: `{command}`  ",
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}; K = {args.k}, batches of {args.batch_size}; "
        f"sources: {rows[0]['sources']}. Each step column is users/s of that step alone on one thread "
        "(the floor it sets); 'all steps' is their harmonic sum on one thread; 'threaded' is the "
        f"Recommender's batch path on {cores} threads. Wall times on a shared machine.",
        "",
        "| candidates/source | ensemble | " + " | ".join(step_names) + " | all steps, 1 thread | threaded | "
        "identical lists |",
        "|---:|---:|" + "---:|" * len(step_names) + "---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['candidates']} | {r['ensemble']} | "
            + " | ".join(f"{r['steps'][n]:,.0f}" for n in step_names)
            + f" | {r['one_thread']:,.0f} | {r['threaded']:,.0f} | {r['identical']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        out = ROOT / "bench" / "results" / "hybrid_topk_floor.md"
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, out)


if __name__ == "__main__":
    main()
