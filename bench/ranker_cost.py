"""Hybrid ranker fit cost against validation accuracy: which defaults it needs.

Loads the sources a training run fitted on ``train`` (its work directory, kept with
``python -m graphrec.train ... --keep-work``) and fits the ranker under several settings
(``--setting name=key:value,key:value``, any ``HybridRanker`` argument) with
``--folds``-fold cross-validation over the users who have validation items: each fold
fits on the other folds' users and scores NDCG@20 / TailRecall@20 on its own users'
validation items (train masked), so every validation user is scored once per setting.
Validation only, never test. The fitting and held-out users' candidates are featurised
once per ``candidates_per_source`` value (with every feature group; a setting uses the
columns of its groups) and shared by the settings; a row gives the fit wall seconds
summed over folds (featurisation excluded, stated), the epochs run (all members, all
folds), the pooled validation metrics and the mean featurised candidates per user.

    python bench/ranker_cost.py --graph G --work M.work \\
        --setting default= --setting ens3=ensemble:3 --setting c50=candidates_per_source:50

Prints a markdown table and writes it to bench/results/ranker_cost.md and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from eval.ranking import TopK  # noqa: E402
from kg.graph_io import load_graph  # noqa: E402
from training.base import sample_at_most  # noqa: E402
from training.pipeline.phase import load_source, scorer_of  # noqa: E402
from training.ranker import HybridRanker  # noqa: E402
from training.ranker.context import RankerContext  # noqa: E402
from training.ranker.evaluation import FeaturisedUsers, rank_featurised  # noqa: E402
from training.ranker.features import ALL_GROUPS, feature_names  # noqa: E402
from training.ranker.fitting import FittingLists, collect_lists  # noqa: E402

NAME = "ranker_cost"


def parse_setting(spec: str) -> tuple[str, dict]:
    name, _, body = spec.partition("=")
    values: dict = {}
    for part in filter(None, body.split(",")):
        key, _, value = part.partition(":")
        if key == "feature_groups":
            values[key] = tuple(value.split("+"))
            continue
        values[key] = type(getattr(HybridRanker(), key))(value)
    return name, values


def featurise(
    context: RankerContext, names: list[str], users: np.ndarray, labels, candidates: int
) -> tuple[FittingLists, FeaturisedUsers]:
    """Every user's candidates and raw features (all groups), once: the fitting lists and the scoring cache."""
    probe = HybridRanker(candidates_per_source=candidates, feature_groups=ALL_GROUPS).bind(context)
    probe.source_names_ = names
    columns = feature_names(names, ALL_GROUPS)
    seen: list[tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def record(batch: np.ndarray):
        out = probe._featurise_users(batch)
        seen.append((batch, out[1], out[2], out[3]))
        return out

    collected, diagnostics = collect_lists(
        record, users, labels, num_features=len(columns), batch_users=probe.batch_users
    )
    offsets = np.cumsum([0] + [len(batch) for batch, *_ in seen])
    everyone = FeaturisedUsers(
        users=np.concatenate([batch for batch, *_ in seen]),
        rows=torch.cat([rows + int(offset) for (_, rows, _, _), offset in zip(seen, offsets)]),
        items=torch.cat([items for _, _, items, _ in seen]),
        features=torch.cat([features for *_, features in seen]),
        feature_names=columns,
    )  # fmt: skip
    return FittingLists(collected, diagnostics, tuple(columns), tuple(names)), everyone


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--graph", required=True)
    p.add_argument("--work", required=True, help="the training run's work directory (with fit/<source>/)")
    p.add_argument("--setting", action="append", required=True, help="NAME=key:value,... (HybridRanker arguments)")
    p.add_argument("--folds", type=int, default=4, help="cross-validation folds over the validation users")
    p.add_argument("--label", default="ml-100k")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--users", type=int, default=0, help="a seeded sample of this many validation users (0: all)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    if args.users < 0:
        p.error(f"--users must be >= 0 (0: every validation user), got {args.users}")
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
    names = list(scorers)
    users = np.flatnonzero(np.diff(valid.indptr) > 0).astype(np.int64)
    if args.users:  # large logs: the pipeline also fits on a seeded sample (ranker.fit_users)
        users = sample_at_most(users, args.users, seed=args.seed)
    folds = np.array_split(np.random.default_rng(args.seed).permutation(users), args.folds)
    settings = [parse_setting(spec) for spec in args.setting]
    cache: dict[int, tuple[FittingLists, FeaturisedUsers, float]] = {}
    rows = []
    for name, values in settings:
        candidates = int(values.get("candidates_per_source", HybridRanker().candidates_per_source))
        if candidates not in cache:
            start = time.perf_counter()
            lists, everyone = featurise(context, names, users, valid, candidates)
            cache[candidates] = (lists, everyone, time.perf_counter() - start)
        lists, everyone, _ = cache[candidates]
        fit_seconds, epochs, parts = 0.0, 0, []
        for held in folds:
            held = np.sort(held)
            train_users = np.setdiff1d(users, held)
            keep = np.flatnonzero(np.isin(lists.lists.users, train_users))
            fold_lists = dataclasses.replace(lists, lists=lists.lists.subset(keep))
            ranker = HybridRanker(**{**values, "seed": args.seed})
            start = time.perf_counter()
            ranker.fit(context.with_scorers(scorers), train_users, valid, lists=fold_lists)
            fit_seconds += time.perf_counter() - start
            epochs += ranker.diagnostics_["epochs_run"]
            parts.append(rank_featurised(ranker, _subset(everyone, held), context, k=20))
        ranked = TopK(
            users=np.concatenate([t.users for t in parts]), items=np.concatenate([t.items for t in parts]),
        )  # fmt: skip
        result = evaluate(ranked, train=history, test=valid, item_ids=graph.item_ids, k=20, users=users)
        row = {
            "setting": name, "args": values or "defaults", "fit_s": fit_seconds, "epochs": epochs,
            "ndcg": result.metrics["ndcg"], "recall": result.metrics["recall"],
            "tail_recall": result.metrics["tail_recall"], "candidates": lists.diagnostics["mean_candidates"],
            "union_recall": lists.diagnostics["candidate_recall"]["union"],
        }  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    command = "python bench/ranker_cost.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    featurised = ", ".join(f"{n} candidates per source {s:.1f} s" for n, (_, _, s) in sorted(cache.items()))
    lines = [
        f"<!-- {NAME}:begin -->",
        f"## Hybrid ranker fit cost vs validation accuracy ({args.label})",
        "",
        f"Command: `{command}`  ",
        f"{os.cpu_count()} CPU cores (the ranker fits on one torch thread); {len(users)} users with validation "
        f"items{f' (a seeded sample, --users {args.users})' if args.users else ''} in {args.folds} folds: "
        f"each fold's users are scored (NDCG@20 etc. on their validation items, "
        f"train masked) by a ranker fitted on the other folds' users. Fit seconds and epochs are summed over "
        f"folds. Featurising every user once (shared by the settings): {featurised}.",
        "",
        "| setting | arguments | fit (s, all folds) | epochs run | candidates / user | union candidate recall | "
        "valid NDCG@20 | valid Recall@20 | valid TailRecall@20 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['args']} | {r['fit_s']:.1f} | {r['epochs']} | {r['candidates']:.0f} | "
            f"{r['union_recall']:.4f} | {r['ndcg']:.4f} | {r['recall']:.4f} | {r['tail_recall']:.4f} |"
        )
    lines.append(f"<!-- {NAME}:end -->")
    text_out = "\n".join(lines) + "\n"
    print(text_out)
    if not args.no_write:
        write_marked_section(NAME, text_out)


def _subset(featurised: FeaturisedUsers, users: np.ndarray) -> FeaturisedUsers:
    """The featurised pairs of ``users`` (sorted, a subset of ``featurised.users``), rows renumbered."""
    position = np.full(int(featurised.users.max()) + 1, -1, dtype=np.int64)
    position[users] = np.arange(len(users))
    pair_user = torch.from_numpy(featurised.users)[featurised.rows]
    new_rows = torch.from_numpy(position)[pair_user]
    keep = new_rows >= 0
    return FeaturisedUsers(
        users=users, rows=new_rows[keep], items=featurised.items[keep], features=featurised.features[keep],
        feature_names=featurised.feature_names,
    )  # fmt: skip


if __name__ == "__main__":
    main()
