"""The graph-filter source (``training.sources.graphfilter.GraphFilter``): validation search, then test.

For each graph artifact (``python -m graphrec.build``):

1. for each normalisation exponent, one SVD of the largest rank is fitted on
   ``train``; every setting of the grid (GF-CF, Euler/BSPM sharpening, ChebyCF's
   Chebyshev filter; see ``_grid``) reuses it, its scores built from powers of ``P~``
   shared by all settings (``GraphFilter.score_settings``), and is scored by NDCG@20
   on the ``valid`` split (train masked), on at most ``--valid-users`` seeded users;
2. the winner is refitted on train+valid (fit seconds and peak RSS growth measured)
   and evaluated once on ``test`` (train+valid masked, docs/PROTOCOL.md, full ranking;
   the top-K seconds of that evaluation are reported);
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
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.common import PeakRSS  # noqa: E402
from eval import evaluate, sparse_threshold  # noqa: E402
from eval.ranking import TopK, topk  # noqa: E402
from kg.artifact import atomic_file, to_jsonable  # noqa: E402
from kg.graph import Graph
from kg.graph_io import load_graph  # noqa: E402
from training.sources.als import ALS  # noqa: E402
from training.sources.ease import EASE  # noqa: E402
from training.sources.graphfilter import GraphFilter  # noqa: E402

K = 20
PUBLISHED = {  # Recall@20, NDCG@20 on LightGCN's Gowalla split, as published
    "LightGCN (He et al. 2020)": (0.1830, 0.1554),
    "EASE (as reported by GF-CF)": (0.1765, 0.1467),
    "GF-CF (Shen et al. 2021)": (0.1849, 0.1518),
    "BSPM (Choi et al. 2023)": (0.1920, 0.1597),
    "ChebyCF (SIGIR 2025)": (0.1941, 0.1616),
}


def _grid(size: str) -> list[dict[str, Any]]:
    """Filter settings searched per exponent (the SVD is fitted once at the largest rank).

    ``large`` (>= 5k items) covers GF-CF (linear + ideal), BSPM (linear + ideal, then a
    Taylor step of ``exp(-t P~)``: ``sharpen`` = ``t``, ``sharpen_order`` 1/2/4) and
    ChebyCF (Chebyshev plateau response, degree pre/post normalisation, unsharpened ideal).
    """
    ranks, alphas = ((16, 32, 64), (0.3, 1.0, 3.0, 10.0)) if size == "small" else ((256, 512), (0.1, 0.2, 0.3))
    sharpening = [(0.0, 1), (0.2, 1), (0.5, 1), (1.0, 2), (1.5, 2), (1.5, 4), (2.0, 4), (2.5, 4), (3.0, 4)]
    grid = [
        {"kind": "linear", "rank": rank, "alpha": alpha, "sharpen": sharpen, "sharpen_order": order}
        for rank, alpha in itertools.product(ranks, alphas)
        for sharpen, order in sharpening
    ]
    grid += [
        {"kind": "chebyshev", "rank": rank, "alpha": alpha, "sharpen": 0.0, "order": order, "flatness": flatness,
         "degree_power": power, "ideal_exponent": power or 0.5}
        for rank, alpha in itertools.product(ranks, alphas)
        for order, flatness in [(8, 1.0), (8, 1.5), (8, 2.0), (8, 3.0), (4, 1.5), (4, 2.0)]
        for power in (0.0, 0.2, 0.4)
    ]  # fmt: skip
    return grid


GRIDS = {"small": {"exponents": (0.4, 0.5), "settings": _grid("small")},
         "large": {"exponents": (0.5,), "settings": _grid("large")}}  # fmt: skip


def peak_rss(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(fn(), wall seconds, peak RSS growth in GiB)``; RSS sampled every 20 ms."""
    with PeakRSS() as rss:
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
    return result, seconds, rss.increase / 2.0**30


def _metrics(result) -> dict[str, float]:
    return {
        "recall": float(result.metrics["recall"]), "ndcg": float(result.metrics["ndcg"]),
        "tail_recall": float(result.metrics["tail_recall"]), "coverage": float(result.metrics["coverage"]),
        "sparse_ndcg": float(result.sparse["ndcg"]),
    }  # fmt: skip


def search(graph: Graph, grid, valid_users: int, log, batch: int = 200) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """Search ``grid`` on valid; returns ``(best config, every tried row, validation users scored)``.

    Per exponent one SVD of the largest rank is fitted on train; for each batch of
    validation users every setting's scores come from :meth:`GraphFilter.score_settings`
    (the powers of ``P~`` shared by all settings) and only the top-K lists are kept
    (train masked, :func:`eval.ranking.topk`); each setting is then evaluated from its
    lists by :func:`eval.evaluate`.
    """
    train, valid = graph.matrix("train"), graph.matrix("valid")
    users = np.flatnonzero(np.diff(valid.indptr) > 0)
    if valid_users and len(users) > valid_users:
        users = np.sort(np.random.default_rng(2026).choice(users, valid_users, replace=False))
    settings = grid["settings"]
    history: list[dict[str, Any]] = []
    for exponent in grid["exponents"]:
        top_rank = max(s["rank"] for s in settings)
        base, seconds, _ = peak_rss(lambda: GraphFilter(rank=top_rank, exponent=exponent, neighbors=0).fit(graph, train))
        log(f"  exponent {exponent}: SVD of rank {top_rank} in {seconds:.1f} s; {len(settings)} settings")
        lists = [[] for _ in settings]
        start = time.perf_counter()
        for begin in range(0, len(users), batch):
            chunk = users[begin : begin + batch]
            for i, scores in enumerate(base.score_settings(train[chunk], settings)):
                items, _ = topk(lambda _users, s=scores: s, chunk, K, exclude=train)
                lists[i].append(items)
            log(f"    {begin + len(chunk)}/{len(users)} users, {time.perf_counter() - start:.0f} s")
        for setting, parts in zip(settings, lists):
            result = evaluate(TopK(users, np.concatenate(parts)), train=train, test=valid, item_ids=graph.item_ids, k=K, users=users)
            history.append({"exponent": exponent, **setting, "valid_ndcg": float(result.metrics["ndcg"]),
                            "valid_recall": float(result.metrics["recall"])})  # fmt: skip
    history.sort(key=lambda r: -r["valid_ndcg"])
    for row in history[:10]:
        log(f"    {row}")
    best = history[0]
    return {k: v for k, v in best.items() if not k.startswith("valid_")}, history, len(users)


def test_row(graph: Graph, make: Callable[[], Any], matrix) -> dict[str, Any]:
    """Fit ``make()`` on ``matrix`` (train+valid), evaluate on test; fit seconds and peak GiB."""
    learner, seconds, gib = peak_rss(lambda: make().fit(graph, matrix))
    history = graph.matrix("train", "valid")
    start = time.perf_counter()
    result = evaluate(
        learner.score, train=history, test=graph.matrix("test"), item_ids=graph.item_ids, k=K,
        sparse_max_train=sparse_threshold(history, graph.matrix("test")),
    )  # fmt: skip
    scored = time.perf_counter() - start
    return {**_metrics(result), "fit_seconds": seconds, "peak_gib": gib, "score_seconds": scored}


def run(name: str, path: str, args, log) -> dict[str, Any]:
    graph = load_graph(path)
    log(f"{name}: {graph.counts()}")
    grid = GRIDS["small" if graph.num_items < 5000 else "large"]
    best, history, scored = search(graph, grid, args.valid_users, log)
    log(f"  best on valid: {best}")
    rows = {"graph filter": {"config": best, **test_row(graph, lambda: GraphFilter(**{"neighbors": 0, **best}), graph.matrix("train", "valid"))}}
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


def _family_best(history: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The best validation row of each filter family (GF-CF, BSPM-style, ChebyCF-style)."""
    families = {
        "GF-CF (linear + ideal, no sharpening)": lambda r: r["kind"] == "linear" and r["sharpen"] == 0,
        "linear + Euler sharpening": lambda r: r["kind"] == "linear" and r["sharpen"] > 0 and r["sharpen_order"] == 1,
        "BSPM (linear + Taylor-2/4 sharpening)": lambda r: r["kind"] == "linear" and r["sharpen_order"] > 1,
        "Chebyshev (ChebyCF)": lambda r: r["kind"] == "chebyshev",
    }
    best = {}
    for label, member in families.items():
        rows = [r for r in history if member(r)]
        if rows:
            best[label] = max(rows, key=lambda r: r["valid_ndcg"])
    return best


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        f"## Graph filter on {results[0]['name']} (GF-CF linear + ideal low-pass, BSPM sharpening): validation search, test",
        "",
        "`training.sources.graphfilter.GraphFilter`, training-free: `R~ = D_U^-e R D_I^-e`, `P~ = R~^T R~` (divided by "
        "its top eigenvalue), score `s = (r D_I^-b g(P~)) D_I^b + alpha r D_I^-c V V^T D_I^c` (V: top-`rank` right "
        "singular vectors of `R~`; `g(P~) = P~` for `kind=linear`, ChebyCF's plateau response as a Chebyshev "
        "polynomial of `order` for `kind=chebyshev`), then BSPM's sharpening `s <- s sum_j<=m (-t P~)^j / j!` "
        "(`t` = `sharpen`, `m` = `sharpen_order`). Hyper-parameters chosen by NDCG@20 on the validation split "
        "carved from train (never test); the winner is refitted on train+valid and evaluated once on test "
        "(train+valid masked, full ranking, K = 20). Fit seconds and peak RSS growth of the fit are measured "
        "in this run on a shared, loaded 2-core CPU machine.",
        "",
    ]
    for res in results:
        counts = res["counts"]
        tried = len(res["history"])
        best = max(res["history"], key=lambda r: r["valid_ndcg"])
        kinds = {kind: sum(r["kind"] == kind for r in res["history"]) for kind in ("linear", "chebyshev")}
        lines += [
            f"### {res['name']} ({counts['users']} users, {counts['items']} items, "
            f"{counts['train']}/{counts['valid']}/{counts['test']} train/valid/test pairs)",
            "",
            f"Search: {tried} settings ({kinds['linear']} linear/BSPM, {kinds['chebyshev']} Chebyshev) at exponent "
            f"{list(res['grid']['exponents'])}, validation NDCG@20 on {res['valid_users']} users; "
            f"best {res['best']} (valid NDCG@20 {best['valid_ndcg']:.4f}, Recall@20 {best['valid_recall']:.4f}). "
            "Best per family on valid: "
            + "; ".join(
                f"{label} {row['valid_ndcg']:.4f}"
                for label, row in _family_best(res["history"]).items()
            )
            + ".",
            "",
            "| model | config | Recall@20 | NDCG@20 | TailRecall@20 | Coverage@20 | sparse NDCG@20 | fit s | peak GiB | test top-K s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, row in res["rows"].items():
            config = ", ".join(f"{k}={v}" for k, v in row["config"].items())
            lines.append(
                f"| {label} | {config} | {row['recall']:.4f} | {row['ndcg']:.4f} | {row['tail_recall']:.4f} | "
                f"{row['coverage']:.3f} | {row['sparse_ndcg']:.4f} | {row['fit_seconds']:.1f} | {row['peak_gib']:.2f} | "
                f"{row.get('score_seconds', float('nan')):.0f} |"
            )
        if res["name"] == "gowalla":
            for label, (recall, ndcg) in PUBLISHED.items():
                lines.append(f"| {label}, published | – | {recall:.4f} | {ndcg:.4f} | – | – | – | – | – | – |")
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
