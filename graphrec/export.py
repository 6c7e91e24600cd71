"""``python -m graphrec.export``: embeddings with external ids for systems without graphrec.

Usage::

    python -m graphrec.export --model DIR --out DIR [--format parquet|npy] [--ann faiss|hnswlib|none]
        [--overwrite]

Tables (see :mod:`graphrec.artifacts.embeddings` for the file layout and manifest):

* ``users``, ``items``, ``entities``: the primary space, where ``user . item`` is the
  score the model's graph source ranks by: the GNN's propagated embeddings, or ALS's
  factors when the model has no GNN (entities only with a GNN over the KG);
* ``als_users``, ``als_items``: ALS factors (when the model has ALS and a GNN);
* ``text_items``, ``text_entities``: the fine-tuned text encoder's unit vectors (entities
  with an opaque id name: the mean of their items' vectors; entities without any text are
  left out).

The hybrid ranker's re-ranking is not a dot product and needs graphrec itself; the
exported vectors reproduce their source's scores exactly. A model trained on a user sample
exports, for each user it was not fitted on, the vector its fold-in scores by (ALS's
least-squares solve, the GNN's weighted mean of the user's items' final vectors).
Exit status: 0 on success, 2 on bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp

from graphrec.artifacts.embeddings import ANN_BACKENDS, write_embeddings
from graphrec.artifacts.embeddings import FORMAT as EXPORT_FORMAT
from graphrec.artifacts.model import TrainedModel, load_model
from graphrec.cli import EXIT_OK, check_disjoint, output_path, print_notes, run_verb
from kg.artifact import ArtifactError
from kg.atomic import check_replaceable, claim
from kg.locks import OutputBusyError
from training.sources.names import Source

__all__ = ["build_parser", "embedding_tables", "main"]


def embedding_tables(model: TrainedModel) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """``({name: (ids, vectors)}, primary source name)`` of a loaded model."""
    from training.base import Learner  # torch loads only when an export runs
    from training.pipeline.phase import embedding_source

    graph = model.graph
    users, items, entities = (graph.user_ids.astype(str), graph.item_ids.astype(str), graph.entity_ids.astype(str))
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    gnn, als = model.sources.get(Source.GNN), model.sources.get(Source.ALS)
    primary = embedding_source(model.sources)  # the same precedence as Recommender.item_vectors
    if primary == Source.GNN:
        tables["users"] = (users, _user_vectors(model, Source.GNN))
        tables["items"] = (items, gnn.item_embeddings())
        entity_vectors = gnn.entity_embeddings()
        if len(entity_vectors):
            tables["entities"] = (entities, entity_vectors)
        if isinstance(als, Learner):
            tables["als_users"] = (users, _user_vectors(model, Source.ALS))
            tables["als_items"] = (items, als.item_embeddings())
    elif primary == Source.ALS:
        tables["users"] = (users, _user_vectors(model, Source.ALS))
        tables["items"] = (items, als.item_embeddings())
    if model.item_text is not None:
        tables["text_items"] = (items, model.item_text)
    if model.entity_text is not None and len(model.entity_text):
        # All-NaN rows mark entities without text (no readable name, no linked item): not exported.
        described = np.isfinite(model.entity_text).all(axis=1)
        if described.any():
            tables["text_entities"] = (np.asarray(entities)[described], model.entity_text[described])
    if not tables:
        raise ValueError(f"{model.path}: the model holds no embeddings (no GNN, ALS or text source)")
    return tables, primary or Source.TEXT  # no learner vectors: the text tables only


def _user_vectors(model: TrainedModel, name: str) -> np.ndarray:
    """Source ``name``'s (``als`` or ``gnn``) user vectors; users outside a user sample get their fold-in vectors."""
    source = model.sources[name]
    vectors = source.user_embeddings()
    if model.user_sample is None or model.user_sample.fitted.all():
        return vectors
    folded = np.flatnonzero(~model.user_sample.fitted)
    rows = model.fold_in_inputs(folded)[2][name]
    vectors = np.array(vectors, dtype=np.float32)
    if name == Source.ALS:
        vectors[folded] = source.recalculate_users(rows)
    else:  # training.gnn's score_new_users: the weighted mean of the user's items' final vectors
        totals = np.asarray(rows.sum(axis=1)).ravel()
        weights = sp.diags(1.0 / np.where(totals > 0, totals, 1.0)) @ rows
        vectors[folded] = np.asarray(weights @ source.item_embeddings(), dtype=np.float32)
    return vectors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m graphrec.export",
        description="Export user, item and entity embeddings of a model artifact with external ids "
        "(Parquet or NumPy) plus a manifest, and optionally an ANN index over the items.",
    )
    parser.add_argument("--model", required=True, type=Path, help="model artifact (python -m graphrec.train)")
    parser.add_argument("--out", required=True, type=Path, help="export directory to write")
    parser.add_argument("--format", choices=("parquet", "npy"), default="parquet", help="file format (default parquet)")
    parser.add_argument("--ann", choices=ANN_BACKENDS, default="none", help="ANN index over item vectors (default none)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m graphrec.export``; returns the exit status."""
    errors = (ArtifactError, FileExistsError, ImportError, OutputBusyError, ValueError)
    return run_verb("graphrec.export", build_parser(), argv, _run, errors=errors)


def _run(args: argparse.Namespace) -> int:
    args.out = output_path("--out", args.out)
    check_disjoint("--out", args.out, {"--model": args.model})
    with claim(args.out) as notes:
        print_notes("graphrec.export", notes)
        check_replaceable(args.out, overwrite=args.overwrite, replaces=EXPORT_FORMAT)
        manifest = _export(args)
    for name, table in manifest["tables"].items():
        print(f"{name}: {table['rows']:,} x {table['dim']}")
    if manifest.get("ann"):
        print(f"ANN ({manifest['ann'].get('library')}): recall@10 vs exact {manifest['ann'].get('recall_at_10'):.4f}")
    print(f"wrote {args.out}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> dict:
    """Load the model and write the export; the caller holds the lock of ``--out``."""
    model = load_model(args.model)
    tables, primary = embedding_tables(model)
    return write_embeddings(
        args.out, tables, format=args.format, ann=args.ann, overwrite=args.overwrite,
        metadata={"model": str(args.model), "primary_source": primary,
                  "model_created": model.manifest.get("created"), "config": model.manifest.get("config")},
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
