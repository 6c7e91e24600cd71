"""Is a graph's test split exchangeable with its validation split? The same fitted sources, scored on both.

The hybrid ranker learns how far to trust each source from the validation split; that transfers to
test only where the two held-out sets look alike to the sources. This bench scores the fit-phase
sources of a kept work directory (fitted on train, validation held out:
``python -m graphrec.train --graph G --out M --stages als,neighbors --keep-work``) and MostPop (fitted on
train) on the SAME users twice: on valid (train masked) and on test (train + valid masked), and prints
each source's NDCG@20 / Recall@20 and its NDCG@20 as a ratio to a reference source's. Where the ratios
move between valid and test, the split is not exchangeable and validation-chosen weights need not
carry over. No model is chosen here: test is only read to describe the split.

    python bench/valid_test_shift.py --graph G --work M.work --users 4000 --reference graphfilter
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval import MostPop, evaluate  # noqa: E402
from kg.graph_io import load_graph  # noqa: E402
from training.base import sample_at_most  # noqa: E402
from training.pipeline.phase import load_source  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graph", type=Path, required=True, help="graph artifact with valid and test splits")
    p.add_argument("--work", type=Path, required=True, help="work directory kept by graphrec.train --keep-work")
    p.add_argument("--users", type=int, default=4000, help="users with both valid and test items (seeded sample)")
    p.add_argument("--reference", default="graphfilter", help="source the ratios are taken to")
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args(argv)
    if args.users <= 0:
        p.error(f"--users must be positive, got {args.users}")
    graph = load_graph(args.graph)
    train, valid, test = graph.matrix("train"), graph.matrix("valid"), graph.matrix("test")
    known = graph.matrix("train", "valid")
    both = (np.diff(valid.indptr) > 0) & (np.diff(test.indptr) > 0)
    users = sample_at_most(np.flatnonzero(both).astype(np.int64), args.users, seed=args.seed)
    scorers = {"mostpop": MostPop().fit(train)}
    for folder in sorted((args.work / "fit").iterdir()):
        scorers[folder.name] = load_source(folder, device="cpu").score
    if args.reference not in scorers:
        p.error(f"--reference {args.reference!r} is not among {sorted(scorers)}")
    rows = {}
    for name, score in scorers.items():
        on_valid = evaluate(score, train=train, test=valid, item_ids=graph.item_ids, k=20, users=users).metrics
        on_test = evaluate(score, train=known, test=test, item_ids=graph.item_ids, k=20, users=users).metrics
        rows[name] = (on_valid, on_test)
        print(f"{name}: valid NDCG@20 {on_valid['ndcg']:.4f}, test NDCG@20 {on_test['ndcg']:.4f}", flush=True)
    ref_valid, ref_test = (rows[args.reference][0]["ndcg"], rows[args.reference][1]["ndcg"])
    lines = [
        f"Command: `{shlex.join(['python', 'bench/valid_test_shift.py', *(argv if argv is not None else sys.argv[1:])])}`  ",
        f"{len(users):,} users with valid and test items; held-out items per user: valid "
        f"{np.diff(valid.indptr)[users].mean():.2f}, test {np.diff(test.indptr)[users].mean():.2f}.",
        "",
        f"| source | valid NDCG@20 | valid Recall@20 | test NDCG@20 | test Recall@20 | NDCG / {args.reference}: valid | "
        f"test | test ratio / valid ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (v, t) in rows.items():
        rv, rt = v["ndcg"] / ref_valid, t["ndcg"] / ref_test
        lines.append(
            f"| {name} | {v['ndcg']:.4f} | {v['recall']:.4f} | {t['ndcg']:.4f} | {t['recall']:.4f} | {rv:.3f} | "
            f"{rt:.3f} | {rt / rv:.2f}x |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
