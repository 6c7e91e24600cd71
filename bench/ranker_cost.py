"""Hybrid ranker fit cost against validation accuracy: how many members and epochs it needs.

Loads the sources a training run fitted on ``train`` (its work directory, kept with
``python -m graphrec.train ... --keep-work``), featurises the fitting users once, and fits
the ranker under several settings (``--setting name=key:value,key:value``) on 80 % of
the users who have validation items, scoring NDCG@20 on the other 20 % (their
validation items, train masked): validation only, never test. Each setting's row gives
the fit's wall seconds (featurisation excluded: it is shared, measured once), the
epochs run over all members, and the held-out NDCG@20.

    python bench/ranker_cost.py --graph G --work M.work \\
        --setting default= --setting ens3=ensemble:3 --setting ens3-e30=ensemble:3,epochs:30

Prints a markdown table and writes it to bench/results/ranker_cost.md and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.merge_results import write_marked_section  # noqa: E402
from eval import MostPop, evaluate  # noqa: E402
from kg.graph_io import load_graph  # noqa: E402
from training.ranker import HybridRanker  # noqa: E402
from training.ranker.context import RankerContext  # noqa: E402
from training.ranker.features import feature_names  # noqa: E402
from training.ranker.fitting import FittingLists, collect_lists  # noqa: E402
from training.sources import load_source, scorer_of  # noqa: E402

NAME = "ranker_cost"


def parse_setting(spec: str) -> tuple[str, dict]:
    name, _, body = spec.partition("=")
    values: dict = {}
    for part in filter(None, body.split(",")):
        key, _, value = part.partition(":")
        values[key] = type(getattr(HybridRanker(), key))(value)
    return name, values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--graph", required=True)
    p.add_argument("--work", required=True, help="the training run's work directory (with fit/<source>/)")
    p.add_argument("--setting", action="append", required=True, help="NAME=key:value,... (HybridRanker arguments)")
    p.add_argument("--label", default="ml-100k")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    graph = load_graph(args.graph)
    history = graph.matrix("train")
    times = graph.timestamp_matrix("train") if graph.has_timestamps else None
    valid = graph.matrix("valid")
    sources = {}
    for folder in sorted(Path(args.work, "fit").iterdir()):
        if (folder / "config.json").is_file():
            sources[folder.name] = load_source(folder, device="cpu")
    text = sources["text"].item_embeddings() if "text" in sources else None
    scorers = {name: scorer_of(s) for name, s in sources.items()}
    scorers["pop"] = MostPop().fit(history, item_ids=graph.item_ids)
    context = RankerContext.build(
        graph, history, item_text_embeddings=text, history_times=times, source_scorers=scorers
    )
    users = np.flatnonzero(np.diff(valid.indptr) > 0).astype(np.int64)
    order = np.random.default_rng(args.seed).permutation(users)
    held = np.sort(order[: len(order) // 5])
    fit_users = np.sort(order[len(order) // 5 :])
    # Featurise once with the default layout (settings may use a subset of its groups, not other candidates).
    probe = HybridRanker(seed=args.seed).bind(context)
    probe.source_names_ = list(scorers)
    names = feature_names(probe.source_names_, probe.feature_groups)
    start = time.perf_counter()
    collected, diagnostics = collect_lists(
        probe._featurise_users, fit_users, valid, num_features=len(names), batch_users=probe.batch_users
    )
    featurise = time.perf_counter() - start
    lists = FittingLists(collected, diagnostics, tuple(names), tuple(probe.source_names_))
    rows = []
    for spec in args.setting:
        name, values = parse_setting(spec)
        ranker = HybridRanker(**{**values, "seed": args.seed}).bind(context)
        start = time.perf_counter()
        ranker.fit(scorers, fit_users, valid, lists=lists)
        fit_seconds = time.perf_counter() - start
        result = evaluate(ranker.score, train=history, test=valid, item_ids=graph.item_ids, k=20, users=held)
        row = {
            "setting": name, "args": values or "defaults", "fit_s": fit_seconds,
            "epochs": ranker.diagnostics_["epochs_run"], "ndcg": result.metrics["ndcg"],
            "recall": result.metrics["recall"], "tail_recall": result.metrics["tail_recall"],
        }  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    command = "python bench/ranker_cost.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        f"<!-- {NAME}:begin -->",
        f"## Hybrid ranker fit cost vs validation accuracy ({args.label})",
        "",
        f"Command: `{command}`  ",
        f"{os.cpu_count()} CPU cores (the ranker fits on one torch thread); {len(fit_users)} fitting users, "
        f"NDCG@20 on {len(held)} held-out users' validation items (train masked). Featurising the fitting "
        f"users once (shared by every row): {featurise:.1f} s.",
        "",
        "| setting | arguments | fit (s) | epochs run (all members) | valid NDCG@20 | valid Recall@20 | "
        "valid TailRecall@20 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['args']} | {r['fit_s']:.1f} | {r['epochs']} | {r['ndcg']:.4f} | "
            f"{r['recall']:.4f} | {r['tail_recall']:.4f} |"
        )
    lines.append(f"<!-- {NAME}:end -->")
    text_out = "\n".join(lines) + "\n"
    print(text_out)
    if not args.no_write:
        write_marked_section(NAME, text_out)


if __name__ == "__main__":
    main()
