"""Cost and validation quality of the training pipeline's text stage (ml-100k or any graph with text).

    python bench/text_stage.py --graph /tmp/sg/ml-100k --threads 1 --label after
    python bench/text_stage.py --graph /tmp/sg/ml-100k --threads 1 --label after --gnn 0 1 2 --inits text random

Runs what the ``text`` stage (training/pipeline/stages/text_stage.py) runs (``TextLearner`` with
the pipeline's defaults on the train split, then the KG entity vectors), timing each part in wall and process CPU
seconds (CPU seconds are the figure to compare on a loaded machine; ``--threads``
pins torch's thread count). Quality is on VALIDATION (docs/PROTOCOL.md, train
masked, K = 20): the text source itself and, with ``--gnn SEEDS``, a LightGCN fit on
train with early stopping, initialised from these vectors (``text``) or randomly
(``random``). Test figures are not computed: defaults are chosen on validation.
Appends one JSON line per run to ``--out`` (default bench/results/text_stage.jsonl).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

METRICS = ("recall", "ndcg", "tail_recall", "coverage")


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, round(time.perf_counter() - wall, 2), round(time.process_time() - cpu, 2)


def append_jsonl(path: Path, row: dict) -> None:
    """Print ``row`` and append it as one JSON line to ``path``."""
    print(json.dumps(row), flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, required=True)
    parser.add_argument("--label", default="run")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--gnn", type=int, nargs="*", default=[], metavar="SEED", help="LightGCN seeds to fit")
    parser.add_argument("--inits", nargs="+", default=["text", "random"], choices=["text", "random"])
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="TextLearner overrides")
    parser.add_argument("--no-eval", action="store_true", help="timing only (large graphs)")
    parser.add_argument("--save", type=Path, default=None, help="write items.npy and entities.npy here")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "text_stage.jsonl")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from eval import evaluate
    from kg import load_graph
    from training.pipeline.config import GNNConfig, TextConfig
    from training.text import TextLearner
    from training.text.entities import entity_vectors

    graph = load_graph(args.graph)
    train, valid = graph.matrix("train", weighted=True), graph.matrix("valid")
    overrides = dict(item.split("=", 1) for item in args.set)
    kwargs = TextConfig().learner_kwargs()
    for key, value in overrides.items():
        kwargs[key] = value if key == "fine_tune_steps" and value == "auto" else type(kwargs.get(key, 0) or 0)(value)
    learner, fit_wall, fit_cpu = _timed(lambda: TextLearner(**kwargs).fit(graph, train))
    report = learner.fine_tune_report_
    (entities, counts), ent_wall, ent_cpu = _timed(
        lambda: entity_vectors(graph, learner.encoder, learner.item_embeddings())
    )
    row = {
        "label": args.label,
        "graph": str(args.graph),
        "items": graph.num_items,
        "entities": graph.num_entities,
        "threads": torch.get_num_threads(),
        "fine_tune_steps": None if report is None else report.steps,
        "fine_tune_wall_s": None if report is None else round(report.seconds, 2),
        "fit_wall_s": fit_wall,
        "fit_cpu_s": fit_cpu,
        "entities_wall_s": ent_wall,
        "entities_cpu_s": ent_cpu,
        "entity_counts": counts,
        "overrides": overrides,
    }
    print(json.dumps(row), flush=True)
    if args.save is not None:
        import numpy as np

        args.save.mkdir(parents=True, exist_ok=True)
        np.save(args.save / "items.npy", learner.item_embeddings())
        np.save(args.save / "entities.npy", entities)
    if not args.no_eval:
        result = evaluate(learner.score, train=train, test=valid, item_ids=graph.item_ids, k=20)
        row["text_valid"] = {k: round(result.metrics[k], 4) for k in METRICS}
        print("text source (valid)", row["text_valid"], flush=True)
        from training.gnn import LightGCN

        row["gnn_valid"] = {}
        for init in args.inits:
            for seed in args.gnn:
                features = {"item_features": learner.item_embeddings(), "entity_features": entities}
                gnn = LightGCN(**{**GNNConfig().learner_kwargs(), "init": init}, seed=seed)
                fit = functools.partial(
                    gnn.fit, graph, train, valid_items=valid, **(features if init == "text" else {})
                )
                model, wall, _ = _timed(fit)
                result = evaluate(model.score, train=train, test=valid, item_ids=graph.item_ids, k=20)
                cell = {k: round(result.metrics[k], 4) for k in METRICS}
                cell.update(best_epoch=int(model.best_epoch_), wall_s=wall)
                row["gnn_valid"][f"{init}/{seed}"] = cell
                print(f"gnn {init} seed {seed} (valid)", cell, flush=True)
    append_jsonl(args.out, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
