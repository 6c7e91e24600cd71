"""The graph-filter source (``training.graphfilter.GraphFilter``): validation search, then test.

For each graph artifact (``python -m graphrec.build``):

1. for each normalisation exponent, one SVD of the largest rank is fitted on
   ``train``; every (rank, alpha, sharpen) of the grid reuses it
   (``GraphFilter.with_filter``) and is scored by NDCG@20 on the ``valid`` split
   (train masked), on at most ``--valid-users`` seeded users;
2. the winner is refitted on train+valid (fit seconds and peak RSS growth measured)
   and evaluated once on ``test`` (train+valid masked, docs/PROTOCOL.md, full ranking);
3. with ``--compare``, ALS and EASE with their validation-tuned configs
   (``bench/results/tune_cf.json``) are refitted and evaluated in the same run.

Published figures on LightGCN's Gowalla split are quoted beside the gowalla row.
Writes ``bench/results/graphfilter_<name>.md`` per graph (assembled into BENCHMARKS.md
by ``bench/merge_results.py``) and ``graphfilter_<name>.json`` (the whole search)::

    python -m graphrec.build --format lightgcn --out /tmp/g-gowalla \\
        --interactions ../shared/data/gowalla/train.txt --test ../shared/data/gowalla/test.txt
    python -m graphrec.build --format recbole --out /tmp/g-ml100k --interactions ../shared/data/ml-100k/ml-100k.inter
    python bench/graphfilter.py --graph ml-100k=/tmp/g-ml100k --graph gowalla=/tmp/g-gowalla --compare ml-100k
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from eval import evaluate, sparse_threshold  # noqa: E402
from kg.artifact import atomic_file, to_jsonable  # noqa: E402
from kg.graph import Graph
from kg.graph_io import load_graph  # noqa: E402
from training.als import ALS  # noqa: E402
from training.ease import EASE  # noqa: E402
from training.graphfilter import GraphFilter  # noqa: E402

K = 20
PUBLISHED = {  # Recall@20, NDCG@20 on LightGCN's Gowalla split, as published
    "LightGCN (He et al. 2020)": (0.1830, 0.1554),
    "EASE (as reported by GF-CF)": (0.1765, 0.1467),
    "GF-CF (Shen et al. 2021)": (0.1849, 0.1518),
    "BSPM (Choi et al. 2023)": (0.1920, 0.1597),
    "ChebyCF (SIGIR 2025)": (0.1941, 0.1616),
}
GRIDS = {
    # name -> exponents, ranks, alphas, sharpens; "small" for catalogues under 5k items
    "small": ((0.4, 0.5), (16, 32, 64), (1.0, 3.0, 10.0), (0.0, 0.2)),
    "large": ((0.5,), (128, 256), (0.1, 0.3, 0.6), (0.0, 0.2)),
}


def peak_rss(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(fn(), wall seconds, peak RSS growth in GiB)``; RSS sampled every 20 ms."""
    process = psutil.Process()
    base, peak, done = process.memory_info().rss, [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        thread.join()
    peak[0] = max(peak[0], process.memory_info().rss)
    return result, seconds, (peak[0] - base) / 2.0**30


def _metrics(result) -> dict[str, float]:
    return {
        "recall": float(result.metrics["recall"]), "ndcg": float(result.metrics["ndcg"]),
        "tail_recall": float(result.metrics["tail_recall"]), "coverage": float(result.metrics["coverage"]),
        "sparse_ndcg": float(result.sparse["ndcg"]),
    }  # fmt: skip


def search(graph: Graph, grid, valid_users: int, log) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """Grid search on valid; returns ``(best config, every tried row, validation users scored)``."""
    train, valid = graph.matrix("train"), graph.matrix("valid")
    users = np.flatnonzero(np.diff(valid.indptr) > 0)
    if valid_users and len(users) > valid_users:
        users = np.sort(np.random.default_rng(2026).choice(users, valid_users, replace=False))
    exponents, ranks, alphas, sharpens = grid
    history: list[dict[str, Any]] = []
    for exponent in exponents:
        base, seconds, _ = peak_rss(lambda: GraphFilter(rank=max(ranks), exponent=exponent).fit(graph, train))
        log(f"  exponent {exponent}: SVD of rank {max(ranks)} in {seconds:.1f} s")
        for rank, alpha, sharpen in itertools.product(ranks, alphas, sharpens):
            learner = base.with_filter(rank=rank, alpha=alpha, sharpen=sharpen)
            result = evaluate(learner.score, train=train, test=valid, item_ids=graph.item_ids, k=K, users=users)
            row = {"exponent": exponent, "rank": rank, "alpha": alpha, "sharpen": sharpen,
                   "valid_ndcg": float(result.metrics["ndcg"]), "valid_recall": float(result.metrics["recall"])}  # fmt: skip
            history.append(row)
            log(f"    {row}")
    best = max(history, key=lambda r: r["valid_ndcg"])
    return {k: best[k] for k in ("exponent", "rank", "alpha", "sharpen")}, history, len(users)


def test_row(graph: Graph, make: Callable[[], Any], matrix) -> dict[str, Any]:
    """Fit ``make()`` on ``matrix`` (train+valid), evaluate on test; fit seconds and peak GiB."""
    learner, seconds, gib = peak_rss(lambda: make().fit(graph, matrix))
    history = graph.matrix("train", "valid")
    result = evaluate(
        learner.score, train=history, test=graph.matrix("test"), item_ids=graph.item_ids, k=K,
        sparse_max_train=sparse_threshold(history, graph.matrix("test")),
    )  # fmt: skip
    return {**_metrics(result), "fit_seconds": seconds, "peak_gib": gib}


def run(name: str, path: str, args, log) -> dict[str, Any]:
    graph = load_graph(path)
    log(f"{name}: {graph.counts()}")
    grid = GRIDS["small" if graph.num_items < 5000 else "large"]
    best, history, scored = search(graph, grid, args.valid_users, log)
    log(f"  best on valid: {best}")
    rows = {"graph filter": {"config": best, **test_row(graph, lambda: GraphFilter(**best), graph.matrix("train", "valid"))}}
    if name in args.compare:
        tuned = json.loads((RESULTS / "tune_cf.json").read_text(encoding="utf-8"))["graphs"]
        key = next((k for k in (Path(path).name, "g-" + name.replace("-", "")) if k in tuned), None)
        if key is None:
            raise SystemExit(f"--compare {name}: bench/results/tune_cf.json has no entry for {path} (keys {sorted(tuned)})")
        tuned = tuned[key]
        for learner_name, cls in (("als", ALS), ("ease", EASE)):
            entry = tuned[learner_name]
            matrix = graph.matrix("train", "valid", weighted=entry["weighted"])
            rows[learner_name.upper()] = {"config": entry["config"], **test_row(graph, lambda: cls(**entry["config"]), matrix)}
    for label, row in rows.items():
        log(f"  {label}: {row}")
    return {"name": name, "graph": path, "counts": graph.counts(), "grid": grid, "best": best,
            "valid_users": scored, "history": history, "rows": rows}  # fmt: skip


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        f"## Graph filter on {results[0]['name']} (GF-CF linear + ideal low-pass, BSPM sharpening): validation search, test",
        "",
        "`training.graphfilter.GraphFilter`, training-free: `R~ = D_U^-e R D_I^-e`, score "
        "`s = r R~^T R~ + alpha r D_I^-e V V^T D_I^e` (V: top-`rank` right singular vectors of `R~`), "
        "then `s - sharpen * s R~^T R~` (with `R~^T R~` divided by its top eigenvalue). Hyper-parameters chosen by NDCG@20 on the validation split "
        "carved from train (never test); the winner is refitted on train+valid and evaluated once on test "
        "(train+valid masked, full ranking, K = 20). Fit seconds and peak RSS growth of the fit are measured "
        "in this run on a shared, loaded 2-core CPU machine.",
        "",
    ]
    for res in results:
        counts = res["counts"]
        exponents, ranks, alphas, sharpens = res["grid"]
        tried = len(res["history"])
        best = res["history"][max(range(tried), key=lambda i: res["history"][i]["valid_ndcg"])]
        lines += [
            f"### {res['name']} ({counts['users']} users, {counts['items']} items, "
            f"{counts['train']}/{counts['valid']}/{counts['test']} train/valid/test pairs)",
            "",
            f"Search: {tried} configs, exponent {list(exponents)} x rank {list(ranks)} x alpha {list(alphas)} x "
            f"sharpen {list(sharpens)}, validation NDCG@20 on "
            f"{res['valid_users']} users; best {res['best']} (valid NDCG@20 {best['valid_ndcg']:.4f}).",
            "",
            "| model | config | Recall@20 | NDCG@20 | TailRecall@20 | Coverage@20 | sparse NDCG@20 | fit s | peak GiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, row in res["rows"].items():
            config = ", ".join(f"{k}={v}" for k, v in row["config"].items())
            lines.append(
                f"| {label} | {config} | {row['recall']:.4f} | {row['ndcg']:.4f} | {row['tail_recall']:.4f} | "
                f"{row['coverage']:.3f} | {row['sparse_ndcg']:.4f} | {row['fit_seconds']:.1f} | {row['peak_gib']:.2f} |"
            )
        if res["name"] == "gowalla":
            for label, (recall, ndcg) in PUBLISHED.items():
                lines.append(f"| {label}, published | – | {recall:.4f} | {ndcg:.4f} | – | – | – | – | – |")
        lines.append("")
    lines += ["```", command, "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--valid-users", type=int, default=3000, help="validation users scored per config (0: all)")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME", help="also refit ALS and EASE")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "bench/graphfilter.py", *(argv if argv is not None else sys.argv[1:])])
    for spec in args.graph:
        name, _, path = spec.partition("=")
        result = run(name, path, args, lambda line: print(line, flush=True))
        text = markdown([result], command)
        print(text)
        out = RESULTS / f"graphfilter_{name}.md"
        with atomic_file(out) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
        with atomic_file(out.with_suffix(".json")) as tmp:
            Path(tmp).write_text(json.dumps(to_jsonable({"command": command, **result}), indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
