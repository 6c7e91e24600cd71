"""Text-initialised LightGCN: how the text vectors are mapped before the GNN sees them (ml-100k).

    python bench/text_stage.py --graph /tmp/sg/ml-100k --threads 1 --save /tmp/text-vectors
    OMP_NUM_THREADS=1 python bench/text_gnn_init.py --graph /tmp/sg/ml-100k --vectors /tmp/text-vectors \
        --variant text --components 64 --scale 1 --seed 0 [--split test]

The GNN (training/gnn/init.py, ``fit_text_map``) maps the text vectors by a fixed
linear map, then learns a projection to its 64 dimensions. ``--variant text`` with
``--components K`` (K > 0: centred, whitened onto the top K principal components,
row RMS norm ``--scale``; the label is ``whiteK``, ``whiteKxS`` for a scale S != 1)
or ``--components 0`` (centred and scaled only, the mapping before whitening: the
label is ``raw``); items and the described entities each get their own map.
``--variant random`` fits the random-init baseline. LightGCN runs with the
pipeline's other defaults, or with ``--set KEY=VALUE`` (e.g. ``item_l2=0.1``,
named in the row's variant, as is ``--label``, e.g. the vectors' origin).

``--split valid`` (choosing): fit on train with early stopping on validation,
figures on VALIDATION (train masked). ``--split test`` (the final claim only): the
same fit, then the pipeline's final phase (a warm refit on train + validation for
``training.gnn.schedule.warm_epochs`` epochs), figures on TEST (train + validation
masked). K = 20, full ranking. One JSON line per run on stdout and appended to ``--out``.

``--summary`` prints the markdown table of ``--out`` instead (per split and variant:
per-seed figures, mean +- sd over seeds, sd with ddof 1). Rows without ``code`` were
written before the map moved into training/gnn/init.py, when this script mapped the
vectors itself (the same map up to the components' signs).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def label(variant: str, components: int, scale: float) -> str:
    """The row's name: ``random``, ``raw`` (components 0) or ``whiteK`` (``whiteKxS`` for scale S != 1)."""
    if variant == "random":
        return "random"
    name = "raw" if components == 0 else f"white{components}"
    return name if scale == 1 else f"{name}x{scale:g}"


def summary(path: Path) -> str:
    """Markdown table of the runs in ``path``: NDCG@20 and TailRecall@20 per seed, mean +- sd."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    groups: dict[tuple[str, str, str], dict[int, dict]] = {}
    for row in rows:
        source = "learner" if "code" in row else "bench-side map"
        groups.setdefault((row["split"], row["variant"], source), {})[row["seed"]] = row  # a rerun replaces
    lines = [
        "| split | variant | map in | seeds | NDCG@20 per seed | NDCG@20 mean +- sd | TailRecall@20 per seed "
        "| TailRecall@20 mean +- sd |",
        "|---|---|---|---|---|---:|---|---:|",
    ]
    for (split, variant, source), by_seed in sorted(groups.items(), key=lambda kv: (kv[0][0] != "valid", kv[0])):
        seeds = sorted(by_seed)
        cells = [split, variant, source, " ".join(map(str, seeds))]
        for key in ("ndcg", "tail_recall"):
            values = np.array([by_seed[seed][key] for seed in seeds])
            spread = f" +- {values.std(ddof=1):.4f}" if len(values) > 1 else ""
            cells += [" ".join(f"{v:.4f}" for v in values), f"{values.mean():.4f}{spread}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path)
    parser.add_argument("--vectors", type=Path, help="items.npy + entities.npy (text_stage.py --save)")
    parser.add_argument("--variant", choices=("text", "random"), default="text")
    parser.add_argument("--components", type=int, default=64, help="text_components (0: centre and scale only)")
    parser.add_argument("--scale", type=float, default=1.0, help="text_scale")
    parser.add_argument("--split", choices=("valid", "test"), default="valid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "text_gnn_init.jsonl")
    parser.add_argument("--summary", action="store_true", help="print the table of --out and exit")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="another LightGCN setting (JSON value), e.g. item_l2=0.1; repeatable; named in the row's variant",
    )
    parser.add_argument("--label", default="", help="appended to the row's variant (e.g. the vectors' origin)")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(args.out))
        return 0
    if args.graph is None or (args.variant == "text" and args.vectors is None):
        parser.error("--graph (and --vectors for --variant text) are required unless --summary")

    import torch

    torch.set_num_threads(args.threads)
    from bench.text_stage import append_jsonl
    from eval import evaluate
    from kg import load_graph
    from training.gnn import LightGCN
    from training.gnn.schedule import warm_epochs
    from training.pipeline.config import GNNConfig

    graph = load_graph(args.graph)
    train, valid = graph.matrix("train", weighted=True), graph.matrix("valid")
    settings = {key: json.loads(value) for key, _, value in (item.partition("=") for item in args.set)}
    kwargs = {**GNNConfig().learner_kwargs(), "init": args.variant, "seed": args.seed, **settings}
    features = {}
    if args.variant == "text":
        kwargs.update(text_components=args.components, text_scale=args.scale)
        features = {
            "item_features": np.load(args.vectors / "items.npy"),
            "entity_features": np.load(args.vectors / "entities.npy"),
        }
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    model = LightGCN(**kwargs).fit(graph, train, valid_items=valid, **features)
    variant = "+".join([label(args.variant, args.components, args.scale), *args.set, *filter(None, [args.label])])
    row = {"variant": variant, "seed": args.seed, "split": args.split}
    row["best_epoch"] = int(model.best_epoch_)
    if args.split == "valid":
        history, labels = train, valid
    else:
        history, labels = graph.matrix("train", "valid", weighted=True), graph.matrix("test")
        epochs = warm_epochs(model.best_epoch_, train.nnz, history.nnz)
        final = LightGCN(**{**kwargs, "epochs": epochs})
        model = final.fit(graph, history, warm_start=model, **features)
        row["refit_epochs"] = epochs
    result = evaluate(model.score, train=history, test=labels, item_ids=graph.item_ids, k=20)
    row.update({k: round(result.metrics[k], 4) for k in ("recall", "ndcg", "tail_recall", "coverage")})
    row.update(
        wall_s=round(time.perf_counter() - started, 1),
        cpu_s=round(resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu, 1),
        code="init.py text map",
    )
    append_jsonl(args.out, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
