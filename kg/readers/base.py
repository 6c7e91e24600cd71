"""What every reader yields: batches of columns with the line number of each row.

A :class:`TableSource` is an opened input file: its column names, the types a
typed header declared (RecBole ``name:type``), and a generator of
:class:`Chunk` batches. Text formats yield string columns (so that ids such as
``"007"`` survive and every value goes through the same validation); Parquet
yields the stored Arrow types. ``lines`` carries, per row, the 1-based physical
line of a text file (the header line counted) or the 1-based row of a Parquet
file, so any later check can name the offending row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa

from kg.errors import InputError

__all__ = ["Chunk", "TableSource"]


@dataclass
class Chunk:
    """One batch of rows.

    Attributes:
        table: the requested columns.
        lines: line (text) or row (Parquet) number of every row, int64.

    Shapes:
        ``lines``: ``[table.num_rows]``
    """

    table: pa.Table
    lines: np.ndarray

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def filter(self, keep: np.ndarray) -> "Chunk":
        """The rows where ``keep`` is true."""
        if keep.all():
            return self
        return Chunk(self.table.filter(pa.array(keep)), self.lines[keep])


@dataclass
class TableSource:
    """An opened input file. Subclasses implement :meth:`_batches`.

    Attributes:
        path: the file.
        columns: column names, in file order (declared types stripped).
        types: declared type per column where the file declares one
            (RecBole ``token``/``token_seq``/``float``; ``list`` for JSON arrays).
        line_kind: ``"line"`` for text files, ``"row"`` for Parquet.
        notes: facts worth reporting that are not rejections (blank lines skipped,
            what was detected), filled while opening and reading.
    """

    path: Path
    columns: list[str]
    types: dict[str, str] = field(default_factory=dict)
    line_kind: str = "line"
    notes: dict[str, object] = field(default_factory=dict)

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[Chunk]:
        """Yield :class:`Chunk` batches holding ``columns`` (default: all).

        Raises:
            InputError: a requested column is not in the file (naming the ones that are),
                or the file cannot be parsed (naming the line).
        """
        wanted = list(self.columns if columns is None else columns)
        missing = [c for c in wanted if c not in self.columns]
        if missing:
            raise InputError(
                f"no column {missing[0]!r}; the file has columns {self.columns}",
                path=self.path,
                column=missing[0],
            )
        yield from self._batches(wanted)

    def read_all(self, columns: Sequence[str] | None = None) -> Chunk:
        """Every row in one :class:`Chunk` (for side tables, which are small)."""
        chunks = list(self.batches(columns))
        wanted = list(self.columns if columns is None else columns)
        if not chunks:
            empty = pa.table({c: pa.array([], pa.string()) for c in wanted})
            return Chunk(empty, np.empty(0, np.int64))
        table = pa.concat_tables([c.table for c in chunks], promote_options="permissive")
        return Chunk(table, np.concatenate([c.lines for c in chunks]))

    def _batches(self, columns: list[str]) -> Iterator[Chunk]:
        raise NotImplementedError
