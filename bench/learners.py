"""One table per data set of every learner alone (issue: learners), MostPop as the floor.

Rows come from two measured sources, both under docs/PROTOCOL.md on the same graph:

* the training run's manifest (``python -m graphrec.train``; ALS, item-KNN, EASE, the
  configured GNN and MostPop, each fitted on train + valid after tuning on valid);
* ``bench/results/gnn_quality_*.md`` (``bench/gnn_quality.py``; the GNN variants the
  training config did not use: LightGCN with the other initialisation, GAT).

Writes ``bench/results/learners.md``::

    python bench/learners.py --model ml-100k=/tmp/m-ml100k --model lastfm=/tmp/m-lastfm
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from bench.merge_results import publish  # noqa: E402

NAMES = {"als": "ALS", "itemknn": "item-KNN", "ease": "EASE", "pop": "MostPop"}


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _sparse(cell: str) -> tuple[float, int | None]:
    """A sparse NDCG cell, ``0.3488 (n=213)`` or a bare ``0.3488``: (value, user count or None)."""
    found = re.fullmatch(r"([0-9.]+)(?: \(n=(\d+)\))?", cell.strip("* "))
    if found is None:
        raise ValueError(f"cannot read the sparse NDCG cell {cell!r}")
    return float(found.group(1)), int(found.group(2)) if found.group(2) else None


def gnn_quality_rows(name: str) -> dict[str, dict]:
    """Rows of ``gnn_quality_<name>*.md``: label -> metrics (sparse NDCG when the table has it)."""
    rows = {}
    for path in sorted(RESULTS.glob(f"gnn_quality_{name}*.md")):
        header = None
        for line in path.read_text(encoding="utf-8").splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("| model |"):
                header = cells
            elif header and line.startswith("| ") and not line.startswith("|---") and len(cells) == len(header):
                values = dict(zip(header, cells))
                label = values["model"]
                if label == "MostPop":
                    continue
                rows[label] = {
                    "recall": float(values["Recall@20"]), "ndcg": float(values["NDCG@20"]),
                    "tail_recall": float(values["TailRecall@20"]), "coverage": float(values["Coverage@20"]),
                    **dict(zip(("sparse_ndcg", "sparse_users"), _sparse(values["sparse NDCG@20"])
                                   if "sparse NDCG@20" in values else (None, None))),
                    "from": f"bench/gnn_quality.py ({path.name})",
                }  # fmt: skip
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--out", type=Path, default=RESULTS / "learners.md")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "bench/learners.py", *(argv if argv is not None else sys.argv[1:])])
    lines = ["## Every learner alone (test split, K = 20)", "", f"Command: `{command}`", ""]
    for spec in args.model:
        name, _, path = spec.partition("=")
        manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
        test, gnn = manifest["metrics"]["test"], manifest["config"]["gnn"]
        gnn_label = f"{'LightGCN' if gnn['model'] == 'lightgcn' else 'GAT'}, {gnn['init']} init"
        rows = {}
        for key, result in test.items():
            if key in ("hybrid", "text"):
                continue
            label = gnn_label if key == "gnn" else NAMES.get(key, key)
            rows[label] = {
                "recall": result["recall"], "ndcg": result["ndcg"], "tail_recall": result["tail_recall"],
                "coverage": result["coverage"], "sparse_ndcg": result["sparse"]["ndcg"],
                "sparse_users": result["sparse"].get("n_users"),
                "from": "training run (bench/hybrid.py)",
            }  # fmt: skip
        for label, row in gnn_quality_rows(name).items():
            if label.replace(" (default)", "") not in rows:
                rows[label.replace(" (default)", "")] = row
        floor = rows["MostPop"]["ndcg"]
        lines += [
            f"### {name} (sparse users: at most {manifest['metrics'].get('sparse_threshold')} train items)",
            "",
            "| learner | Recall@20 | NDCG@20 | TailRecall@20 | Coverage@20 | sparse NDCG@20 | beats MostPop | from |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for label, row in rows.items():
            beats = "floor" if label == "MostPop" else ("yes" if row["ndcg"] > floor else "NO")
            cells = " | ".join(_fmt(row[k]) for k in ("recall", "ndcg", "tail_recall", "coverage", "sparse_ndcg"))
            if row["sparse_ndcg"] is not None and row.get("sparse_users") is not None:
                cells += f" (n={row['sparse_users']})"  # a sparse-user figure always says how many users
            lines.append(f"| {label} | {cells} | {beats} | {row['from']} |")
        lines.append("")
    return publish("\n".join(lines), args.out)


if __name__ == "__main__":
    sys.exit(main())
