"""The hybrid's ranking candidates: every source's top-N ("all") against ``candidate_sources="auto"``.

With "auto" the ranker takes its candidates from every source but the factor models (ALS, the
GNN, popularity), unless one of them has the best candidate recall on the fitting users, and
scores those left out at the candidates only, from their factors. The ranker's weights do not
change (its fit learns from every source's top-N either way), so the same trained artifact is
ranked both ways.

* ``--valid NAME GRAPH WORK``: choosing, on validation. From a ``graphrec.train --keep-work`` work
  directory of that graph: the fit-phase sources (fitted on train), a ranker configured as that run's fitted
  on one half of the validation users (at most ``ranker.fit_users`` of them) and ranking the other
  half, both ways, then the halves swapped. Test is never read.
* ``--model NAME SEED PATH``: the claim, on test (docs/PROTOCOL.md, K = 20). A trained artifact
  evaluated both ways on every test user (train + validation masked); with ``--time``, the
  Recommender's threaded batch top-K (``parallel_hybrid_topk``, one torch thread per core) over all
  users, both ways alternating, and ``--check`` users' batch lists against the per-user path.

    python bench/candidate_sources.py --valid gowalla G /tmp/gw.work --model gowalla 2026 /tmp/gw-2026 --time

Prints markdown tables and writes them to bench/results/candidate_sources.md and the
``candidate_sources`` section of BENCHMARKS.md (``--no-write``: print only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.hybrid_topk_floor import sources_of  # noqa: E402
from bench.merge_results import write_marked_section  # noqa: E402
from eval import evaluate  # noqa: E402
from eval.ranking import iter_topk  # noqa: E402
from graphrec.artifacts.model import load_model  # noqa: E402
from graphrec.serving.batch_topk import parallel_hybrid_topk  # noqa: E402
from kg.graph_io import load_graph  # noqa: E402
from training.base import sample_at_most  # noqa: E402
from training.pipeline.config import TrainConfig  # noqa: E402
from training.pipeline.learners import make_ranker  # noqa: E402
from training.ranker.context import RankerContext  # noqa: E402
from training.ranker.scoring import is_factor_source  # noqa: E402

METRICS = ("ndcg", "recall", "tail_recall")


def auto_sources(ranker) -> list[str]:
    """What ``candidate_sources="auto"`` picks for this fitted ranker in its bound context."""
    scorers = ranker.source_scorers_
    factors = [name for name in ranker.source_names_ if is_factor_source(scorers[name])]
    return ranker.choose_candidate_sources(ranker.diagnostics_["candidate_recall"], factors)


def metrics_of(ranker, history, test, item_ids, sparse: int) -> dict:
    result = evaluate(ranker.score, train=history, test=test, item_ids=item_ids, k=20, sparse_max_train=sparse)
    return {**{m: float(result.metrics[m]) for m in METRICS}, "sparse_ndcg": float(result.sparse["ndcg"])}


def valid_rows(name: str, graph_path: Path, work: Path) -> list[dict]:
    """Two folds over the validation users: fit on one half, rank the other, both ways."""
    graph = load_graph(graph_path)
    stored = json.loads((work / "state.json").read_text(encoding="utf-8"))["config"]
    config = TrainConfig.from_dict({**stored, "device": "cpu"})
    history, valid = graph.matrix("train", weighted=True), graph.matrix("valid")
    times = graph.timestamp_matrix("train") if graph.has_timestamps else None
    scorers = sources_of(work, "fit", graph, history)
    text_learner = getattr(scorers.get("text"), "__self__", None)  # the fit-phase text learner's score
    text = text_learner.item_embeddings() if text_learner is not None else None
    context = RankerContext.build(
        graph, history, item_text_embeddings=text, history_times=times, source_scorers=scorers
    )
    everyone = np.flatnonzero(np.diff(valid.indptr) > 0).astype(np.int64)
    order = np.random.default_rng(0).permutation(everyone)
    halves = [np.sort(order[::2]), np.sort(order[1::2])]
    rows = []
    for fold in range(2):
        fit_users = sample_at_most(halves[fold], config.ranker.fit_users, config.seed)
        ranker = make_ranker(config).fit(context, fit_users, valid)
        held = np.zeros(graph.num_users, np.float32)
        held[halves[1 - fold]] = 1.0
        labels = sp.csr_matrix(sp.diags(held) @ valid)
        labels.eliminate_zeros()
        chosen = auto_sources(ranker)
        for setting, names in (("all", list(ranker.source_names_)), ("auto", chosen)):
            ranker.candidate_sources_ = names
            row = metrics_of(ranker, history, labels, graph.item_ids, config.eval.sparse_max_train)
            rows.append({"data": name, "fold": fold, "setting": setting, "sources": "+".join(names),
                         "users": len(halves[1 - fold]), **row})  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def test_row(name: str, seed: str, path: Path, timed: bool, check: int) -> list[dict]:
    model = load_model(path)
    ranker, graph = model.ranker, model.graph
    test = graph.matrix("test")
    sparse = int(model.manifest["metrics"]["test"]["hybrid"]["sparse"]["threshold"])
    users = np.arange(graph.num_users, dtype=np.int64)
    settings = (("all", list(ranker.source_names_)), ("auto", auto_sources(ranker)))
    rows = {}
    for setting, names in settings:
        ranker.candidate_sources_ = names
        rows[setting] = {"data": name, "seed": seed, "setting": setting, "sources": "+".join(names),
                         **metrics_of(ranker, model.history, test, graph.item_ids, sparse)}  # fmt: skip
    if timed:
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(len(users), min(check, len(users)), replace=False))
        seconds: dict[str, list[float]] = {s: [] for s, _ in settings}
        for _ in range(2):
            for setting, names in settings:
                ranker.candidate_sources_ = names
                start = time.perf_counter()
                parts = list(parallel_hybrid_topk(ranker, users, 20, 256, False))
                seconds[setting].append(time.perf_counter() - start)
                got = np.concatenate([part[1] for part in parts])
                same = sum(
                    int(np.array_equal(next(iter_topk(ranker.score, users[i : i + 1], 20, exclude=model.history))[1][0],
                                       got[i]))
                    for i in sample
                )  # fmt: skip
                rows[setting]["same"] = f"{same}/{len(sample)}"
        for setting, _ in settings:
            rows[setting]["users_per_s"] = len(users) / min(seconds[setting])
    for row in rows.values():
        print(row, flush=True)
    return list(rows.values())


def cell(value: float) -> str:
    """A metric to 4 places; ``-`` where it is undefined (no sparse user among the evaluated)."""
    return "-" if math.isnan(value) else f"{value:.4f}"


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} +- {statistics.stdev(values):.4f}"


def tables(valid: list[dict], test: list[dict], command: str) -> str:
    lines = [f"Command: `{command}` (2 CPU cores, `torch.get_num_threads()` = {torch.get_num_threads()})", ""]
    if valid:
        lines += [
            "Validation (choosing): the ranker fitted on one half of the validation users, ranking the other half "
            "(fit-phase sources, test never read):", "",
            "| data | fold | users | setting | candidate sources | NDCG@20 | Recall@20 | TailRecall@20 | sparse NDCG@20 |",
            "|---|---:|---:|---|---|---:|---:|---:|---:|",
        ]  # fmt: skip
        for r in valid:
            lines.append(
                f"| {r['data']} | {r['fold']} | {r['users']:,} | {r['setting']} | {r['sources']} | {r['ndcg']:.4f} | "
                f"{r['recall']:.4f} | {r['tail_recall']:.4f} | {cell(r['sparse_ndcg'])} |"
            )
        lines.append("")
    if test:
        lines += [
            "Test (the claim): every test user of each trained artifact, ranked both ways; users/s = the "
            "Recommender's threaded batch top-K over all users (best of 2), same = batch lists equal to the "
            "per-user path on a sample:", "",
            "| data | seed | setting | candidate sources | NDCG@20 | Recall@20 | TailRecall@20 | sparse NDCG@20 | "
            "users/s | same |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---|",
        ]  # fmt: skip
        for r in test:
            speed = f"{r['users_per_s']:,.0f}" if "users_per_s" in r else "-"
            lines.append(
                f"| {r['data']} | {r['seed']} | {r['setting']} | {r['sources']} | {r['ndcg']:.4f} | {r['recall']:.4f} | "
                f"{r['tail_recall']:.4f} | {cell(r['sparse_ndcg'])} | {speed} | {r.get('same', '-')} |"
            )
        lines += ["", "| data | setting | seeds | NDCG@20 | Recall@20 | TailRecall@20 | sparse NDCG@20 |",
                  "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for data in dict.fromkeys(r["data"] for r in test):
            for setting in ("all", "auto"):
                group = [r for r in test if r["data"] == data and r["setting"] == setting]
                cells = " | ".join(mean_sd([r[m] for r in group]) for m in (*METRICS, "sparse_ndcg"))
                lines.append(f"| {data} | {setting} | {len(group)} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--valid", nargs=3, action="append", default=[], metavar=("NAME", "GRAPH", "WORK"))
    p.add_argument("--model", nargs=3, action="append", default=[], metavar=("NAME", "SEED", "PATH"))
    p.add_argument("--time", action="store_true", help="time the batch top-K of every --model both ways")
    p.add_argument("--check", type=int, default=50, help="users whose batch lists are checked per --model")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    valid = [row for name, graph, work in args.valid for row in valid_rows(name, Path(graph), Path(work))]
    test = [row for name, seed, path in args.model for row in test_row(name, seed, Path(path), args.time, args.check)]
    command = "python bench/candidate_sources.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = (
        "<!-- candidate_sources:begin -->\n"
        "## The hybrid's ranking candidates: every source against `candidate_sources=auto` (issue 12)\n\n"
        + tables(valid, test, command) + "<!-- candidate_sources:end -->\n"
    )
    print(text)
    if not args.no_write:
        write_marked_section("candidate_sources", text)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
