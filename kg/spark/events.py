"""Interaction logs read and validated on Spark executors.

The driver opens the file with :func:`kg.readers.open_table` (only its head is
read: delimiter, header, column names) and resolves the column roles with
:func:`kg.interactions.resolve_roles`; Spark then reads the whole file, and every
Arrow batch goes through :func:`kg.interactions.read_events`, the default
engine's own row checks, on an executor. So the rejection reasons (``missing
user id``, ``non-numeric weight``, ``weight below 0``, ``timestamp out of
range``, ``unknown event type``, ...) and the per-event weights are the same by
construction. What differs: line numbers are unknown on an executor (reported
as -1), and a row Spark's CSV parser cannot split is read with empty cells
(refused as missing values) instead of being refused as a malformed line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from kg.errors import InputError, Rejections
from kg.ids import IdEncoder
from kg.interactions import read_events
from kg.readers.base import Chunk, TableSource

__all__ = ["EVENT_SCHEMA", "SparkLog", "read_log"]

EVENT, REJECTED, EVENT_TYPE, ROWS = 0, 1, 2, 3
EVENT_SCHEMA = (
    "kind int, user string, item string, weight float, timestamp double, reason string, col string, example string, n long"
)


class _BatchSource(TableSource):
    """One Arrow batch posing as an opened file, for :func:`read_events`."""

    def __init__(self, table: pa.Table, path: str, types: dict[str, str]) -> None:
        super().__init__(path=Path(path), columns=list(table.column_names), types=types, line_kind="line", notes={})
        self.table = table

    def _batches(self, columns: list[str]) -> Iterator[Chunk]:
        yield Chunk(self.table.select(columns), np.full(self.table.num_rows, -1, np.int64))


def _validate_batches(path: str, roles: dict[str, str], event_weights: Mapping[str, float], types: dict[str, str]):
    """The ``mapInArrow`` function: kept events plus per-batch rejection and event-type counts."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            rejections = Rejections(lenient=True, max_examples=1)
            users, items = IdEncoder("user"), IdEncoder("item")
            log = read_events(
                _BatchSource(pa.Table.from_batches([batch]), path, types), users=users, items=items,
                rejections=rejections, explicit_roles=roles, event_weights=event_weights,
            )
            users.finish()
            items.finish()
            weight, timestamp = log.take_arrays()
            n = len(weight)
            out = {
                "kind": np.full(n, EVENT, np.int32),
                "user": users.ids.take(pa.array(users.codes(log.user_batches))),
                "item": items.ids.take(pa.array(items.codes(log.item_batches))),
                "weight": weight.astype(np.float32),
                "timestamp": np.full(n, np.nan) if timestamp is None else timestamp,
            }
            stats = [(ROWS, None, None, None, log.rows_read)]
            stats += [(EVENT_TYPE, None, None, name, count) for name, count in log.event_counts.items()]
            examples = rejections.examples().get(path, {})
            for reason, count in rejections.report().get(path, {}).items():
                example = (examples.get(reason) or [{}])[0]
                value = example.get("value")
                stats.append((REJECTED, reason, example.get("column"), None if value is None else str(value), count))
            m = len(stats)
            table = pa.table({
                "kind": np.concatenate([out["kind"], np.array([s[0] for s in stats], np.int32)]),
                "user": pa.concat_arrays([out["user"].cast(pa.string()), pa.nulls(m, pa.string())]),
                "item": pa.concat_arrays([out["item"].cast(pa.string()), pa.nulls(m, pa.string())]),
                "weight": np.concatenate([out["weight"], np.zeros(m, np.float32)]),
                "timestamp": np.concatenate([out["timestamp"], np.full(m, np.nan)]),
                "reason": pa.array([None] * n + [s[1] for s in stats], pa.string()),
                "col": pa.array([None] * n + [s[2] for s in stats], pa.string()),
                "example": pa.array([None] * n + [s[3] for s in stats], pa.string()),
                "n": np.concatenate([np.ones(n, np.int64), np.array([s[4] for s in stats], np.int64)]),
            })
            yield from table.to_batches()

    return run


class SparkLog:
    """One validated log: the kept events as a Spark DataFrame and what the default
    engine's :class:`kg.interactions.EventLog` records about the file.

    Attributes:
        events: DataFrame ``(user string, item string, weight float, timestamp double)``.
        roles, detected, rows_read, event_counts: as in :class:`kg.interactions.EventLog`.
        has_timestamp: whether the log has a timestamp column.
    """

    def __init__(self, path: str, events: Any, roles: dict, detected: dict, rows_read: int, event_counts: dict) -> None:
        self.path = path
        self.events = events
        self.roles = roles
        self.detected = detected
        self.rows_read = rows_read
        self.event_counts = event_counts

    @property
    def has_timestamp(self) -> bool:
        return "timestamp" in self.roles


def read_frame(spark: Any, source: TableSource, *, encoding: str) -> Any:
    """The whole file as a Spark DataFrame with ``source.columns`` (text formats: every cell a string)."""
    path = os.fspath(source.path)
    fmt = source.notes.get("format")
    if fmt == "parquet":
        return spark.read.parquet(path)
    if fmt == "jsonl":
        return spark.read.json(path, encoding=encoding)
    if fmt in ("csv", "tsv", "recbole"):
        frame = spark.read.csv(
            path, sep=source.delimiter, header=bool(source.header), encoding=encoding, inferSchema=False,
            mode="PERMISSIVE", ignoreLeadingWhiteSpace=False, ignoreTrailingWhiteSpace=False,
        )
        return frame.toDF(*source.columns)
    raise ValueError(f"--engine spark reads csv, tsv, recbole, parquet and jsonl logs; {path} is {fmt}")


def read_log(spark: Any, source: TableSource, *, roles: dict, detected: dict, config: Any, rejections: Rejections) -> SparkLog:
    """Read and validate one log on the executors.

    Args:
        spark: the session.
        source: the log opened on the driver (:func:`kg.readers.open_table`).
        roles, detected: from :func:`kg.interactions.resolve_roles`.
        config: the :class:`kg.BuildConfig` (encoding, event weights).
        rejections: the build's; per-reason counts are added to it (strict mode: the
            first reason raises, naming an example value).

    Raises:
        InputError: strict mode and a refused row; a log without rows.
    """
    from pyspark import StorageLevel

    path = os.fspath(source.path)
    frame = read_frame(spark, source, encoding=config.encoding)
    needed = list(dict.fromkeys(roles.values()))
    validated = frame.select(*needed).mapInArrow(
        _validate_batches(path, dict(roles), dict(config.event_weights), dict(source.types)), EVENT_SCHEMA
    ).persist(StorageLevel.MEMORY_AND_DISK)
    stats = (
        validated.where(f"kind != {EVENT}").groupBy("kind", "reason", "col", "example").sum("n").collect()
    )
    rows_read, event_counts, refused = 0, {}, {}
    for row in stats:
        count = int(row["sum(n)"])
        if row["kind"] == ROWS:
            rows_read += count
        elif row["kind"] == EVENT_TYPE:
            event_counts[row["example"]] = event_counts.get(row["example"], 0) + count
        else:
            total, column, example = refused.get(row["reason"], (0, row["col"], row["example"]))
            refused[row["reason"]] = (total + count, column, example)
    if rows_read == 0:
        raise InputError("no interaction rows: expected at least one row after the header", path=path)
    for reason in sorted(refused):
        count, column, example = refused[reason]
        if not rejections.lenient:
            raise InputError(
                f"{reason}: {count} row(s), e.g. value {example!r} (line numbers are not known on Spark executors; "
                "the default engine names them); fix those rows or pass --lenient to skip them",
                path=path, column=column,
            )
        rejections.reject(path=path, reason=reason, expected="see the default engine's message", lines=None,
                          count=count, values=[example], column=column)
    events = validated.where(f"kind = {EVENT}").select("user", "item", "weight", "timestamp")
    return SparkLog(path, events, roles, detected, rows_read, dict(sorted(event_counts.items())))
