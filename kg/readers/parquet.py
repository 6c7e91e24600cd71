"""Parquet files, streamed in record batches with their 1-based row numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kg.errors import InputError
from kg.readers.base import Chunk, TableSource

__all__ = ["ParquetSource", "open_parquet"]


class ParquetSource(TableSource):
    """A Parquet file; construct with :func:`open_parquet`.

    Columns keep their stored Arrow types. ``dictionary_columns`` are read
    dictionary-encoded, which lets id mapping work on each row group's distinct
    values instead of every row's string.
    """

    def __init__(self, path: Path, *, columns: list[str], num_rows: int, batch_rows: int) -> None:
        super().__init__(path=path, columns=columns, line_kind="row")
        self.num_rows = num_rows
        self.batch_rows = batch_rows
        self.dictionary_columns: tuple[str, ...] = ()

    def _batches(self, columns: list[str]) -> Iterator[Chunk]:
        dictionary = [c for c in self.dictionary_columns if c in columns]
        try:
            # pre_buffer would cache every row group read so far for the file's lifetime
            # (hundreds of MB on a 20M-row log); streaming wants each batch freed after use.
            handle = pq.ParquetFile(self.path, read_dictionary=dictionary or None, pre_buffer=False)
            start = 1
            for batch in handle.iter_batches(batch_size=self.batch_rows, columns=columns, use_threads=True):
                n = batch.num_rows
                yield Chunk(pa.Table.from_batches([batch]), np.arange(start, start + n, dtype=np.int64))
                start += n
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read Parquet data ({exc})", path=self.path) from None


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
    return ParquetSource(path, columns=list(schema.names), num_rows=meta.num_rows, batch_rows=batch_rows)
