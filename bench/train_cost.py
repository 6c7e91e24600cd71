"""Training cost on ml-100k: per-stage wall seconds of a default run, and the GNN schedule on validation.

Three commands; ``report`` writes ``bench/results/train_cost.md`` and its section of
BENCHMARKS.md (between ``<!-- train_cost:begin/end -->``)::

    # one LightGCN fit per schedule, validation NDCG@20 only (test is never read); appends a JSON line
    python bench/train_cost.py gnn --graph /tmp/g-ml100k --item-features items.npy \\
        --settings "batch_size=2048,num_negatives=4,eval_every=5,patience=3,epochs=200,lr=0.005" --runs runs.jsonl
    # EASE's dense solve, float64 vs float32
    python bench/train_cost.py ease --items 3000 --runs ease.jsonl
    # the section: stage timings and notes of a model trained with defaults, plus both run files
    python bench/train_cost.py report --model /tmp/m --command "python -m graphrec.train ..." --runs runs.jsonl \\
        --ease-runs ease.jsonl

``--item-features``: ``[num_items, d]`` ``.npy`` text vectors for ``init="text"``
(default: embed the graph's item texts with the packaged encoder, no fine-tuning).
CPU s is the process's CPU time with one torch thread: on a loaded shared machine it
is the figure that compares (wall time there mostly counts waits for a core).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.merge_results import write_marked_section  # noqa: E402

RESULT = ROOT / "bench" / "results" / "train_cost.md"


def _settings(text: str) -> dict:
    import yaml

    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, value = part.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def gnn_run(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from kg import load_graph
    from training.gnn import LightGCN

    torch.set_num_threads(1)
    graph = load_graph(args.graph)
    if args.item_features:
        features = np.load(args.item_features)
    else:
        from training.text import TextEncoder, item_texts

        features = TextEncoder(None).embed(item_texts(graph))
    settings = _settings(args.settings)
    learner = LightGCN(**settings, seed=args.seed, device="cpu")
    cpu, wall = time.process_time(), time.perf_counter()
    learner.fit(graph, graph.matrix("train"), valid_items=graph.matrix("valid"), item_features=features)
    history = [h for h in learner.history_ if "ndcg" in h]
    row = {
        "settings": args.settings or "defaults (auto)",
        "schedule": learner.schedule_.describe(),
        "epochs": learner.history_[-1]["epoch"],
        "best_epoch": learner.best_epoch_,
        "best_valid_ndcg": max(h["ndcg"] for h in history),
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "steps": learner.history_[-1]["epoch"] * learner.schedule_.steps_per_epoch,
        "command": "python bench/train_cost.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(row))
    with open(args.runs, "a") as handle:
        handle.write(json.dumps(row) + "\n")


def ease_run(args: argparse.Namespace) -> None:
    """EASE fit seconds at ``--items`` items in float64 and float32 (random sparse log, 2 torch threads)."""
    import numpy as np
    import scipy.sparse as sp
    import torch

    from kg.graph import Graph  # noqa: F401  (the bare-matrix path builds one)
    from training.sources import ease

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    users, items = args.items * 2, args.items
    matrix = sp.random(users, items, density=min(1.0, 50 / items), format="csr", random_state=rng, dtype=np.float32)
    matrix.data[:] = 1.0
    row = {"items": items, "threads": args.threads, "command": "python bench/train_cost.py " + " ".join(sys.argv[1:])}
    for name, limit in (("float64", items), ("float32", 0)):
        ease.FLOAT64_MAX_ITEMS = limit
        cpu, wall = time.process_time(), time.perf_counter()
        ease.EASE(regularization=500.0, max_items=items).fit(matrix)
        row[f"{name}_cpu_s"], row[f"{name}_wall_s"] = time.process_time() - cpu, time.perf_counter() - wall
    print(json.dumps(row))
    with open(args.runs, "a") as handle:
        handle.write(json.dumps(row) + "\n")


def report(args: argparse.Namespace) -> None:
    path = Path(args.model) / "manifest.json"
    source = "the model manifest"
    if not path.is_file():  # a run still going (or stopped): the stages its work directory has finished
        path = Path(str(args.model) + ".work") / "state.json"
        source = f"the work directory of a run not finished when this was written ({path.name})"
    manifest = json.loads(path.read_text())
    timings, notes = manifest.get("timings", {}), manifest.get("notes", {})
    lines = [
        "## Training cost on ml-100k (H4)",
        "",
        f"Command: `{args.command}`  ",
        f"Per-stage wall seconds from {source} (2 shared CPU cores, load average ~20 from other jobs: "
        "pessimistic; compare CPU s).",
        "",
        "| " + " | ".join([*timings, "total"]) + " |",
        "|" + "---:|" * (len(timings) + 1),
        "| " + " | ".join([*(f"{v:.1f}" for v in timings.values()), f"{sum(timings.values()):.1f}"]) + " |",
        "",
        "Before (same data, the old defaults): text 276, als 3, neighbors 6, gnn 893, ranker 67, evaluate 520 wall s "
        "(section 'Hybrid ranker vs its sources'); the issue measured text 936 and gnn 3,364 s on a loaded machine.",
        "",
    ]
    test = manifest.get("metrics", {}).get("test", {}).get("hybrid", {}).get("metrics", {})
    if test:
        lines.append(
            f"Hybrid test NDCG@20 {test.get('ndcg', float('nan')):.4f}, "
            f"TailRecall@20 {test.get('tail_recall', float('nan')):.4f}."
        )
    for key in ("gnn_schedule", "gnn_best_epoch", "entity_text", "text", "ease"):
        if key in notes:
            lines.append(f"- {key}: `{json.dumps(notes[key])}`")
    lines.append("")
    if args.runs and Path(args.runs).is_file():
        rows = [json.loads(line) for line in Path(args.runs).read_text().splitlines() if line.strip()]
        lines += [
            "GNN schedule on validation (LightGCN, text init from the base encoder, one torch thread; "
            "test never read):",
            "",
            "| settings | schedule | epochs run | best epoch | best valid NDCG@20 | steps | CPU s | wall s |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| `{r['settings']}` | {r['schedule']} | {r['epochs']} | {r['best_epoch']} | "
                f"{r['best_valid_ndcg']:.4f} | {r['steps']} | {r['cpu_s']:.0f} | {r['wall_s']:.0f} |"
            )
        lines += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in rows] + [""]
    if args.ease_runs and Path(args.ease_runs).is_file():
        rows = [json.loads(line) for line in Path(args.ease_runs).read_text().splitlines() if line.strip()]
        lines += [
            "EASE solve (Cholesky + inverse) on a random log, float64 vs float32:",
            "",
            "| items | torch threads | float64 CPU s | float64 wall s | float32 CPU s | float32 wall s |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['items']:,} | {r['threads']} | {r['float64_cpu_s']:.1f} | {r['float64_wall_s']:.1f} | "
                f"{r['float32_cpu_s']:.1f} | {r['float32_wall_s']:.1f} |"
            )
        lines += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in rows] + [""]
    text = "\n".join(["<!-- train_cost:begin -->", *lines, "<!-- train_cost:end -->", ""])
    print(text)
    write_marked_section("train_cost", text, result=RESULT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command_name", required=True)
    g = sub.add_parser("gnn", help="one LightGCN fit, validation only")
    g.add_argument("--graph", required=True)
    g.add_argument("--item-features")
    g.add_argument("--settings", default="", help="LightGCN keyword arguments, k=v,k=v (default: the auto schedule)")
    g.add_argument("--seed", type=int, default=2026)
    g.add_argument("--runs", required=True, help="JSON-lines file the run is appended to")
    e = sub.add_parser("ease", help="EASE fit time, float64 vs float32")
    e.add_argument("--items", type=int, default=6000)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--runs", required=True)
    r = sub.add_parser("report", help="write bench/results/train_cost.md")
    r.add_argument("--model", required=True)
    r.add_argument("--command", required=True, help="the graphrec.train command that produced --model")
    r.add_argument("--runs")
    r.add_argument("--ease-runs")
    args = parser.parse_args()
    {"gnn": gnn_run, "ease": ease_run, "report": report}[args.command_name](args)


if __name__ == "__main__":
    main()
