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

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

from kg.errors import InputError

__all__ = ["LIST_SEPARATOR", "Chunk", "TableSource", "value_text"]

LIST_SEPARATOR = "|"


def value_text(value: Any) -> str | None:
    """A parsed cell (JSON value, Parquet Python value) as the text every reader yields.

    ``None``, NaN and infinities are missing; booleans are ``true``/``false``;
    lists are ``|``-joined; objects (and anything else) are compact JSON.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return LIST_SEPARATOR.join("" if v is None else str(value_text(v)) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return json.dumps(value, default=str)


@dataclass
class Chunk:
    """One batch of rows.

    Attributes:
        table: the requested columns.
        lines: line (text) or row (Parquet) number of every row, int64.
        nested: ``{column: mask}`` of the rows whose cell held a list or an
            object (a JSON array/object, a Parquet list/struct/map), now
            flattened to text; an id check refuses those rows.

    Shapes:
        ``lines`` and every ``nested`` mask: ``[table.num_rows]``
    """

    table: pa.Table
    lines: np.ndarray
    nested: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def filter(self, keep: np.ndarray) -> "Chunk":
        """The rows where ``keep`` is true."""
        if keep.all():
            return self
        nested = {c: mask[keep] for c, mask in self.nested.items()}
        return Chunk(self.table.filter(pa.array(keep)), self.lines[keep], nested)


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
        nested = {
            column: np.concatenate([c.nested.get(column, np.zeros(c.num_rows, bool)) for c in chunks])
            for column in {name for c in chunks for name in c.nested}
        }
        return Chunk(table, np.concatenate([c.lines for c in chunks]), nested)

    def _batches(self, columns: list[str]) -> Iterator[Chunk]:
        raise NotImplementedError
