"""``python -m graphrec.recommend``: top-K lists for every user (or a list of users) to a file.

Usage::

    python -m graphrec.recommend --model DIR --out FILE(.parquet|.csv|.jsonl) [--format auto|parquet|csv|jsonl]
        [--users FILE|all] [--k 20] [--batch-size 256] [--device auto|cpu|cuda] [--keep-seen] [--exclude FILE]
        [--diversity 0.0] [--unknown error|cold] [--quiet]

Columns ``user,item,rank,score`` with external ids. Output is streamed batch by batch
(memory bounded whatever the number of users) into a temporary file that replaces
``--out`` only when every batch is written: a failed run never leaves a partial file.
Exit status: 0 on success, 2 on bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from graphrec.cli import EXIT_OK, BadInput, check_disjoint, output_path, print_notes, run_verb, spark_errors
from graphrec.serving.topk_writer import FORMATS, RecommendationWriter, format_from_path
from kg.artifact import ArtifactError
from kg.atomic import claim
from kg.locks import OutputBusyError

__all__ = ["build_parser", "main", "read_ids"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m graphrec.recommend",
        description="Write the top-K items of every user (or of --users) from a model artifact.",
    )
    parser.add_argument("--model", required=True, type=Path, help="model artifact (python -m graphrec.train)")
    parser.add_argument("--out", required=True, type=Path, help="output file: .parquet, .csv or .jsonl (optionally .gz)")
    parser.add_argument(
        "--format", choices=("auto", *FORMATS), default="auto",
        help="output format (default auto: from the --out suffix; .gz compresses csv and jsonl)",
    )  # fmt: skip
    parser.add_argument(
        "--users", default="all",
        help="'all' (default: every user of the model) or a file with one user id per line (a header 'user' is skipped)",
    )  # fmt: skip
    parser.add_argument("--k", type=int, default=20, help="items per user (default 20)")
    parser.add_argument("--batch-size", type=int, default=256, help="users scored per batch (default 256)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to score")
    parser.add_argument("--keep-seen", action="store_true", help="do not filter the users' known items")
    parser.add_argument("--exclude", type=Path, help="file of item ids (one per line) never to recommend")
    parser.add_argument("--diversity", type=float, default=0.0, help="MMR lambda in [0, 1] (default 0: off)")
    parser.add_argument(
        "--unknown", choices=("error", "cold"), default="error",
        help="user ids the model never saw: fail (default) or recommend from popularity",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--engine", choices=("default", "spark"), default="default",
        help="spark: score user blocks on Spark executors and write Parquet part files into the --out directory "
        "(pip install 'graphrec[spark]'; docs/SCALE.md)",
    )  # fmt: skip
    parser.add_argument("--spark-master", metavar="URL", help="with --engine spark: master URL (default local[*])")
    parser.add_argument("--partitions", type=int, help="with --engine spark: user blocks (default: the parallelism)")
    return parser


def read_ids(path: Path, *, header: str) -> list[str]:
    """One id per line (blank lines skipped, a first line equal to ``header`` skipped)."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the id file ({exc})") from None
    ids = [line for line in lines if line]
    if ids and ids[0] == header:
        ids = ids[1:]
    if not ids:
        raise BadInput(f"{path}: no ids in the file (expected one {header} id per line)")
    return ids


def run(args: argparse.Namespace) -> tuple[int, int]:
    """Write the recommendations; returns ``(users, rows)`` written."""
    if args.k < 1:
        raise BadInput(f"--k must be >= 1, got {args.k}")
    if args.batch_size < 1:
        raise BadInput(f"--batch-size must be >= 1, got {args.batch_size}")
    from graphrec.artifacts.model import FORMAT as MODEL_FORMAT
    from graphrec.artifacts.model import FORMAT_VERSION as MODEL_VERSION
    from kg.artifact import read_manifest

    read_manifest(args.model, format=MODEL_FORMAT, max_version=MODEL_VERSION, verify=False)  # fails before torch loads
    if args.engine == "spark":
        return _write_spark(args)
    if args.spark_master is not None or args.partitions is not None:
        raise BadInput("--spark-master and --partitions need --engine spark")
    if args.format == "auto":
        try:
            format_from_path(args.out)  # fail on an unknown suffix before loading anything
        except ValueError as exc:
            raise BadInput(f"--out {exc}") from None
    args.out = output_path("--out", args.out)
    check_disjoint("--out", args.out, {"--model": args.model, "--users": None if args.users == "all" else args.users,
                                       "--exclude": args.exclude})  # fmt: skip
    with claim(args.out) as notes:
        print_notes("graphrec.recommend", notes)
        if args.out.is_dir():
            raise BadInput(f"--out {args.out} is a directory; name the file to write (.parquet, .csv or .jsonl)")
        return _write(args)


def _write(args: argparse.Namespace) -> tuple[int, int]:
    import pandas as pd

    from graphrec.serving.recommender import Recommender
    from training.base import resolve_device

    recommender = Recommender.load(args.model, device=str(resolve_device(args.device)))
    if args.k > recommender.num_items:
        raise BadInput(f"--k {args.k} is larger than the catalogue ({recommender.num_items} items)")
    exclude = read_ids(args.exclude, header="item") if args.exclude is not None else None
    options = dict(filter_seen=not args.keep_seen, exclude=exclude, diversity=args.diversity)
    cold: list[str] = []
    if args.users == "all":
        users = np.arange(len(recommender.user_ids), dtype=np.int64)
    else:
        ids = read_ids(Path(args.users), header="user")
        unique = list(dict.fromkeys(ids))
        if len(unique) < len(ids):
            print(
                f"graphrec.recommend: note: {args.users}: {len(ids) - len(unique):,} repeated user id(s); "
                "each user is answered once, in first-seen order",
                file=sys.stderr,
            )
            ids = unique
        known = pd.Index(recommender.user_ids).get_indexer(ids)
        cold = [i for i, k in zip(ids, known) if k < 0]
        if cold and args.unknown == "error":
            raise BadInput(
                f"{args.users}: {len(cold)} user id(s) the model does not know, e.g. {cold[:3]}; "
                "pass --unknown cold to recommend to them from popularity"
            )
        users = known[known >= 0].astype(np.int64)
    with RecommendationWriter(args.out, format=None if args.format == "auto" else args.format) as writer:
        for batch, items, scores in recommender.iter_topk(
            users, args.k, batch_size=args.batch_size, show_progress=not args.quiet, **options
        ):
            writer.write_topk(batch, items, scores, user_ids=recommender.user_ids, item_ids=recommender.item_ids)
        for user in cold:
            frame = recommender.recommend_new_user([], k=args.k, exclude=exclude, diversity=args.diversity)
            writer.write_batch(
                np.array([user], dtype=object), frame["item"].to_numpy()[None, :], frame["score"].to_numpy()[None, :]
            )
        return writer.users_written, writer.rows_written


def _write_spark(args: argparse.Namespace) -> tuple[int, int]:
    """``--engine spark``: Parquet part files under the ``--out`` directory (graphrec.serving.spark_topk)."""
    if args.format not in ("auto", "parquet"):
        raise BadInput(f"--engine spark writes Parquet part files; --format {args.format} is not supported")
    if args.partitions is not None and args.partitions < 1:
        raise BadInput(f"--partitions must be >= 1, got {args.partitions}")
    if args.out.exists():
        raise BadInput(f"--out {args.out} exists; --engine spark writes a new directory of Parquet part files")
    import pandas as pd

    from graphrec.serving.recommender import Recommender
    from graphrec.serving.spark_topk import spark_recommend

    recommender = Recommender.load(args.model, device="cpu")  # the checks, on the driver
    if args.k > recommender.num_items:
        raise BadInput(f"--k {args.k} is larger than the catalogue ({recommender.num_items} items)")
    users, cold_ids = None, []
    if args.users != "all":
        ids = list(dict.fromkeys(read_ids(Path(args.users), header="user")))
        known = pd.Index(recommender.user_ids).get_indexer(ids)
        cold_ids = [i for i, k in zip(ids, known) if k < 0]
        if cold_ids and args.unknown == "error":
            raise BadInput(f"{args.users}: {len(cold_ids)} user id(s) the model does not know, e.g. {cold_ids[:3]}; "
                           "pass --unknown cold to recommend to them from popularity")
        users = known[known >= 0].astype(np.int64)
    exclude = read_ids(args.exclude, header="item") if args.exclude is not None else None
    options = dict(filter_seen=not args.keep_seen, exclude=exclude, diversity=args.diversity)
    cold = None
    if cold_ids:  # every unknown user gets the in-process path's one list (recommend_new_user with no items)
        frame = recommender.recommend_new_user([], k=args.k, exclude=exclude, diversity=args.diversity)
        cold = (cold_ids, frame["item"].to_numpy(), frame["score"].to_numpy())
    with spark_errors():
        rows = spark_recommend(args.model, args.out, users=users, num_users=len(recommender.user_ids), k=args.k,
                               batch_size=args.batch_size, options=options, master=args.spark_master,
                               partitions=args.partitions, cold=cold)
    return (len(recommender.user_ids) if users is None else len(users) + len(cold_ids)), rows


def _model_errors() -> tuple[type[Exception], ...]:
    """``UnknownIdError`` once the recommender is loaded (it loads torch; before that, nothing raised one)."""
    module = sys.modules.get("graphrec.serving.recommender")
    return (module.UnknownIdError,) if module is not None else ()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m graphrec.recommend``; returns the exit status."""
    return run_verb(  # UnknownIdError is asked for after a failure: its module loads torch
        "graphrec.recommend", build_parser(), argv, _run,
        errors=lambda: (ArtifactError, OutputBusyError, ValueError, *_model_errors()),
    )  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    users, rows = run(args)
    seconds = time.perf_counter() - started
    print(f"wrote {rows:,} rows for {users:,} users to {args.out} in {seconds:.1f} s")
    if rows < users * args.k:
        print(
            f"graphrec.recommend: note: {users * args.k - rows:,} rows short of --k {args.k} per user: some users have "
            "fewer than k recommendable items (the sources' candidates less seen and excluded items)",
            file=sys.stderr,
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
