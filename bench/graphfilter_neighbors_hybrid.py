"""The hybrid with an exact graph filter against one with its sparse operator: test accuracy and serving speed.

Companion of bench/graphfilter_neighbors.py (the filter alone, on validation). Takes pairs of
``python -m graphrec.train`` artifacts of the same graph and seed, one trained at the defaults
(exact filter) and one with ``--set graphfilter.neighbors=M``, and reports for each pair the
test metrics the artifacts' manifests hold (hybrid and graph filter), the ranker's
inner-validation NDCG (the figure that chooses between them: test never does), and with
``--time`` the wall time of ``python -m graphrec.recommend`` for all users of each model, one
fresh process each, exact and sparse alternating.

    python bench/graphfilter_neighbors_hybrid.py --pair 2027 EXACT SPARSE [--pair ...] --time

Prints a markdown table and writes it to bench/results/graphfilter_neighbors_hybrid.md and the
``graphfilter_neighbors_hybrid`` section of BENCHMARKS.md (``--no-write``: print only).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.merge_results import write_marked_section  # noqa: E402


def figures(model: Path) -> dict:
    manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
    test = manifest["metrics"]["test"]
    ranker = json.loads((model / "ranker" / "config.json").read_text(encoding="utf-8"))
    config = json.loads((model / "sources" / "graphfilter" / "config.json").read_text(encoding="utf-8"))["config"]
    return {
        "ndcg": test["hybrid"]["ndcg"], "recall": test["hybrid"]["recall"], "tail": test["hybrid"]["tail_recall"],
        "gf_ndcg": test["graphfilter"]["ndcg"], "inner": ranker["scalars"]["diagnostics"]["best_valid_ndcg"],
        "neighbors": config.get("neighbors", 0), "users": int(test["hybrid"]["n_users"]),
    }  # fmt: skip


def recommend_seconds(model: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "graphrec.recommend", "--model", str(model), "--out", f"{tmp}/r.parquet",
                   "--quiet"]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pair", nargs=3, action="append", required=True, metavar=("SEED", "EXACT", "SPARSE"))
    p.add_argument("--time", action="store_true", help="time graphrec.recommend (all users) on every model")
    p.add_argument("--users", type=int, default=None, help="users of the models (for users/s; default: manifest)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    rows = []
    for seed, exact, sparse in args.pair:
        pair = {"seed": seed}
        for side, model in (("exact", Path(exact)), ("sparse", Path(sparse))):
            pair[side] = figures(model)
            pair["users"] = args.users or pair[side]["users"]
        if args.time:
            for side, model in (("exact", exact), ("sparse", sparse)):
                pair[side]["seconds"] = recommend_seconds(Path(model))
                print(seed, side, f"{pair[side]['seconds']:.1f} s", flush=True)
        rows.append(pair)
        print(pair, flush=True)

    m = rows[0]["sparse"]["neighbors"]
    lines = [
        "<!-- graphfilter_neighbors_hybrid:begin -->",
        f"### The hybrid with the exact filter and with `graphfilter.neighbors={m}` (test split, K = 20)",
        "",
        f"Command: `python bench/graphfilter_neighbors_hybrid.py {shlex.join(sys.argv[1:])}`  ",
        "Pairs of artifacts per seed: the defaults (exact) and the same training with the operator. Inner valid = "
        "the ranker's validation NDCG@20 on its held-out validation users (the figure a default is chosen on); "
        "recommend = wall seconds of `python -m graphrec.recommend` for every user, a fresh process each, "
        "2 CPU cores.",
        "",
        "| seed | filter | hybrid NDCG@20 | hybrid Recall@20 | hybrid TailRecall@20 | graph filter NDCG@20 "
        "| ranker inner valid | recommend s | users/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for pair in rows:
        for side in ("exact", "sparse"):
            r = pair[side]
            seconds = r.get("seconds")
            rate = "-" if seconds is None else f"{pair['users'] / seconds:,.0f}"
            label = "exact" if side == "exact" else f"neighbors {r['neighbors']}"
            lines.append(
                f"| {pair['seed']} | {label} | {r['ndcg']:.4f} | {r['recall']:.4f} | {r['tail']:.4f} | "
                f"{r['gf_ndcg']:.4f} | {r['inner']:.4f} | {'-' if seconds is None else f'{seconds:.1f}'} | "
                f"{rate} |"
            )
    for key, name in (("ndcg", "hybrid NDCG@20"), ("recall", "hybrid Recall@20"), ("inner", "ranker inner valid")):
        values = {side: [pair[side][key] for pair in rows] for side in ("exact", "sparse")}
        if len(rows) > 1:
            lines.append("")
            lines.append(
                f"{name}: exact {statistics.mean(values['exact']):.4f} +- {statistics.stdev(values['exact']):.4f}, "
                f"neighbors {m} {statistics.mean(values['sparse']):.4f} +- {statistics.stdev(values['sparse']):.4f} "
                f"({len(rows)} seeds)."
            )
    lines.append("<!-- graphfilter_neighbors_hybrid:end -->")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_marked_section("graphfilter_neighbors_hybrid", text)


if __name__ == "__main__":
    main()
