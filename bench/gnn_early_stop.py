"""How early may the GNN stop? Its validation curves, replayed under early-stopping rules.

Early stopping only decides where a run ends; it does not change the epochs before.
So one long run per graph (the pipeline's gnn stage, fit phase only, the automatic
schedule but with a patience that does not stop it) gives the whole validation curve
(NDCG@20 on the sampled validation users, every ``eval_every`` epochs), and each rule
is replayed on it: where it stops, which epoch's weights it keeps, and how much of the
curve's best validation NDCG@20 those reach. The rule compared is the trainer's:
patience ``p`` validations, and a validation resets the count only when it beats the
score at the last reset by more than ``min_gain`` relative (the best weights are
always kept). Only validation data are read; test data never reach this choice.

    python bench/gnn_early_stop.py --graph /tmp/s25/scale/graphs/{ml-100k,gowalla,synth-1m} --write
    python bench/gnn_early_stop.py --replay   # the table again from bench/results/gnn_early_stop.jsonl

Curves go to bench/results/gnn_early_stop.jsonl (one line per graph and commit);
``--write`` replaces the ``gnn_early_stop`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import code_commit  # noqa: E402

CURVES = ROOT / "bench" / "results" / "gnn_early_stop.jsonl"


def replay(curve: list[tuple[int, float]], *, patience: int, min_gain: float) -> dict:
    """Where the trainer's rule (``TrainProgress.observe``) stops on ``curve`` ((epoch, validation NDCG@20) in order)."""
    from training.gnn.checkpoint import TrainProgress

    progress, stop = TrainProgress(), curve[-1][0]
    for epoch, score in curve:
        progress.observe(epoch, score, patience=patience, min_gain=min_gain)
        if progress.stopped:
            stop = epoch
            break
    return {"stop": stop, "best_epoch": progress.best_epoch, "best": progress.best_score}


def run_curve(graph_dir: str, patience: int) -> dict:
    """The gnn stage's fit phase on ``graph_dir`` with a patience that lets it run to the epoch cap."""
    from kg import load_graph
    from training.pipeline.config import TrainConfig
    from training.pipeline.runner import Pipeline

    graph = load_graph(graph_dir)
    overrides = ["gnn.init=random", f"gnn.patience={patience}", "gnn.min_gain=0", "ranker.refit=false"]
    config = TrainConfig(device="cpu").with_overrides(overrides)
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        result = Pipeline(graph, config, work, graph_fingerprint="x", stages=("gnn",), log=lambda line: None).run()
        seconds = time.perf_counter() - started
    curve = result.training_curves["gnn"]
    commit, dirty = code_commit(ROOT)
    return {
        "graph": Path(graph_dir).name, "commit": commit + ("+dirty" if dirty else ""), "overrides": overrides,
        "schedule": result.notes.get("gnn_schedule"), "seconds": round(seconds, 1),
        "curve": [[int(e), float(s)] for e, s in zip(curve["epoch"], curve["valid_ndcg"])],
    }  # fmt: skip


def table(rows: list[dict], patience: int, gains: list[float]) -> str:
    lines = [
        "| graph | commit | min_gain | stops at epoch | keeps epoch | best valid NDCG@20 kept | of the curve's best "
        "| epochs vs min_gain 0 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        curve = [tuple(point) for point in row["curve"]]
        peak = max(score for _, score in curve)
        base = replay(curve, patience=patience, min_gain=0.0)
        for gain in gains:
            r = replay(curve, patience=patience, min_gain=gain)
            lines.append(
                f"| {row['graph']} | {row['commit']} | {gain:g} | {r['stop']} | {r['best_epoch']} | {r['best']:.4f} "
                f"| {r['best'] / peak:.2%} | {r['stop'] / base['stop']:.2f} |"
            )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", nargs="*", default=[], help="graph artifact directories to run curves on")
    p.add_argument("--replay", action="store_true", help="only replay the saved curves")
    p.add_argument("--long-patience", type=int, default=60, help="patience of the curve runs (validations)")
    p.add_argument("--patience", type=int, default=4, help="patience of the replayed rules (the auto value)")
    p.add_argument("--min-gain", type=float, nargs="+", default=[0.0, 0.001, 0.002, 0.005, 0.01])
    p.add_argument("--write", action="store_true", help="write the gnn_early_stop section of BENCHMARKS.md")
    args = p.parse_args()
    for graph in args.graph if not args.replay else []:
        row = run_curve(graph, args.long_patience)
        with open(CURVES, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{row['graph']}: {len(row['curve'])} validations in {row['seconds']} s", flush=True)
    rows = [json.loads(line) for line in CURVES.read_text(encoding="utf-8").splitlines() if line.strip()]
    latest = {row["graph"]: row for row in rows}  # the newest curve per graph
    text = "\n".join([
        "<!-- gnn_early_stop:begin -->",
        "## When the GNN stops: validation curves under early-stopping rules",
        "",
        "Curves: `python bench/gnn_early_stop.py --graph G...` on the graphs `bench/scale.py` builds (the gnn "
        f"stage's fit phase, automatic schedule, GNN init random, patience {args.long_patience} so it runs to the "
        f"cap); this table: `python bench/gnn_early_stop.py {' '.join(sys.argv[1:])}` (patience {args.patience}). "
        "A validation resets the patience count only when it beats the score at the "
        "last reset by more than `min_gain` (relative); the best epoch's weights are kept either way. Validation "
        "data only (3,000 sampled validation users).",
        "",
        table(list(latest.values()), args.patience, args.min_gain),
        "",
        "<!-- gnn_early_stop:end -->",
        "",
    ])  # fmt: skip
    print(text)
    if args.write:
        from merge_results import write_marked_section

        write_marked_section("gnn_early_stop", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
