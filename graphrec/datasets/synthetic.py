"""The embedded demo data: a seeded, realistic synthetic recommendation data set.

Users have latent topic tastes (a main and a secondary topic), items belong to
a topic and have a power-law popularity with a real long tail (including items
released after the log ends, with no interactions at all), user activity is
heavy-tailed, item text is drawn from per-topic vocabularies, and categorical
attributes, KG entities (creator, series, genre, country) and friendships all
lean towards the topic. Everything is deterministic from ``config.seed`` and
vectorised, from a few thousand to tens of millions of interactions.

:func:`generate` returns the tables in memory, :func:`write` writes them in
the file formats users bring (so the demo exercises the real build path), and
:func:`write_interactions_parquet` streams a log too large for memory.

Example::

    from graphrec.datasets import SyntheticConfig, generate, write

    files = write(generate(SyntheticConfig(num_interactions=200_000)), "demo")
"""

from __future__ import annotations

import numbers
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from eval.progress import progress_bar
from graphrec.datasets.latent import INTERACTION_SCHEMA, build_world, event_blocks
from graphrec.datasets.tables import items_table, kg_table, social_table, users_table
from graphrec.datasets.vocab import TOPICS
from kg.artifact import atomic_dir, atomic_file

__all__ = [
    "DemoFiles",
    "SyntheticConfig",
    "SyntheticData",
    "generate",
    "write",
    "write_interactions_parquet",
    "write_streamed",
]

INTERACTION_FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. The defaults make a demo that trains in a few minutes on 2 CPU cores.

    Args:
        num_users: users; every user has at least one event.
        num_items: items in the catalogue (some never interacted with).
        num_interactions: raw events, repeats included; at least ``num_users``.
        num_topics: latent taste topics, 1 to ``len(vocab.TOPICS)`` (20); each has
            its own vocabulary, genres and attribute leanings.
        popularity_exponent: Zipf exponent of item popularity (``1 / rank**s``);
            0 is uniform; with the default the top 20% of items carry about two thirds
            of the (user, item) pairs at the default size, three quarters at 1M events.
        repeat_rate: probability that an event after a user's first repeats one of
            that user's earlier (user, item) pairs, a little later.
        topic_focus: share of a user's fresh events drawn from their two taste
            topics (by popularity); the rest follow popularity alone.
        creator_follow_rate: share of fresh events that pick another item by the
            creator of an item the user already has (signal only the KG carries).
        activity_sigma: log-normal sigma of user activity; larger gives heavier
            tails (more very sparse and very active users).
        num_creators: creator entities; each specialises in a topic.
        num_series: series entities (0 for none); a series has one topic and creator.
        series_share: probability that an item belongs to a series of its topic.
        new_item_share: share of items released during the log window (only
            consumable after release); the rest, but cold items, predate it.
        cold_item_share: share of items released after the log ends: in every
            side table, in no interaction.
        social_degree: mean number of friends per user (0 for no social edges).
        social_homophily: probability that a friendship joins two users with the
            same main topic (before chance matches).
        start_time: first second of the log (unix seconds, default 2023-01-01 UTC).
        duration_days: length of the log window.
        seed: the seed of every random draw.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: a field is out of range, naming the field and the value found.
    """

    num_users: int = 3000
    num_items: int = 1500
    num_interactions: int = 90_000
    num_topics: int = 12
    popularity_exponent: float = 1.0
    repeat_rate: float = 0.15
    topic_focus: float = 0.85
    creator_follow_rate: float = 0.1
    activity_sigma: float = 1.0
    num_creators: int = 300
    num_series: int = 120
    series_share: float = 0.3
    new_item_share: float = 0.25
    cold_item_share: float = 0.03
    social_degree: float = 4.0
    social_homophily: float = 0.8
    start_time: int = 1_672_531_200
    duration_days: int = 365
    seed: int = 2026

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            wanted = numbers.Integral if spec.type == "int" else numbers.Real
            if isinstance(value, bool) or not isinstance(value, wanted):
                raise TypeError(f"SyntheticConfig.{spec.name} must be {spec.type}, got {value!r}")
            if not np.isfinite(value):
                raise ValueError(f"SyntheticConfig.{spec.name} must be finite, got {value!r}")
        at_least = {
            "num_users": (1, "1"), "num_items": (self.num_topics, f"num_topics ({self.num_topics})"),
            "num_interactions": (self.num_users, f"num_users ({self.num_users}; one event per user)"),
            "num_topics": (1, "1"), "num_creators": (1, "1"), "num_series": (0, "0"), "duration_days": (1, "1"),
            "popularity_exponent": (0, "0"), "activity_sigma": (0, "0"), "social_degree": (0, "0"),
            "start_time": (0, "0"), "seed": (0, "0"),
        }
        for name, (low, text) in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"SyntheticConfig.{name} must be >= {text}, got {getattr(self, name)!r}")
        for name in ("repeat_rate", "topic_focus", "creator_follow_rate", "series_share",
                     "new_item_share", "cold_item_share", "social_homophily"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SyntheticConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        checks = [
            ("num_topics", self.num_topics <= len(TOPICS), f"<= {len(TOPICS)} (the topic vocabularies)"),
            ("repeat_rate", self.repeat_rate < 1, "< 1 (a user's first event is never a repeat)"),
            ("cold_item_share", self.new_item_share + self.cold_item_share <= 1,
             "<= 1 - new_item_share"),
            ("popularity_exponent", self.popularity_exponent <= 5, "<= 5"),
            ("duration_days", self.duration_days <= 36_500, "<= 36500 (a century)"),
            ("start_time", self.start_time < 2**40, "< 2**40 (unix seconds)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"SyntheticConfig.{name} must be {expected}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class SyntheticData:
    """The generated tables (file formats in the package docstring of :mod:`graphrec.datasets`).

    ``item_topic`` / ``user_topic`` (internal index order = table row order) and
    ``item_release`` (unix seconds) are the hidden truth, for tests and
    benchmarks; no file contains them.
    """

    config: SyntheticConfig
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    kg: pd.DataFrame
    social: pd.DataFrame
    item_topic: np.ndarray
    user_topic: np.ndarray
    item_release: np.ndarray


@dataclass(frozen=True)
class DemoFiles:
    """Paths of a written demo data set."""

    interactions: Path
    items: Path
    users: Path
    kg: Path
    social: Path


def generate(config: SyntheticConfig, *, interactions: bool = True) -> SyntheticData:
    """Generate the tables of ``config`` in memory (about a million events a second).

    Args:
        config: sizes, structure and seed.
        interactions: generate the log; with False ``interactions`` is an empty
            table with the right columns (the side tables do not depend on
            ``num_interactions``: pair them with :func:`write_interactions_parquet`).

    Returns:
        The tables and the hidden truth; identical for identical configs.

    Raises:
        TypeError: ``config`` is not a :class:`SyntheticConfig`.
    """
    if not isinstance(config, SyntheticConfig):
        raise TypeError(f"config must be a SyntheticConfig, got {type(config).__name__}")
    world = build_world(config)
    if interactions:
        log = pa.concat_tables(list(event_blocks(config, world))).to_pandas()
    else:
        log = INTERACTION_SCHEMA.empty_table().to_pandas()
    return SyntheticData(
        config=config,
        interactions=log,
        items=items_table(config, world),
        users=users_table(config, world),
        kg=kg_table(config, world),
        social=social_table(config, world),
        item_topic=world.item_topic,
        user_topic=world.user_topic,
        item_release=world.item_release,
    )


def write(
    data: SyntheticData, directory: str | os.PathLike, *, format: str = "parquet", overwrite: bool = False
) -> DemoFiles:
    """Write ``data`` as a demo data set directory, atomically (all files or none).

    Files: ``interactions.parquet`` (or ``interactions.csv``), ``items.csv``,
    ``users.csv``, ``kg.tsv`` (tab-separated, header ``head relation tail``) and
    ``social.csv``. CSVs are byte-identical for identical data.

    Args:
        data: what :func:`generate` returned.
        directory: the directory to create.
        format: the interactions file, ``"parquet"`` or ``"csv"``.
        overwrite: replace an existing non-empty ``directory``.

    Returns:
        The paths written.

    Raises:
        TypeError: ``data`` is not a :class:`SyntheticData`.
        ValueError: unknown ``format``.
        FileExistsError: ``directory`` is not empty and ``overwrite`` is false.
    """
    if not isinstance(data, SyntheticData):
        raise TypeError(f"data must be the SyntheticData generate() returns, got {type(data).__name__}")
    if format not in INTERACTION_FORMATS:
        raise ValueError(f"format must be one of {INTERACTION_FORMATS}, got {format!r}")
    directory = Path(directory)
    files = DemoFiles(
        interactions=directory / f"interactions.{format}",
        items=directory / "items.csv",
        users=directory / "users.csv",
        kg=directory / "kg.tsv",
        social=directory / "social.csv",
    )
    with atomic_dir(directory, overwrite=overwrite) as tmp:
        if format == "parquet":
            table = pa.Table.from_pandas(data.interactions, schema=INTERACTION_SCHEMA, preserve_index=False)
            # Without pandas metadata the file matches write_interactions_parquet's.
            pq.write_table(table.replace_schema_metadata(None), tmp / files.interactions.name)
        else:
            data.interactions.to_csv(tmp / files.interactions.name, index=False)
        _write_side_tables(data, tmp, files)
    return files


def _write_side_tables(data: SyntheticData, directory: Path, files: DemoFiles) -> None:
    data.items.to_csv(directory / files.items.name, index=False)
    data.users.to_csv(directory / files.users.name, index=False)
    data.kg.to_csv(directory / files.kg.name, sep="\t", index=False)
    data.social.to_csv(directory / files.social.name, index=False)


def write_streamed(
    config: SyntheticConfig, directory: str | os.PathLike, *, overwrite: bool = False, show_progress: bool = False
) -> DemoFiles:
    """Like ``write(generate(config), directory)`` (Parquet log), with the log streamed in row groups.

    Memory is bounded by the side tables and one chunk of the log, not by
    ``config.num_interactions``, so logs of tens of millions of events fit; the
    files are identical to :func:`write`'s. Atomic: all files or none.

    Args:
        config: sizes, structure and seed.
        directory: the directory to create.
        overwrite: replace an existing non-empty ``directory``.
        show_progress: progress of rows written (a bar on a terminal, periodic lines otherwise).

    Returns:
        The paths written.

    Raises:
        TypeError: ``config`` is not a :class:`SyntheticConfig`.
        FileExistsError: ``directory`` is not empty and ``overwrite`` is false.
    """
    data = generate(config, interactions=False)
    directory = Path(directory)
    files = DemoFiles(
        interactions=directory / "interactions.parquet",
        items=directory / "items.csv",
        users=directory / "users.csv",
        kg=directory / "kg.tsv",
        social=directory / "social.csv",
    )
    with atomic_dir(directory, overwrite=overwrite) as tmp:
        _write_side_tables(data, tmp, files)
        write_interactions_parquet(config, tmp / files.interactions.name, show_progress=show_progress)
    return files


def write_interactions_parquet(
    config: SyntheticConfig,
    path: str | os.PathLike,
    *,
    show_progress: bool = False,
    chunk_rows: int = 1_000_000,
) -> int:
    """Stream the interaction log of ``config`` to one Parquet file, in row groups.

    The rows are exactly ``generate(config).interactions`` (whatever ``chunk_rows``),
    but memory stays bounded by the chunk (plus a generation block of about 130k
    rows), not by ``config.num_interactions``: 50M rows peak under 0.5 GiB RSS.
    Encoding a row group overlaps with generating the next. The file appears at
    ``path`` only once complete.

    Args:
        config: sizes, structure and seed.
        path: the Parquet file to write (replaced if it exists).
        show_progress: progress of rows written (a bar on a terminal, periodic lines otherwise).
        chunk_rows: rows per Parquet row group (about 50 bytes of memory a row).

    Returns:
        The number of rows written (``config.num_interactions``).

    Raises:
        TypeError: ``config`` is not a :class:`SyntheticConfig`.
        ValueError: ``chunk_rows`` is not a positive integer.
    """
    if not isinstance(config, SyntheticConfig):
        raise TypeError(f"config must be a SyntheticConfig, got {type(config).__name__}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, numbers.Integral) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    world = build_world(config)
    written = 0
    pending: list[pa.Table] = []
    pending_rows = 0
    with atomic_file(path) as tmp, pq.ParquetWriter(tmp, INTERACTION_SCHEMA) as writer, progress_bar(
        total=config.num_interactions, unit="rows", unit_scale=True, disable=not show_progress,
        desc="synthetic interactions",
    ) as bar, ThreadPoolExecutor(max_workers=1) as pool:
        # pyarrow releases the GIL while encoding; waiting for the previous write before
        # submitting the next keeps at most one chunk in flight.
        in_flight: Future | None = None

        def flush(final: bool) -> None:
            nonlocal pending, pending_rows, written, in_flight
            table = pa.concat_tables(pending)
            full = len(table) if final else len(table) - len(table) % chunk_rows
            for offset in range(0, full, chunk_rows):
                rows = min(chunk_rows, full - offset)
                if in_flight is not None:
                    in_flight.result()
                in_flight = pool.submit(writer.write_table, table.slice(offset, rows), row_group_size=chunk_rows)
                written += rows
                bar.update(rows)
            pending, pending_rows = [table.slice(full)], len(table) - full

        for block in event_blocks(config, world):
            pending.append(block)
            pending_rows += len(block)
            if pending_rows >= chunk_rows:
                flush(final=False)
        flush(final=True)
        if in_flight is not None:
            in_flight.result()
    return written
