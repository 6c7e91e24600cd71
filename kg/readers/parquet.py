"""Parquet files, streamed in record batches with their 1-based row numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kg.errors import InputError
from kg.readers.base import Chunk, TableSource, value_text

__all__ = ["ParquetSource", "open_parquet"]


class ParquetSource(TableSource):
    """A Parquet file; construct with :func:`open_parquet`.

    Columns keep their stored Arrow types. ``dictionary_columns`` are read
    dictionary-encoded, which lets id mapping work on each row group's distinct
    values instead of every row's string.
    """

    def __init__(self, path: Path, *, schema: pa.Schema, num_rows: int, batch_rows: int) -> None:
        super().__init__(path=path, columns=list(schema.names), line_kind="row")
        self.schema = schema
        # A list column is a multi-valued attribute, as a JSON array is.
        self.types = {f.name: "list" for f in schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)}
        self.num_rows = num_rows
        self.batch_rows = batch_rows
        self.dictionary_columns: tuple[str, ...] = ()

    def _batches(self, columns: list[str]) -> Iterator[Chunk]:
        # Dictionary reading is for flat columns only (pyarrow cannot dictionary-read a list).
        dictionary = [c for c in self.dictionary_columns if c in columns and not _is_nested(self.schema.field(c).type)]
        try:
            # pre_buffer would cache every row group read so far for the file's lifetime
            # (hundreds of MB on a 20M-row log); streaming wants each batch freed after use.
            handle = pq.ParquetFile(self.path, read_dictionary=dictionary or None, pre_buffer=False)
            start = 1
            for batch in handle.iter_batches(batch_size=self.batch_rows, columns=columns, use_threads=True):
                n = batch.num_rows
                lines = np.arange(start, start + n, dtype=np.int64)
                start += n
                yield _flatten_nested(pa.Table.from_batches([batch]), lines)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read Parquet data ({exc})", path=self.path) from None


def _is_nested(data_type: pa.DataType) -> bool:
    return pa.types.is_nested(data_type) or (
        pa.types.is_dictionary(data_type) and pa.types.is_nested(data_type.value_type)
    )


def _flatten_nested(table: pa.Table, lines: np.ndarray) -> Chunk:
    """Lists, structs and maps as text (``|``-joined lists, JSON objects), their rows marked in ``nested``.

    Attribute columns then read them like JSON Lines arrays; id checks refuse them.
    """
    nested = {}
    for index, name in enumerate(table.column_names):
        column = table.column(name)
        if not _is_nested(column.type):
            continue
        values = column.to_pylist()
        texts = [None if v is None else value_text(v) for v in values]
        nested[name] = np.array([v is not None for v in values], dtype=bool)
        table = table.set_column(index, name, pa.array(texts, pa.string()))
    return Chunk(table, lines, nested)


def open_parquet(path: str | Path, *, batch_rows: int = 1_000_000) -> ParquetSource:
    """Open a Parquet file.

    Args:
        path: the file.
        batch_rows: rows per batch.

    Raises:
        InputError: missing file or not a Parquet file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    try:
        meta = pq.read_metadata(path)
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"not a readable Parquet file ({exc}); expected Parquet", path=path) from None
    return ParquetSource(path, schema=schema, num_rows=meta.num_rows, batch_rows=batch_rows)
