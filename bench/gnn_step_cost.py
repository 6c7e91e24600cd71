"""What one full-graph LightGCN training step costs, part by part, at the pipeline's defaults.

For each graph, each checkout (``--code``, e.g. a ``git worktree`` of an older commit) and
each ``THP_MEM_ALLOC_ENABLE`` value it starts one process (so the setting reaches torch's
allocator before its first allocation) that builds the propagation graph the GNN stage
builds (timed: ``setup s``), then runs BPR steps of the automatic schedule
(batch = train pairs / 8, one negative, GNN init random; after a warm-up step, for at
least ``--seconds`` and ``--steps`` steps) and times each part: negative
sampling, forward propagation, loss, backward, Adam. Rows of one graph run back to back
in one invocation, so their ratios compare like with like on a shared machine.

    git worktree add /work/wt/base 10049cb
    python bench/gnn_step_cost.py --graph /tmp/s25/scale/graphs/synth-1m /tmp/s25/scale/graphs/synth-10m \\
        --code /work/wt/base . --thp 0 1 --write

``--write`` replaces the ``gnn_step_cost`` section of BENCHMARKS.md (and bench/results/gnn_step_cost.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from common import code_commit  # noqa: E402

PARTS = ("negatives", "forward", "loss", "backward", "adam")


def child(graph_dir: str, min_steps: int, seconds: float, threads: int) -> dict:
    """Time setup, then steps for ``seconds`` (at least ``min_steps``, >= 1) in this process.

    The code on ``sys.path`` is the checkout measured.
    """
    import torch

    from kg import load_graph
    from training.base import as_user_items
    from training.gnn.adjacency import build_edges, compact_entities
    from training.gnn.bpr import NegativeSampler, positive_pairs
    from training.pipeline.config import TrainConfig
    from training.pipeline.learners import make_gnn

    torch.set_num_threads(threads)
    graph = load_graph(graph_dir)
    learner = make_gnn(TrainConfig(device="cpu").with_overrides(["gnn.init=random"]), text_on=False)
    user_items = as_user_items(graph.matrix("train"), num_items=graph.num_items, num_users=graph.num_users)
    schedule = learner.schedule(user_items.nnz)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    edges, _ = compact_entities(build_edges(graph, user_items, use_kg=learner.use_kg, use_social=learner.use_social))
    model, view, step = learner._trainable(
        edges, user_items, None, None, schedule=schedule, device=torch.device("cpu"), generator=generator,
        warm_start=None,
    )  # fmt: skip
    setup = time.perf_counter() - started
    users, items = positive_pairs(user_items)
    sampler = NegativeSampler(user_items, schedule.num_negatives)
    optimizer = torch.optim.Adam(list(model.parameters()), lr=learner.lr, fused=True)
    order = torch.randperm(len(users), generator=generator)
    times = dict.fromkeys(PARTS, 0.0)
    timed, started, batches, min_steps = 0, None, max(1, len(users) // schedule.batch_size), max(1, min_steps)
    while timed < min_steps or time.perf_counter() - started < seconds:  # the first step warms up, not counted
        index = (timed + (started is not None)) % batches
        batch = order[index * schedule.batch_size : (index + 1) * schedule.batch_size]
        batch_users, batch_items = users[batch], items[batch]
        marks = [time.perf_counter()]
        negatives = sampler.sample(batch_users, generator)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        final = model.encoder(model.embedding(None), view)
        marks.append(time.perf_counter())
        loss = step._loss(final, step._batch_nodes(batch_users, batch_items, negatives), batch_users, batch_items, negatives)
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        if started is None:
            started = time.perf_counter()
            continue
        timed += 1
        for part, begin, end in zip(PARTS, marks, marks[1:]):
            times[part] += end - begin
    times = {part: value / timed for part, value in times.items()}
    return {
        "nodes": edges.layout.num_nodes, "entries": int(view.adjacency.values().numel()), "pairs": user_items.nnz,
        "batch": schedule.batch_size, "setup_s": setup, **{f"{p}_s": t for p, t in times.items()},
        "step_s": sum(times.values()), "steps": timed,
    }  # fmt: skip


def run_one(graph: str, code: Path, thp: str, steps: int, seconds: float, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "THP_MEM_ALLOC_ENABLE": thp, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", graph, "--steps", str(steps), "--seconds", str(seconds),
           "--threads", str(threads)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} (PYTHONPATH={code}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def commit_of(code: Path) -> str:
    commit, dirty = code_commit(code)
    return commit + ("+dirty" if dirty else "")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", nargs="+", default=[], help="graph artifact directories (python -m graphrec.build)")
    p.add_argument("--code", nargs="+", type=Path, default=[ROOT], help="checkouts to compare (default: this one)")
    p.add_argument("--thp", nargs="+", default=["0", "1"], choices=["0", "1"], help="THP_MEM_ALLOC_ENABLE values")
    p.add_argument("--steps", type=int, default=3, help="at least this many timed steps per row (after a warm-up step)")
    p.add_argument("--seconds", type=float, default=10.0, help="and timed steps for at least this long")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--write", action="store_true", help="write the gnn_step_cost section of BENCHMARKS.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.seconds, args.threads)))
        return 0
    if not args.graph:
        p.error("--graph is required")
    command = "python bench/gnn_step_cost.py " + " ".join(sys.argv[1:])
    lines = [
        "<!-- gnn_step_cost:begin -->",
        "## A full-graph LightGCN step, part by part",
        "",
        f"Command: `{command}` ({args.threads} threads; per row a warm-up step, then at least {args.steps} timed "
        f"steps and {args.seconds:g} s; "
        "2-core machine shared with other jobs: compare rows of one graph). `setup s`: the propagation graph "
        "and model the GNN stage builds before its first epoch (once per phase). Seconds per step; an epoch "
        "of the automatic schedule is 8 steps.",
        "",
        "| graph | nodes | stored entries | batch | code | THP | setup s | negatives | forward | loss | backward "
        "| Adam | step s | step vs first row |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for graph in args.graph:
        first = None
        for code in args.code:
            for thp in args.thp:
                row = run_one(graph, code.resolve(), thp, args.steps, args.seconds, args.threads)
                first = first or row["step_s"]
                cells = [
                    Path(graph).name, f"{row['nodes']:,}", f"{row['entries']:,}", f"{row['batch']:,}",
                    commit_of(code.resolve()), "on" if thp == "1" else "off", f"{row['setup_s']:.1f}",
                    *(f"{row[f'{p}_s']:.3f}" for p in PARTS), f"{row['step_s']:.3f}",
                    f"{first / row['step_s']:.2f}x faster" if row["step_s"] < first else f"{row['step_s'] / first:.2f}x",
                ]  # fmt: skip
                lines.append("| " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    lines += ["", "<!-- gnn_step_cost:end -->", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        from merge_results import write_marked_section

        write_marked_section("gnn_step_cost", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
