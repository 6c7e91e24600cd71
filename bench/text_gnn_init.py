"""Text-initialised LightGCN with the text vectors mapped before the GNN sees them (ml-100k, VALIDATION).

    python bench/text_stage.py --graph /tmp/sg/ml-100k --threads 1 --save /tmp/text-vectors
    python bench/text_gnn_init.py --graph /tmp/sg/ml-100k --vectors /tmp/text-vectors --variant white64 --seed 0

The GNN (training/gnn/init.py) centres the text vectors and scales them to unit RMS
norm, then learns a projection to its 64 dimensions. Variants of the vectors handed
to it: ``raw`` (as the pipeline does today), ``pcaK`` (centred, projected on the top
K principal components: the sentence-encoder cone's dominant directions only) and
``whiteK`` (the same K components, each scaled to unit variance), applied to items
and to the described entities separately. ``random`` fits the random-init baseline.
LightGCN runs with the pipeline's defaults, fit on train with early stopping on
validation; the figures are on VALIDATION (K = 20). One JSON line per run on stdout
and appended to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def principal(x: np.ndarray, k: int, *, whiten: bool) -> np.ndarray:
    """Rows of ``x`` on their top-``k`` principal components (unit variance each if ``whiten``)."""
    centred = x - x.mean(axis=0, keepdims=True)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(k, len(s))
    out = u[:, :k] * np.sqrt(len(x)) if whiten else centred @ vt[:k].T
    return out.astype(np.float32)


def mapped(items: np.ndarray, entities: np.ndarray, variant: str) -> tuple[np.ndarray, np.ndarray]:
    if variant == "raw":
        return items, entities
    whiten, k = variant.startswith("white"), int(variant.lstrip("whitepca"))
    described = ~np.isnan(entities).all(axis=1)
    out = np.full((len(entities), k), np.nan, np.float32)
    out[described] = principal(entities[described], k, whiten=whiten)
    return principal(items, k, whiten=whiten), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, required=True)
    parser.add_argument("--vectors", type=Path, required=True, help="items.npy + entities.npy (text_stage.py --save)")
    parser.add_argument("--variant", default="raw", help="raw, random, pcaK or whiteK")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "text_gnn_init.jsonl")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from bench.text_stage import append_jsonl
    from eval import evaluate
    from kg import load_graph
    from training.config import GNNConfig
    from training.gnn import LightGCN

    graph = load_graph(args.graph)
    train, valid = graph.matrix("train", weighted=True), graph.matrix("valid")
    init = "random" if args.variant == "random" else "text"
    features = {}
    if init == "text":
        items, entities = mapped(
            np.load(args.vectors / "items.npy"), np.load(args.vectors / "entities.npy"), args.variant
        )
        features = {"item_features": items, "entity_features": entities}
    started = time.perf_counter()
    model = LightGCN(**{**GNNConfig().learner_kwargs(), "init": init}, seed=args.seed).fit(
        graph, train, valid_items=valid, **features
    )
    result = evaluate(model.score, train=train, test=valid, item_ids=graph.item_ids, k=20)
    row = {"variant": args.variant, "seed": args.seed, "split": "valid"}
    row.update({k: round(result.metrics[k], 4) for k in ("recall", "ndcg", "tail_recall", "coverage")})
    row.update(best_epoch=int(model.best_epoch_), wall_s=round(time.perf_counter() - started, 1))
    append_jsonl(args.out, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
