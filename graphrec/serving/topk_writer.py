"""Streaming, atomic writing of top-K lists as ``user,item,rank,score`` rows.

:class:`RecommendationWriter` takes one batch of ranked lists at a time (what
:func:`eval.ranking.iter_topk` yields, with internal indices already mapped to
external ids) and appends it to a Parquet, CSV or JSON-lines file. It holds no
more than the batch being written, so memory does not grow with the number of
users.

Rows are ``user`` (string), ``item`` (string), ``rank`` (int32, from 1) and
``score`` (float32), one row per recommended item, in the order given. The file
is written under a temporary name in the destination's directory and renamed
into place only when the ``with`` block ends without an exception; otherwise the
temporary file is removed and an existing file at the destination is untouched.
The Parquet and CSV outputs are what :func:`eval.recfile.read_recommendations`
reads (``python -m graphrec.evaluate --recommendations FILE``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kg.artifact import atomic_file

__all__ = ["FORMATS", "SCHEMA", "RecommendationWriter", "format_from_path"]

SCHEMA = pa.schema(
    [
        pa.field("user", pa.string(), nullable=False),
        pa.field("item", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
    ]
)
"""Columns of every recommendations file this module writes."""

FORMATS = ("parquet", "csv", "jsonl")

_SUFFIXES = {
    (".parquet",): ("parquet", None),
    (".pq",): ("parquet", None),
    (".csv",): ("csv", None),
    (".csv", ".gz"): ("csv", "gzip"),
    (".jsonl",): ("jsonl", None),
    (".ndjson",): ("jsonl", None),
    (".jsonl", ".gz"): ("jsonl", "gzip"),
}


def format_from_path(path: str | os.PathLike) -> tuple[str, Optional[str]]:
    """The output format and stream compression a file name asks for.

    Args:
        path: a file name ending in ``.parquet``/``.pq``, ``.csv``, ``.csv.gz``,
            ``.jsonl``/``.ndjson`` or ``.jsonl.gz`` (case-insensitive).

    Returns:
        ``(format, compression)``: format one of :data:`FORMATS`, compression
        ``"gzip"`` or ``None``.

    Raises:
        ValueError: the suffix is none of the above.
    """
    suffixes = tuple(s.lower() for s in Path(path).suffixes)
    for length in (2, 1):
        found = _SUFFIXES.get(suffixes[-length:]) if len(suffixes) >= length else None
        if found is not None:
            return found
    shown = "".join(suffixes) or "(no suffix)"
    raise ValueError(
        f"{path}: cannot tell the recommendations format from the suffix {shown}; use .parquet, .csv, "
        f".csv.gz, .jsonl or .jsonl.gz, or name the format (--format parquet|csv|jsonl on the command line, "
        f"format='parquet'|'csv'|'jsonl' in Python)"
    )


def _ids(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as a numpy array of text (ints and the like are converted)."""
    if values.dtype.kind in "US":
        return values.astype(str, copy=False)
    if values.dtype.kind == "O":
        if values.size and not all(isinstance(v, str) for v in values.flat):
            bad = next(v for v in values.flat if not isinstance(v, str))
            raise TypeError(f"{name} must hold strings (external ids), found {type(bad).__name__} {bad!r}")
        return values
    if values.dtype.kind in "iu":
        return values.astype(str)
    raise TypeError(f"{name} must hold external ids as strings, got dtype {values.dtype}")


def _json_strings(values: np.ndarray) -> pa.Array:
    """Each distinct value JSON-encoded once (escapes, quotes), as a pyarrow string array."""
    distinct, inverse = np.unique(values, return_inverse=True)
    encoded = pa.array([json.dumps(str(v), ensure_ascii=False) for v in distinct], type=pa.string())
    return encoded.take(pa.array(inverse.ravel().astype(np.int64)))


class RecommendationWriter:
    """Stream ranked lists into a ``.parquet``, ``.csv`` or ``.jsonl`` file, atomically.

    Use it as a context manager; call :meth:`write_batch` any number of times
    inside. Nothing appears at ``path`` until the block exits cleanly.

    Example::

        with RecommendationWriter("recs.parquet") as out:
            for users, items, scores in iter_topk(scorer, all_users, 20, exclude=train):
                out.write_batch(user_ids[users], item_ids[np.maximum(items, 0)], scores,
                                counts=(items >= 0).sum(axis=1))

    JSON lines hold one object per row: ``{"user": .., "item": .., "rank": .., "score": ..}``.
    CSV has a header row and quotes ids only where needed.

    Args:
        path: destination file; its parent directory is created if missing.
        format: ``"parquet"``, ``"csv"`` or ``"jsonl"``; by default taken from the
            suffix (see :func:`format_from_path`; ``.gz`` after ``.csv``/``.jsonl``
            gzips the stream).
        compression: Parquet column compression (default ``"snappy"``); ignored
            for the text formats.

    Raises:
        ValueError: unknown ``format`` or, without one, an unknown suffix.
    """

    def __init__(
        self, path: str | os.PathLike, *, format: Optional[str] = None, compression: Optional[str] = "snappy"
    ) -> None:
        self.path = Path(path)
        if format is None:
            self.format, self._stream_compression = format_from_path(self.path)
        else:
            if format not in FORMATS:
                raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
            self.format = format
            gz = self.path.suffix.lower() == ".gz" and format != "parquet"
            self._stream_compression = "gzip" if gz else None
        self._compression = compression
        self.rows_written = 0
        self.users_written = 0
        self._stack: Optional[contextlib.ExitStack] = None
        self._sink = None
        self._writer = None

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> "RecommendationWriter":
        if self._stack is not None:
            raise RuntimeError(f"RecommendationWriter for {self.path} is already open")
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(atomic_file(self.path, exclusive=True))
            if self.format == "parquet":
                self._writer = pq.ParquetWriter(tmp, SCHEMA, compression=self._compression)
            else:
                sink = pa.OSFile(str(tmp), "wb")
                if self._stream_compression:
                    sink = pa.CompressedOutputStream(sink, self._stream_compression)
                self._sink = sink
                if self.format == "csv":
                    self._writer = pacsv.CSVWriter(sink, SCHEMA)
        except BaseException:
            self._close_quietly()
            stack.__exit__(*sys.exc_info())
            raise
        self._stack = stack
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        stack, self._stack = self._stack, None
        if stack is None:
            return False
        if exc_type is None:
            try:
                self._close()
            except BaseException:
                self._close_quietly()
                stack.__exit__(*sys.exc_info())  # removes the temporary file
                raise
            stack.__exit__(None, None, None)  # renames it into place
            return False
        self._close_quietly()
        stack.__exit__(exc_type, exc, tb)
        return False

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        sink, self._sink = self._sink, None
        if writer is not None:
            writer.close()
        if sink is not None:
            sink.close()

    def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self._close()

    # -- writing -----------------------------------------------------------------------------

    def write_batch(
        self,
        users: np.ndarray,
        items: np.ndarray,
        scores: np.ndarray,
        counts: Optional[np.ndarray] = None,
    ) -> int:
        """Append one batch of ranked lists.

        Args:
            users: external user ids, ``[B]`` (strings; integer ids are converted).
            items: external item ids by rank, ``[B, k]``.
            scores: ``[B, k]`` numbers, written as float32.
            counts: optional ``[B]`` number of valid leading entries per row
                (0..k); the rest of the row (e.g. ``-1``/``-inf`` padding) is not
                written. Default: every entry is valid.

        Returns:
            The number of rows written for this batch.

        Raises:
            RuntimeError: the writer is not open (use it in a ``with`` block).
            ValueError: shapes disagree, ``counts`` out of range, an empty id or
                a non-finite score among the valid entries.
            TypeError: ids that are not strings (or integers).
        """
        if self._stack is None:
            raise RuntimeError("RecommendationWriter.write_batch called outside its `with` block")
        users = _ids(np.asarray(users), "users")
        items = _ids(np.asarray(items), "items")
        scores = np.asarray(scores)
        if users.ndim != 1:
            raise ValueError(f"users must be 1-d [B], got shape {users.shape}")
        n_rows = len(users)
        if items.ndim != 2 or items.shape[0] != n_rows:
            raise ValueError(f"items must have shape [B={n_rows}, k], got {items.shape}")
        if scores.shape != items.shape:
            raise ValueError(f"scores must have the shape of items {items.shape}, got {scores.shape}")
        if not np.issubdtype(scores.dtype, np.number):
            raise TypeError(f"scores must be numbers, got dtype {scores.dtype}")
        k = items.shape[1]
        if counts is None:
            valid = None
            counts = np.full(n_rows, k, dtype=np.int64)
        else:
            counts = np.asarray(counts)
            if counts.shape != (n_rows,) or not np.issubdtype(counts.dtype, np.integer):
                raise ValueError(f"counts must be integers of shape [{n_rows}], got {counts.dtype} {counts.shape}")
            if n_rows and (counts.min() < 0 or counts.max() > k):
                raise ValueError(f"counts must lie in [0, {k}], got min {counts.min()} max {counts.max()}")
            counts = counts.astype(np.int64)
            valid = np.arange(k)[None, :] < counts[:, None]

        flat_items = items.ravel() if valid is None else items[valid]
        flat_scores = (scores.ravel() if valid is None else scores[valid]).astype(np.float32)
        bad = ~np.isfinite(flat_scores)
        if bad.any():
            row = int(np.repeat(np.arange(n_rows), counts)[np.flatnonzero(bad)[0]])
            raise ValueError(
                f"score of user {users[row]!r} is not finite ({int(bad.sum())} such entries in the batch); "
                "pass counts to leave out -inf padding"
            )
        for name, values in (("users", users), ("items", flat_items)):
            empty = values == ""
            if np.any(empty):
                raise ValueError(f"{name} holds {int(np.sum(empty))} empty ids; ids must be non-empty text")
        flat_users = np.repeat(users, counts)
        ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), (n_rows, 1))
        flat_ranks = ranks.ravel() if valid is None else ranks[valid]
        if not len(flat_users):
            self.users_written += n_rows
            return 0

        if self.format == "jsonl":
            self._write_jsonl(flat_users, flat_items, flat_ranks, flat_scores)
        else:
            table = pa.Table.from_arrays(
                [
                    pa.array(flat_users, type=pa.string()),
                    pa.array(flat_items, type=pa.string()),
                    pa.array(flat_ranks, type=pa.int32()),
                    pa.array(flat_scores, type=pa.float32()),
                ],
                schema=SCHEMA,
            )
            self._writer.write_table(table)
        self.rows_written += len(flat_users)
        self.users_written += n_rows
        return len(flat_users)

    def write_topk(
        self,
        users: np.ndarray,
        items: np.ndarray,
        scores: np.ndarray,
        *,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
    ) -> int:
        """Append one batch as yielded by :func:`eval.ranking.iter_topk` (internal indices).

        Args:
            users: internal user indices ``[B]``.
            items: internal item indices ``[B, k]``, ``-1`` padding at the end of a row.
            scores: ``[B, k]`` (``-inf`` at padding).
            user_ids: external user ids by internal index (numpy array).
            item_ids: external item ids by internal index (numpy array).

        Returns:
            The number of rows written.

        Raises:
            ValueError: padding followed by an item, or as :meth:`write_batch`.
            IndexError: an index outside ``user_ids`` / ``item_ids``.
        """
        items = np.asarray(items)
        if items.ndim != 2:
            raise ValueError(f"items must have shape [B, k], got {items.shape}")
        listed = items >= 0
        if (~listed[:, :-1] & listed[:, 1:]).any():
            raise ValueError("items has an item after -1 padding; padding must come at the end of a row")
        user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
        return self.write_batch(
            user_ids[np.asarray(users)], item_ids[np.maximum(items, 0)], scores, counts=listed.sum(axis=1)
        )

    def _write_jsonl(self, users: np.ndarray, items: np.ndarray, ranks: np.ndarray, scores: np.ndarray) -> None:
        # Floats go through Arrow's shortest round-trip formatting, so a float32 reads back exactly.
        lines = pc.binary_join_element_wise(
            '{"user": ',
            _json_strings(users),
            ', "item": ',
            _json_strings(items),
            ', "rank": ',
            pc.cast(pa.array(ranks, type=pa.int32()), pa.string()),
            ', "score": ',
            pc.cast(pa.array(scores, type=pa.float32()), pa.string()),
            "}\n",
            "",
        )
        for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
            # The data buffer of a string array is its rows back to back: exactly the file's bytes.
            offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)
            start, stop = int(offsets[chunk.offset]), int(offsets[chunk.offset + len(chunk)])
            self._sink.write(chunk.buffers()[2][start:stop])
