"""Interaction logs: column roles, row validation and id encoding, streamed.

:func:`resolve_roles` decides which column holds the user, item, timestamp,
event type and weight (explicit settings first, then the names below, then
position for headerless files); :func:`read_events` streams a log through the
row checks of :mod:`kg.validate` into the shared :class:`kg.ids.IdEncoder` s
(int32 codes per batch) and compact per-event arrays (float32 weights, float64
timestamps). Memory is bounded by those, never by the raw text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from kg.errors import InputError, Rejections
from kg.ids import IdEncoder
from kg.readers import ParquetSource, TableSource
from kg.validate import id_column, number_column

__all__ = ["ROLE_ALIASES", "EventLog", "read_events", "resolve_roles"]

ROLES = ("user", "item", "timestamp", "event", "weight")
ROLE_ALIASES = {
    "user": ("user_id", "user", "userid", "uid", "customer_id", "customer", "visitor_id", "member_id", "account_id"),
    "item": (
        "item_id", "item", "itemid", "iid", "product_id", "product", "artist_id", "movie_id", "track_id",
        "song_id", "article_id", "sku",
    ),
    "timestamp": ("timestamp", "time", "ts", "datetime", "date", "event_time", "created_at", "unix_time"),
    "event": ("event", "event_type", "action", "behavior", "behaviour", "interaction", "event_name", "type"),
    "weight": (
        "weight", "rating", "count", "value", "score", "play_count", "listen_count", "plays", "quantity", "clicks",
    ),
}
_MAX_WEIGHT = float(np.finfo(np.float32).max)
# Headerless logs: the common layouts by number of columns.
_POSITIONAL = {2: ("user", "item"), 3: ("user", "item", "weight"), 4: ("user", "item", "weight", "timestamp")}


def resolve_roles(
    source: TableSource, explicit: Mapping[str, str | None]
) -> tuple[dict[str, str], dict[str, str]]:
    """Which column of ``source`` plays each role.

    Args:
        source: the opened log.
        explicit: ``{role: column or None}`` from the configuration; a column
            given here must exist.

    Returns:
        ``(roles, detected)``: ``{role: column}`` for the roles present and
        ``{role: column}`` for those found by detection rather than given.

    Raises:
        InputError: an explicit column is missing, no user or item column can be
            found, or two roles fall on one column.
    """
    columns = source.columns
    lowered = {c.lower(): c for c in columns}
    roles: dict[str, str] = {}
    detected: dict[str, str] = {}
    for role in ROLES:
        name = explicit.get(role)
        if name is not None:
            if name not in columns:
                raise InputError(
                    f"the {role} column {name!r} is not in the file; its columns are {columns}",
                    path=source.path,
                    column=name,
                )
            roles[role] = name
    headerless = all(c == f"column_{i + 1}" for i, c in enumerate(columns))
    if headerless and not roles:
        layout = _POSITIONAL.get(len(columns))
        if layout is None:
            raise InputError(
                f"a headerless log with {len(columns)} columns; name them with --columns "
                "(e.g. user,item,weight,timestamp) or map roles with --user-column/--item-column",
                path=source.path,
            )
        for role, column in zip(layout, columns):
            roles[role] = detected[role] = column
        return roles, detected
    taken = set(roles.values())
    for role in ROLES:
        if role in roles:
            continue
        for alias in ROLE_ALIASES[role]:
            column = lowered.get(alias)
            if column is not None and column not in taken:
                roles[role] = detected[role] = column
                taken.add(column)
                break
    for role in ("user", "item"):
        if role not in roles:
            raise InputError(
                f"no {role} column: expected one named {'/'.join(ROLE_ALIASES[role][:4])}/... "
                f"or --{role}-column; the file has columns {columns}",
                path=source.path,
            )
    used = list(roles.values())
    twice = sorted({c for c in used if used.count(c) > 1})
    if twice:
        raise InputError(f"column {twice[0]!r} is mapped to two roles; expected one role per column", path=source.path)
    return roles, detected


@dataclass
class EventLog:
    """Per-event arrays of one log file (kept rows only).

    ``user_batches`` / ``item_batches`` are :class:`kg.ids.IdEncoder` handles
    (read the final indices with ``encoder.codes(handles)`` after ``finish()``).

    Shapes:
        ``weight``, ``timestamp``: ``[num_events]``; ``timestamp`` is ``None``
        when the log has no timestamp column.
    """

    path: str
    user_batches: list[int]
    item_batches: list[int]
    weight: np.ndarray | None
    timestamp: np.ndarray | None
    rows_read: int
    roles: dict[str, str]
    detected: dict[str, str]
    event_counts: dict[str, int] = field(default_factory=dict)

    @property
    def num_events(self) -> int:
        return len(self.weight)

    def take_arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(weight, timestamp)``, handed over: the log keeps no reference (so they can be freed early)."""
        arrays = self.weight, self.timestamp
        self.weight = self.timestamp = None
        return arrays


def read_events(
    source: TableSource,
    *,
    users: IdEncoder,
    items: IdEncoder,
    rejections: Rejections,
    explicit_roles: Mapping[str, str | None],
    event_weights: Mapping[str, float],
    show_progress: bool = False,
    progress: Optional[Callable[..., Any]] = None,
) -> EventLog:
    """Stream a log into per-event arrays, validating every row.

    Per-event weight = event-type weight (``event_weights``; 1 when empty) times
    the weight column's value (1 when there is none).

    Args:
        source: the opened log.
        users, items: shared id encoders (the test file and side tables use the same).
        rejections: strict/lenient handling of bad rows.
        explicit_roles: ``{role: column or None}`` from the configuration.
        event_weights: weight per event type; when non-empty, an event type not
            listed is refused ("unknown event type").
        show_progress: a progress bar over the rows.
        progress: the bar's factory, called with tqdm's ``total``, ``unit``, ``unit_scale``,
            ``desc`` and ``disable`` (the CLI passes :func:`eval.progress.progress_bar`,
            which prints plain lines in a log); default ``tqdm``.

    Raises:
        InputError: see :func:`resolve_roles`; strict mode, the first bad row;
            a log without a single row.
    """
    roles, detected = resolve_roles(source, explicit_roles)
    path = os.fspath(source.path)
    needed = list(dict.fromkeys(roles.values()))
    if isinstance(source, ParquetSource):
        source.dictionary_columns = tuple(roles[r] for r in ("user", "item", "event") if r in roles)
    total = source.num_rows if isinstance(source, ParquetSource) else None
    columns = _EventColumns(total, with_time="timestamp" in roles)
    user_batches: list[int] = []
    item_batches: list[int] = []
    event_counts: dict[str, int] = {}
    rows = 0
    bar_factory = tqdm if progress is None else progress
    with bar_factory(
        total=total, unit="rows", unit_scale=True, desc=f"reading {source.path.name}", disable=not show_progress
    ) as bar:
        for chunk in source.batches(needed):
            rows += chunk.num_rows
            bar.update(chunk.num_rows)
            user_ids, keep = id_column(chunk, roles["user"], role="user id", path=path, rejections=rejections)
            item_ids, keep_item = id_column(chunk, roles["item"], role="item id", path=path, rejections=rejections)
            keep &= keep_item
            weight = np.ones(chunk.num_rows, dtype=np.float64)
            if "timestamp" in roles:
                times, keep_time = number_column(
                    chunk, roles["timestamp"], role="timestamp", path=path, rejections=rejections, dates=True
                )
                keep &= keep_time
            if "weight" in roles:
                values, keep_weight = number_column(
                    chunk, roles["weight"], role="weight", path=path, rejections=rejections, minimum=0.0
                )
                keep &= keep_weight
                weight = values
            if "event" in roles:
                events, keep_event = id_column(chunk, roles["event"], role="event type", path=path, rejections=rejections)
                keep &= keep_event
                factor, known = _event_factor(events, event_weights)
                unknown = keep & ~known
                if unknown.any():
                    rejections.reject(
                        path=path,
                        reason="unknown event type",
                        expected=f"one of the configured event types {sorted(event_weights)}",
                        lines=chunk.lines[unknown],
                        values=events.filter(pa.array(unknown)).slice(0, 3).to_pylist(),
                        column=roles["event"],
                    )
                    keep &= known
                weight = weight * factor
            huge = keep & (weight > _MAX_WEIGHT)
            if huge.any():
                # Weights are stored as float32: a larger one would silently become inf.
                rejections.reject(
                    path=path,
                    reason="weight out of range",
                    expected=f"a weight (times its event type's weight) <= {_MAX_WEIGHT:.4g}",
                    lines=chunk.lines[huge],
                    values=[float(v) for v in weight[huge][:3]],
                    column=roles.get("weight"),
                )
                keep &= ~huge
            if "event" in roles:
                _count_events(events, keep, event_counts)
            user_batches.append(users.add(user_ids, keep))
            item_batches.append(items.add(item_ids, keep))
            columns.append(weight[keep], times[keep] if "timestamp" in roles else None)
    if rows == 0:
        raise InputError("no interaction rows: expected at least one row after the header", path=path)
    weight, timestamp = columns.finish()
    # Hand the reader's buffers back to the OS: the compact arrays are all that stays.
    pa.default_memory_pool().release_unused()
    return EventLog(
        path=path,
        user_batches=user_batches,
        item_batches=item_batches,
        weight=weight,
        timestamp=timestamp,
        rows_read=rows,
        roles=roles,
        detected=detected,
        event_counts=event_counts,
    )


class _EventColumns:
    """Growing per-event weight and timestamp arrays: preallocated when the row count is
    known (Parquet), otherwise collected in parts and joined once."""

    def __init__(self, total: int | None, *, with_time: bool) -> None:
        self.total = total
        self.with_time = with_time
        self.filled = 0
        self.parts: list[tuple] = []
        if total is not None:
            self.weight = np.empty(total, np.float32)
            self.timestamp = np.empty(total, np.float64) if with_time else None

    def append(self, weight: np.ndarray, timestamp: np.ndarray | None) -> None:
        if self.total is None:
            self.parts.append((weight.astype(np.float32), timestamp))
            return
        start, stop = self.filled, self.filled + len(weight)
        self.weight[start:stop] = weight
        if self.timestamp is not None:
            self.timestamp[start:stop] = timestamp
        self.filled = stop

    def finish(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self.total is not None:
            return self.weight[: self.filled], None if self.timestamp is None else self.timestamp[: self.filled]
        parts, self.parts = self.parts, []
        weight = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.float32)
        timestamp = None
        if self.with_time:
            timestamp = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.float64)
        return weight, timestamp


def _event_factor(events: pa.DictionaryArray, event_weights: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row event weight and whether the event type is known (always, with no mapping)."""
    n = len(events)
    if not event_weights:
        return np.ones(n), np.ones(n, dtype=bool)
    names = events.dictionary.to_pylist()
    table = np.array([event_weights.get(name, np.nan) for name in names], dtype=np.float64)
    codes = pc.fill_null(events.indices, 0).to_numpy(zero_copy_only=False)
    factor = table[codes] if len(table) else np.full(n, np.nan)
    known = np.isfinite(factor)
    return np.where(known, factor, 0.0), known


def _count_events(events: pa.DictionaryArray, keep: np.ndarray, counts: dict[str, int]) -> None:
    codes = pc.fill_null(events.indices, 0).to_numpy(zero_copy_only=False)[keep]
    per_code = np.bincount(codes, minlength=len(events.dictionary))
    for name, count in zip(events.dictionary.to_pylist(), per_code.tolist()):
        if count:
            counts[name] = counts.get(name, 0) + int(count)
