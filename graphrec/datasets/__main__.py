"""``python -m graphrec.datasets``: write a synthetic data set of any size in the files users bring.

Usage::

    python -m graphrec.datasets --interactions 10000000 --out DIR [--users N] [--items N]
        [--topics 12] [--popularity-exponent 1.0] [--seed 2026] [--overwrite] [--quiet]

Writes ``interactions.parquet`` (streamed in row groups: memory is bounded by a
chunk, not by the log), ``items.csv`` (text and attributes), ``users.csv``,
``kg.tsv`` and ``social.csv`` (formats in :mod:`graphrec.datasets`). Users and
items scale with the log unless given: one user per 20 events, one item per 50,
creators and series with the catalogue. Titles repeat in catalogues of
hundreds of thousands of items (they are drawn from per-topic vocabularies), so
name the text columns when building rather than relying on detection::

    python -m graphrec.build --interactions DIR/interactions.parquet --items DIR/items.csv \\
        --users DIR/users.csv --kg DIR/kg.tsv --social DIR/social.csv --item-text-columns title,description \\
        --event-weight view=1 --event-weight click=2 --event-weight purchase=5 --out GRAPH

Exit status: 0 written, 2 bad settings (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

from graphrec.cli import EXIT_OK, run_verb
from graphrec.datasets.synthetic import SyntheticConfig, write_streamed

__all__ = ["config_for", "main"]

BUILD_COMMAND = (
    "python -m graphrec.build --interactions DIR/interactions.parquet --items DIR/items.csv \\\n"
    "    --users DIR/users.csv --kg DIR/kg.tsv --social DIR/social.csv --item-text-columns title,description \\\n"
    "    --event-weight view=1 --event-weight click=2 --event-weight purchase=5 --out GRAPH"
)
EVENTS_PER_USER = 20
EVENTS_PER_ITEM = 50


def config_for(
    interactions: int,
    *,
    users: int | None = None,
    items: int | None = None,
    topics: int = 12,
    popularity_exponent: float = 1.0,
    seed: int = 2026,
) -> SyntheticConfig:
    """The generator's settings for a log of ``interactions`` events, sized as the module docstring says.

    Args:
        interactions: raw events in the log.
        users: users (default ``interactions // 20``, at least 10).
        items: items (default ``interactions // 50``, at least ``4 * topics``).
        topics: latent taste topics.
        popularity_exponent: Zipf exponent of item popularity.
        seed: the seed of every draw.

    Returns:
        A validated :class:`SyntheticConfig`.

    Raises:
        ValueError: a setting out of range (naming it).
    """
    users = users if users is not None else max(10, interactions // EVENTS_PER_USER)
    items = items if items is not None else max(4 * topics, interactions // EVENTS_PER_ITEM)
    return SyntheticConfig(
        num_users=users,
        num_items=items,
        num_interactions=interactions,
        num_topics=topics,
        popularity_exponent=popularity_exponent,
        # Entities scale with the catalogue; a creator or series without items would be a KG triple
        # that reaches no item (the build refuses those).
        num_creators=max(1, items // 20),
        num_series=items // 50,
        seed=seed,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m graphrec.datasets",
        description="Write a seeded synthetic data set (Parquet log, item/user tables, KG, social edges).",
        epilog="Build a graph from DIR with:\n\n" + BUILD_COMMAND,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--interactions", type=int, required=True, help="raw events in the log")
    parser.add_argument("--out", required=True, help="directory to write")
    parser.add_argument("--users", type=int, help=f"users (default: interactions / {EVENTS_PER_USER})")
    parser.add_argument("--items", type=int, help=f"items (default: interactions / {EVENTS_PER_ITEM})")
    parser.add_argument("--topics", type=int, default=12, help="latent taste topics, 1 to 20 (default 12)")
    parser.add_argument("--popularity-exponent", type=float, default=1.0, help="Zipf exponent (default 1.0)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of every draw (default 2026)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    return run_verb("graphrec.datasets", build_parser(), argv, _run, errors=(TypeError, ValueError, FileExistsError))


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    config = config_for(
        args.interactions, users=args.users, items=args.items, topics=args.topics,
        popularity_exponent=args.popularity_exponent, seed=args.seed,
    )  # fmt: skip
    files = write_streamed(config, args.out, overwrite=args.overwrite, show_progress=not args.quiet)
    if not args.quiet:
        print(
            f"wrote {files.interactions.parent}: {config.num_interactions:,} events, {config.num_users:,} users, "
            f"{config.num_items:,} items, {config.num_creators:,} creators, {config.num_series:,} series "
            f"in {time.perf_counter() - started:.1f} s"
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
