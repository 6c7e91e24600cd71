"""The hybrid against each of its sources, from trained model artifacts (one training run each).

Every figure comes from the manifest that ``python -m graphrec.train`` wrote: all
sources and the hybrid were fitted and evaluated in that one run (docs/PROTOCOL.md: the
sources on train, the ranker on valid, the sources refitted on train + valid, test
touched only by the evaluation). Writes ``bench/results/hybrid.md``::

    python -m graphrec.train --graph /tmp/g-ml100k --config configs/ml-100k.yaml --out /tmp/m-ml100k
    python -m graphrec.train --graph /tmp/g-lastfm --config configs/lastfm.yaml --out /tmp/m-lastfm
    python bench/hybrid.py --model ml-100k=/tmp/m-ml100k --model lastfm=/tmp/m-lastfm
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.merge_results import publish  # noqa: E402
from training.pipeline.report import metrics_table  # noqa: E402


def section(name: str, model: Path) -> list[str]:
    manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
    metrics, config = manifest["metrics"], manifest["config"]
    test, k = metrics["test"], config["eval"]["k"]
    counts = manifest.get("counts", {})
    order = [n for n in test if n != "hybrid"] + ["hybrid"]
    single = [n for n in test if n not in ("hybrid", "pop")]
    best = max(single, key=lambda n: test[n]["ndcg"])
    hybrid = test["hybrid"]
    lines = [
        f"### {name}",
        "",
        f"Graph: {counts.get('users', 0):,} users, {counts.get('items', 0):,} items, {counts.get('train', 0):,} train "
        f"+ {counts.get('valid', 0):,} valid + {counts.get('test', 0):,} test pairs, {counts.get('entities', 0):,} "
        f"entities. Sparse users: at most {metrics.get('sparse_threshold')} train items "
        f"({hybrid.get('sparse', {}).get('n_users', '?')} users). GNN: "
        f"{config['gnn']['model']} ({config['gnn']['init']} init, best epoch {manifest['notes'].get('gnn_best_epoch')}).",
        "",
        metrics_table([(n, test[n]) for n in order], k),
        "",
        f"- Hybrid NDCG@{k} {hybrid['ndcg']:.4f} vs best single source ({best}) {test[best]['ndcg']:.4f}: "
        f"{100 * (hybrid['ndcg'] / test[best]['ndcg'] - 1):+.1f}% relative.",
    ]
    if "als" in test:
        lines.append(
            f"- Hybrid TailRecall@{k} {hybrid['tail_recall']:.4f} vs ALS {test['als']['tail_recall']:.4f} "
            f"({hybrid['tail_recall'] / max(test['als']['tail_recall'], 1e-12):.2f}x)."
        )
    timings = manifest.get("timings", {})
    if timings:
        lines.append("- Wall seconds per stage: " + ", ".join(f"{s} {t:.0f}" for s, t in timings.items()) + ".")
    if manifest.get("ablation"):
        lines += ["", f"Ablation (test, K = {k}): each source alone, the hybrid, the hybrid refitted without each "
                  "feature group.", "", metrics_table([(r["name"], r) for r in manifest["ablation"]], k)]  # fmt: skip
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR", help="data set name and model")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hybrid.md")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "bench/hybrid.py", *(argv if argv is not None else sys.argv[1:])])
    lines = ["## Hybrid ranker vs its sources (test split, one training run per data set)", "",
             f"Command: `{command}` (after the two `python -m graphrec.train` runs in its docstring, with the "
             "configs in `configs/`).", ""]  # fmt: skip
    for spec in args.model:
        name, _, path = spec.partition("=")
        lines += section(name, Path(path))
    return publish("\n".join(lines), args.out)


if __name__ == "__main__":
    sys.exit(main())
