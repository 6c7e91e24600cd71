"""The graph filter's CPU scoring cost per user: the row form (before) against the column blocks (now).

The graph filter (training/sources/graphfilter.py) is the hybrid's most expensive source on a
large catalogue: every user's row goes through the sharpening polynomial, four
products with ``R~^T R~`` per user on gowalla's defaults. Until commit 6a1b702 it was
computed on ``[B, num_items]`` row blocks (each power two scipy products of a
transposed copy, the ideal term from a dense copy of the rows); now
:func:`training.sources.spectral.filter_columns` keeps cache-sized blocks of users as C-ordered
``[num_items, b]`` columns. This bench reimplements the row form from that commit next
to the learner's current path and times both on the same users of a trained model,
on one thread, alternating, best of ``--repeats``; it also checks that the scores
agree and that the top-20 lists (history masked) are identical.

    python bench/graphfilter_cost.py --model M --users 1024

``M`` is a ``graphrec.train`` output directory whose sources include the graph filter.
Prints a markdown table and writes it to bench/results/graphfilter_cost.md.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphrec.serving.recommender import Recommender  # noqa: E402
from training.sources.spectral import _dense_rows  # noqa: E402


def row_form(model, rows) -> torch.Tensor:
    """The linear filter on CPU as computed before the column blocks (6a1b702^)."""
    scaled = rows @ model._pre if model._pre is not None else rows
    scores = torch.from_numpy(((scaled @ model._rt_csr) @ model._normalised).toarray())
    if model._post is not None:
        scores *= model._post
    if model._has_ideal:
        scores += model.alpha * ((_dense_rows(rows, torch.device("cpu")) @ model._left) @ model._right)
    if model.sharpen:
        term = scores
        for step in range(1, model.sharpen_order + 1):
            users = model._normalised @ term.numpy().T
            term = torch.from_numpy(np.ascontiguousarray((model._rt_csr @ users).T, dtype=np.float32))
            term = term * (-model.sharpen / step)
            scores = scores + term
    return scores


def cpu_seconds(score, rows, batch: int) -> tuple[float, torch.Tensor]:
    start = time.process_time()
    out = torch.cat([score(rows[i : i + batch]) for i in range(0, rows.shape[0], batch)])
    return time.process_time() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a graphrec.train output directory")
    parser.add_argument("--users", type=int, default=1024, help="users scored (the first ones)")
    parser.add_argument("--batch-size", type=int, default=256, help="users per call (the hybrid's batch)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "graphfilter_cost.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = Recommender.load(args.model, device="cpu").model.sources["graphfilter"]
    if model._dense is not None or model.kind != "linear":
        raise SystemExit(f"{args.model}: the filter is dense or not linear; nothing to compare")
    users = np.arange(min(args.users, model.user_items_.shape[0]), dtype=np.int64)
    rows = model.user_items_[users]
    best = {"row form (before)": np.inf, "column blocks (now)": np.inf}
    outputs = {}
    paths = (("row form (before)", lambda r: row_form(model, r)), ("column blocks (now)", model._filter))
    for _ in range(args.repeats):  # alternating, best of repeats
        for name, score in paths:
            seconds, outputs[name] = cpu_seconds(score, rows, args.batch_size)
            best[name] = min(best[name], seconds)
    before, now = outputs["row form (before)"].float(), outputs["column blocks (now)"]
    seen = torch.from_numpy(rows.toarray() > 0)
    lists = [torch.topk(s.masked_fill(seen, float("-inf")), 20).indices for s in (before, now)]
    identical = int((lists[0] == lists[1]).all(dim=1).sum())
    n, m = model.user_items_.shape
    lines = [
        "## Graph filter scoring cost on CPU: row form vs column blocks",
        "",
        f"Command: `python bench/graphfilter_cost.py {shlex.join(sys.argv[1:])}`  ",
        f"Model: {args.model.name} ({n:,} users x {m:,} items, {model.user_items_.nnz:,} train pairs), "
        f"filter {model.kind}, rank {model._left.shape[1]}, sharpen t={model.sharpen} order {model.sharpen_order}. "
        f"{len(users):,} users in calls of {args.batch_size}, one torch thread, CPU seconds (process time), "
        f"best of {args.repeats} alternating runs; {platform.machine()}, torch {torch.__version__}.",
        "",
        "| path | CPU s | ms per user | users/s (one thread) | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, seconds in best.items():
        lines.append(
            f"| {name} | {seconds:.2f} | {1000 * seconds / len(users):.2f} | {len(users) / seconds:,.0f} "
            f"| {best['row form (before)'] / seconds:.2f}x |"
        )
    lines += [
        "",
        f"Largest score difference {float((before - now).abs().max()):.2e} (scores up to "
        f"{float(before.abs().max()):.2f}); identical top-20 lists (history masked): "
        f"{identical} of {len(users)} users.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0 if identical == len(users) else 1


if __name__ == "__main__":
    raise SystemExit(main())
