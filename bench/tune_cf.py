"""Tune the collaborative learners (ALS, item-KNN, EASE) on validation, report them on test.

For each graph artifact (built by ``python -m graphrec.build``):

1. every config of a small grid per learner is fitted on ``graph.matrix("train")``
   (binary, and weighted too when the graph's weights are not all equal) and
   scored on the ``valid`` split with train masked; the best NDCG@20 wins;
2. the winner is refitted on train+valid and evaluated once on ``test`` with
   train+valid masked (docs/PROTOCOL.md), next to MostPop; fit wall seconds are timed
   in the same run and quoted as ratios to ALS's.

Writes ``bench/results/tune_cf.md`` (the tables and the command) and
``bench/results/tune_cf.json`` (the best config per graph and learner, with the
input it wants: ``"weighted": true`` means ``graph.matrix(..., weighted=True)``).

    python -m graphrec.build --format recbole --out /tmp/g-ml100k \
        --interactions ../shared/data/ml-100k/ml-100k.inter
    python -m graphrec.build --format tsv --no-header --columns user,item,weight --out /tmp/g-lastfm \
        --interactions ../shared/data/lastfm/data1.txt --test ../shared/data/lastfm/test1.txt \
        --social ../shared/data/lastfm/trustnetwork.txt
    python bench/tune_cf.py --graph /tmp/g-ml100k --graph /tmp/g-lastfm
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from eval import MostPop, evaluate, sparse_threshold
from kg.artifact import atomic_file, library_versions, to_jsonable
from kg.graph import Graph
from kg.graph_io import load_graph
from training.base import Learner
from training.sources.als import ALS
from training.sources.ease import EASE
from training.sources.knn import ItemKNN

RESULTS = Path(__file__).resolve().parent / "results"
K = 20


@dataclass(frozen=True)
class Search:
    """One learner's grid: the class and the configs to try."""

    name: str
    build: Callable[..., Learner]
    configs: tuple[dict[str, Any], ...]


def grids(quick: bool) -> tuple[Search, ...]:
    """The grids; ``quick`` keeps two configs per learner (a smoke run)."""
    als = [
        dict(factors=f, regularization=r, alpha=a, iterations=i)
        for f, r, a, i in itertools.product((64, 128), (3.0, 10.0, 30.0, 100.0, 300.0), (0.0, 0.1, 1.0, 5.0), (15, 30))
    ]
    knn = [
        dict(similarity=s, neighbors=n)
        for s, n in itertools.product(("cosine", "bm25", "tfidf"), (25, 50, 100, 200, 400, 800, 1600))
    ]
    ease = [dict(regularization=r) for r in (25.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)]
    if quick:
        als, knn, ease = als[:2], knn[:2], ease[:2]
    return (
        Search("als", ALS, tuple(als)),
        Search("itemknn", ItemKNN, tuple(knn)),
        Search("ease", EASE, tuple(ease)),
    )


def _metrics(result) -> dict[str, float]:
    # plain floats, so that to_jsonable turns NaN (no qualifying user) into null
    return {
        "recall": float(result.metrics["recall"]),
        "ndcg": float(result.metrics["ndcg"]),
        "tail_recall": float(result.metrics["tail_recall"]),
        "coverage": float(result.metrics["coverage"]),
        "sparse_ndcg": float(result.sparse["ndcg"]),
        "sparse_users": int(result.sparse["n_users"]),
        "sparse_threshold": int(result.sparse["threshold"]),
    }


def _inputs(graph: Graph) -> tuple[bool, ...]:
    weights = graph.interactions["weight"].to_numpy()
    return (False, True) if len(weights) and weights.min() != weights.max() else (False,)


def tune(graph: Graph, search: Search, log) -> dict[str, Any]:
    """Grid search on valid; returns the best config, its input and valid NDCG@20."""
    mask = graph.matrix("train")
    valid = graph.matrix("valid")
    if valid.nnz == 0:
        raise SystemExit("the graph has no validation split; build it with valid_fraction > 0")
    best: dict[str, Any] = {"valid_ndcg": -1.0}
    tried = 0
    for weighted in _inputs(graph):
        fit_matrix = graph.matrix("train", weighted=weighted)
        for config in search.configs:
            if weighted and config.get("alpha") == 0.0:
                continue  # ALS with alpha 0 gives every positive confidence 1: weights cannot matter
            tried += 1
            learner = search.build(**config)
            start = time.perf_counter()
            learner.fit(graph, fit_matrix)
            seconds = time.perf_counter() - start
            ndcg = evaluate(learner.score, train=mask, test=valid, item_ids=graph.item_ids, k=K).metrics["ndcg"]
            log(f"  {search.name} weighted={weighted} {config}: valid NDCG@{K} {ndcg:.4f} ({seconds:.2f}s)")
            if ndcg > best["valid_ndcg"]:
                best = {"config": dict(config), "weighted": weighted, "valid_ndcg": float(ndcg)}
    best["tried"] = tried
    return best


def graph_sparse_threshold(graph: Graph) -> int:
    """docs/PROTOCOL.md's sparse users on the test split (train + valid counts)."""
    return sparse_threshold(graph.matrix("train", "valid"), graph.matrix("test"))


def report_on_test(graph: Graph, search: Search, best: dict[str, Any]) -> dict[str, Any]:
    """Refit ``best`` on train+valid and evaluate on test (train+valid masked)."""
    learner = search.build(**best["config"])
    start = time.perf_counter()
    learner.fit(graph, graph.matrix("train", "valid", weighted=best["weighted"]))
    fit_seconds = time.perf_counter() - start
    result = evaluate(
        learner.score,
        train=graph.matrix("train", "valid"),
        test=graph.matrix("test"),
        item_ids=graph.item_ids,
        k=K,
        sparse_max_train=graph_sparse_threshold(graph),
    )
    return {**best, "test": _metrics(result), "fit_seconds": fit_seconds, "eval_seconds": result.seconds}


def run_graph(path: Path, searches: tuple[Search, ...], log) -> dict[str, Any]:
    graph = load_graph(path)
    log(f"{path}: {graph.counts()}")
    mask = graph.matrix("train", "valid")
    start = time.perf_counter()
    pop = MostPop().fit(mask)
    pop_seconds = time.perf_counter() - start
    pop_result = evaluate(
        pop, train=mask, test=graph.matrix("test"), item_ids=graph.item_ids, k=K, sparse_max_train=graph_sparse_threshold(graph)
    )
    learners = {}
    for search in searches:
        best = tune(graph, search, log)
        learners[search.name] = report_on_test(graph, search, best)
        log(f"  best {search.name}: {learners[search.name]}")
    build = graph.meta.get("build_config", {})
    split = graph.meta.get("split", {})
    return {
        "graph": str(path),
        "source": {
            "interactions": build.get("interactions"),
            "test": build.get("test"),
            "split": split.get("method"),
            "seed": split.get("seed"),
            "validation": split.get("validation"),
        },
        "counts": graph.counts(),
        "mostpop": {"test": _metrics(pop_result), "fit_seconds": pop_seconds},
        "learners": learners,
    }


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _source_text(source: dict[str, Any]) -> str:
    if not source.get("interactions"):
        return "Source: not recorded in the graph's manifest."
    test = f", test `{source['test']}`" if source.get("test") else ""
    return (
        f"Source: `{source['interactions']}`{test}; split {source.get('split')} (seed {source.get('seed')}), "
        f"validation {source.get('validation')}."
    )


def _config_text(entry: dict[str, Any]) -> str:
    config = ", ".join(f"{k}={v}" for k, v in entry["config"].items())
    return f"{config}, {'weighted' if entry['weighted'] else 'binary'}"


def markdown(results: list[dict[str, Any]], command: str, elapsed: float) -> str:
    lines = [
        "## Collaborative learners tuned on validation (ALS, item-KNN, EASE)",
        "",
        f"Each learner's grid is searched on the validation split (fit on train, NDCG@{K} on valid, "
        "train masked); the winner is refitted on train+valid and evaluated once on test "
        f"(train+valid masked), K = {K}, full ranking. Fit seconds are measured in the same run; "
        "the ratio is to ALS's fit on the same graph.",
        "",
    ]
    for res in results:
        counts = res["counts"]
        als_seconds = res["learners"]["als"]["fit_seconds"] if "als" in res["learners"] else None
        sparse = res["mostpop"]["test"]
        lines += [
            f"### {Path(res['graph']).name} ({counts['users']} users, {counts['items']} items, "
            f"{counts['train']}/{counts['valid']}/{counts['test']} train/valid/test pairs)",
            "",
            _source_text(res["source"]),
            "",
            f"| learner | best config (of grid) | valid NDCG@{K} | Recall@{K} | NDCG@{K} | TailRecall@{K} | "
            f"Coverage@{K} | sparse-user NDCG@{K} (<= {sparse['sparse_threshold']} train items, "
            f"{sparse['sparse_users']} users) | fit s | fit / ALS |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        pop = res["mostpop"]
        lines.append(
            f"| MostPop | - | - | {_fmt(pop['test']['recall'])} | {_fmt(pop['test']['ndcg'])} | "
            f"{_fmt(pop['test']['tail_recall'])} | {_fmt(pop['test']['coverage'], 3)} | "
            f"{_fmt(pop['test']['sparse_ndcg'])} | {pop['fit_seconds']:.3f} | - |"
        )
        for name, entry in res["learners"].items():
            test = entry["test"]
            ratio = f"{entry['fit_seconds'] / als_seconds:.2f}x" if als_seconds else "-"
            lines.append(
                f"| {name} | {_config_text(entry)} ({entry['tried']}) | {_fmt(entry['valid_ndcg'])} | "
                f"{_fmt(test['recall'])} | {_fmt(test['ndcg'])} | {_fmt(test['tail_recall'])} | "
                f"{_fmt(test['coverage'], 3)} | {_fmt(test['sparse_ndcg'])} | {entry['fit_seconds']:.2f} | {ratio} |"
            )
        lines.append("")
    versions = library_versions("implicit", "torch", "numpy", "scipy")
    lines += [
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), Python {platform.python_version()}, "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; whole run {elapsed:.0f} s.",
        "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


def best_configs(results: list[dict[str, Any]], command: str) -> dict[str, Any]:
    """The JSON the training pipeline reads its defaults from."""
    graphs = {}
    for res in results:
        graphs[Path(res["graph"]).name] = {
            name: {
                "config": entry["config"],
                "weighted": entry["weighted"],
                "valid_ndcg": entry["valid_ndcg"],
                "test": entry["test"],
            }
            for name, entry in res["learners"].items()
        }
    return {"k": K, "command": command, "graphs": graphs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", action="append", required=True, type=Path, help="graph artifact directory (repeatable)")
    parser.add_argument("--quick", action="store_true", help="two configs per learner (a smoke run)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where tune_cf.md/.json go (default bench/results)")
    args = parser.parse_args(argv)
    command = "python bench/tune_cf.py " + " ".join(sys.argv[1:] if argv is None else argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    start = time.perf_counter()
    searches = grids(args.quick)
    results = [run_graph(path, searches, log) for path in args.graph]
    text = markdown(results, command, time.perf_counter() - start)
    print(text)
    outputs = {
        "tune_cf.md": text,
        "tune_cf.json": json.dumps(to_jsonable(best_configs(results, command)), indent=2, allow_nan=False) + "\n",
    }
    for filename, content in outputs.items():
        with atomic_file(args.out_dir / filename) as tmp:
            tmp.write_text(content, encoding="utf-8")
            tmp.chmod(0o644)  # mkstemp's 0600 would hide the results from other users


if __name__ == "__main__":
    main()
