"""``python -m graphrec.evaluate``: docs/PROTOCOL.md metrics for a model or a recommendations file.

Usage::

    python -m graphrec.evaluate [--graph DIR] (--model DIR | --recommendations FILE)
        [--k 20] [--split test|valid] [--json OUT] [--report DIR] [--ignore-unknown] [--quiet]

``--split test`` masks train+valid and scores test; ``--split valid`` masks train
and scores valid. The markdown table goes to stdout; exit status 0 on success,
2 on bad input (a one-line message on stderr, no traceback).

From Python, :func:`run_evaluate` (``graphrec.run_evaluate``) does the same and returns
the :class:`eval.result.EvalResult`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

from eval.checks import positive_int
from eval.result import EvalResult, write_atomic
from graphrec.cli import EXIT_OK, BadInput, run_verb
from kg.artifact import ArtifactError

if TYPE_CHECKING:  # torch, pandas and matplotlib load when an evaluation runs, not for --help
    import scipy.sparse as sp

    from eval.ranking import Scorer, TopK
    from kg.graph import Graph

__all__ = ["build_parser", "main", "run_evaluate"]

_SPLITS = {"test": (("train", "valid"), "test"), "valid": (("train",), "valid")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m graphrec.evaluate",
        description="Evaluate a model or a recommendations file on a graph split (docs/PROTOCOL.md: full ranking, "
        "train items masked, Recall/NDCG/Precision/HitRate/MRR/MAP, long-tail metrics).",
    )
    parser.add_argument(
        "--graph",
        type=Path,
        help="graph artifact directory (python -m graphrec.build); with --model, default: the graph stored in the model",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="model artifact directory (python -m graphrec.train)")
    source.add_argument(
        "--recommendations",
        type=Path,
        help="CSV or Parquet with columns user,item,rank[,score] (external ids); evaluated as given",
    )
    parser.add_argument("--k", type=int, default=20, help="cut-off K (default 20)")
    parser.add_argument("--split", choices=sorted(_SPLITS), default="test", help="split to score (default test)")
    parser.add_argument("--json", type=Path, help="write the metrics as JSON to this file")
    parser.add_argument("--report", type=Path, help="write metrics.md, metrics.json and PNG plots into this directory")
    parser.add_argument(
        "--ignore-unknown",
        action="store_true",
        help="drop recommendation rows whose user or item id the graph lacks (counted) instead of failing",
    )
    parser.add_argument("--batch-size", type=int, default=1024, help="users scored per batch (default 1024)")
    parser.add_argument(
        "--quiet", action="store_true",
        help="no progress on stderr (default: a bar on a terminal, a line every ~10 s otherwise)",
    )  # fmt: skip
    parser.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    return parser


def _split_matrices(graph: Graph, split: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    train_splits, test_split = _SPLITS[split]
    test = graph.matrix(test_split)
    if test.nnz == 0:
        raise BadInput(f"the graph has no {test_split!r} interactions to evaluate on; build it with that split")
    return graph.matrix(*train_splits), test


def _model_scorer(path: Path, graph: Graph, split: str) -> tuple[Scorer, list[str]]:
    from graphrec.artifacts.model import (
        load_model,  # the model artifact is graphrec's; loaded only when asked
    )

    model = load_model(path)
    if not (
        np.array_equal(model.graph.user_ids, graph.user_ids) and np.array_equal(model.graph.item_ids, graph.item_ids)
    ):
        raise BadInput(
            f"--model {path} was trained on another graph (its users or items differ from --graph's); "
            "leave out --graph to use the graph stored in the model"
        )
    notes = []
    if split == "valid":
        notes.append("the model's final sources learned from train + valid, so validation figures are optimistic.")
    return model.scorer(), notes


def _recommendations(
    path: Path, graph: Graph, args: argparse.Namespace, test: sp.csr_matrix
) -> tuple[TopK, list[str], dict]:
    from eval.recfile import read_recommendations

    lists, report = read_recommendations(
        path, user_ids=graph.user_ids, item_ids=graph.item_ids, k=args.k, ignore_unknown=args.ignore_unknown
    )
    notes = [f"read {report.rows} rows for {report.users} users from {path}."]
    if report.unknown_user_rows or report.unknown_item_rows:
        notes.append(
            f"dropped {report.unknown_user_rows} rows with unknown user ids and "
            f"{report.unknown_item_rows} rows with unknown item ids (--ignore-unknown)."
        )
    if report.rows_beyond_k:
        notes.append(f"{report.rows_beyond_k} rows ranked after the first {args.k} of their user were not evaluated.")
    no_test = int((np.diff(test.indptr)[lists.users] == 0).sum())
    if no_test:
        notes.append(f"{no_test} users in the file have no {args.split} items and were skipped (docs/PROTOCOL.md).")
    return lists, notes, {"recommendations": str(path), **report.to_dict(), "users_without_test_items": no_test}


def run(args: argparse.Namespace) -> tuple[EvalResult, list[str], dict]:
    """Evaluate as the parsed arguments say.

    Returns:
        ``(result, notes, source)``: the metrics, sentences about the input for
        the console, and a JSON-able description of the source (path and counts).

    Raises:
        BadInput, ArtifactError, OSError, ValueError: bad arguments, graph or file.
    """
    if args.k < 1:
        raise BadInput(f"--k must be >= 1, got {args.k}")
    if args.graph is None:
        if args.model is None:
            raise BadInput("--graph is required with --recommendations")
        args.graph = args.model / "graph"
    from kg.graph_io import load_graph

    graph = load_graph(args.graph)
    if args.k > graph.num_items:
        raise BadInput(f"--k {args.k} is larger than the catalogue ({graph.num_items} items)")
    train, test = _split_matrices(graph, args.split)
    from eval.evaluator import evaluate, sparse_threshold  # torch loads once the inputs are checked

    if args.model is not None:
        if not args.quiet:
            print(f"graphrec.evaluate: loading {args.model}", file=sys.stderr, flush=True)
        source, notes = _model_scorer(args.model, graph, args.split)
        described = {"model": str(args.model)}
    else:
        source, notes, described = _recommendations(args.recommendations, graph, args, test)
    result = evaluate(
        source,
        train=train,
        test=test,
        item_ids=graph.item_ids,
        k=args.k,
        batch_size=args.batch_size,
        sparse_max_train=sparse_threshold(train, test),
        show_progress=not args.quiet,
        progress_label=f"evaluate {Path(args.model or args.recommendations).name} ({args.split})",
    )
    if result.sparse["threshold"] != 5:
        notes.append(f"no user has 5 or fewer train items; sparse users are the lowest quintile (<= {result.sparse['threshold']}).")
    return result, notes, described


def run_evaluate(
    model: str | os.PathLike | None = None, *, recommendations: str | os.PathLike | None = None,
    graph: str | os.PathLike | None = None, k: int = 20, split: str = "test", json_path: str | os.PathLike | None = None,
    report: str | os.PathLike | None = None, ignore_unknown: bool = False, batch_size: int = 1024,
    quiet: bool = True, log: Callable[[str], None] = print,
) -> EvalResult:  # fmt: skip
    """Evaluate a model artifact or a recommendations file (what ``python -m graphrec.evaluate`` runs).

    Args:
        model: the model artifact directory (``graphrec.train``), or
        recommendations: a CSV or Parquet file ``user,item,rank[,score]`` (external ids).
        graph: the graph artifact whose split is scored (default with ``model``: the
            graph stored in the model; required with ``recommendations``).
        k: the cut-off K.
        split: ``"test"`` (train + valid masked) or ``"valid"`` (train masked).
        json_path: also write the metrics as JSON to this file.
        report: also write metrics.md, metrics.json and PNG plots into this directory.
        ignore_unknown: drop recommendation rows with ids the graph lacks instead of failing.
        batch_size: users scored per batch.
        quiet: no progress on stderr.
        log: where the notes about the input go (``"Note: ..."`` lines).

    Returns:
        The :class:`eval.result.EvalResult` (``result.metrics["ndcg"]``, ``result.to_markdown()``).

    Raises:
        ValueError: not exactly one of ``model`` and ``recommendations``, an unknown
            ``split``, or unusable input; TypeError: a ``k`` or ``batch_size`` that is not
            an integer; BadInput, ArtifactError, OSError: as the verb.
    """
    if (model is None) == (recommendations is None):
        raise ValueError("pass exactly one of model and recommendations")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    argv = ["--model", os.fspath(model)] if model is not None else ["--recommendations", os.fspath(recommendations)]
    for flag, value in (("--graph", graph), ("--json", json_path), ("--report", report)):
        if value is not None:
            argv += [flag, os.fspath(value)]
    argv += ["--k", str(positive_int(k, "k")), "--split", split, "--batch-size", str(positive_int(batch_size, "batch_size"))]
    argv += [flag for flag, on in (("--ignore-unknown", ignore_unknown), ("--quiet", quiet)) if on]
    args = build_parser().parse_args(argv)
    result, notes, described = run(args)
    _write_outputs(args, result, described)
    for note in notes:
        log(f"Note: {note}")
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m graphrec.evaluate``; returns the exit status."""
    return run_verb("graphrec.evaluate", build_parser(), argv, _run, errors=(ArtifactError, ValueError))


def _write_outputs(args: argparse.Namespace, result: EvalResult, described: dict) -> None:
    """The ``--json`` and ``--report`` files the arguments ask for."""
    if args.json is not None:
        payload = {**result.to_dict(), "split": args.split, "source": described}
        write_atomic(args.json, (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode("utf-8"))
    if args.report is not None:
        from eval.report import write_report

        name = args.model or args.recommendations
        write_report(result, args.report, title=f"{Path(name).name} on {args.split}")


def _run(args: argparse.Namespace) -> int:
    result, notes, described = run(args)
    _write_outputs(args, result, described)
    print(f"{args.split} split, K={args.k}\n")
    print(result.to_markdown(), end="")
    for note in notes:
        print(f"Note: {note}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
