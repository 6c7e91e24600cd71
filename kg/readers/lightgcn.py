"""The LightGCN / KGAT text format: ``user item item ...`` per line.

Each line lists one user and the items they interacted with, separated by
white space; the test set is a second file in the same format. Ids are
non-negative integers: a line whose user is not one is refused whole ("non-integer
user id"), an item token that is not one is refused alone ("non-integer item id").
A line that names a user and no item is counted in ``notes`` (it declares no interaction).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from kg.errors import InputError, Rejections
from kg.readers.base import Chunk, TableSource

__all__ = ["LightGCNSource", "open_lightgcn", "looks_like_lightgcn"]

# A line of non-negative integers only: the fast path (no per-token check).
_INTEGERS = re.compile(rb"^[0-9 \t\r\n\f\v]*$")


class LightGCNSource(TableSource):
    """A LightGCN-format file yielding ``user`` and ``item`` string columns; see :func:`open_lightgcn`."""

    def __init__(self, path: Path, *, encoding: str, batch_rows: int, rejections: Rejections) -> None:
        super().__init__(path=path, columns=["user", "item"], line_kind="line")
        self.encoding = encoding
        self.batch_rows = batch_rows
        self.rejections = rejections

    def _batches(self, columns: list[str]) -> Iterator[Chunk]:
        users: list[str] = []
        items: list[str] = []
        lines: list[int] = []
        without_items = 0
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    fields = raw.decode(self.encoding).split()
                except UnicodeError:
                    self.rejections.reject(
                        path=self.path, reason="invalid encoding",
                        expected=f"{self.encoding} text (pass --encoding for other encodings)",
                        lines=[number], values=[raw[:60]],
                    )
                    continue
                if not fields:
                    continue
                if not _INTEGERS.match(raw):
                    fields = self._integer_fields(fields, number)
                    if fields is None:
                        continue
                if len(fields) == 1:
                    without_items += 1
                    continue
                users.extend([fields[0]] * (len(fields) - 1))
                items.extend(fields[1:])
                lines.extend([number] * (len(fields) - 1))
                if len(lines) >= self.batch_rows:
                    yield self._chunk(users, items, lines, columns)
                    users, items, lines = [], [], []
        if lines:
            yield self._chunk(users, items, lines, columns)
        if without_items:
            self.notes["lines with a user and no items"] = without_items

    def _integer_fields(self, fields: list[str], number: int) -> list[str] | None:
        """The line's integer tokens; refuses the line (bad user) or each bad item token.

        Returns ``None`` when the user token is not an integer (the whole line is refused).
        """
        if not fields[0].isdecimal() or not fields[0].isascii():
            self.rejections.reject(
                path=self.path, reason="non-integer user id", expected="a non-negative integer user id first on the line",
                lines=[number], values=[fields[0]], count=len(fields) - 1 or 1,
            )
            return None
        bad = [f for f in fields[1:] if not (f.isdecimal() and f.isascii())]
        if bad:
            self.rejections.reject(
                path=self.path, reason="non-integer item id", expected="non-negative integer item ids after the user id",
                lines=[number] * len(bad), values=bad,
            )
        return [fields[0]] + [f for f in fields[1:] if f.isdecimal() and f.isascii()]

    @staticmethod
    def _chunk(users: list[str], items: list[str], lines: list[int], columns: list[str]) -> Chunk:
        table = pa.table({"user": pa.array(users, pa.string()), "item": pa.array(items, pa.string())})
        return Chunk(table.select(columns), np.asarray(lines, dtype=np.int64))


def looks_like_lightgcn(first_lines: list[str]) -> bool:
    """Space-separated lines of varying length, or longer than four fields: the LightGCN layout."""
    if not first_lines or any("\t" in line or "," in line for line in first_lines):
        return False
    widths = {len(line.split()) for line in first_lines}
    return len(widths) > 1 or max(widths) > 4


def open_lightgcn(path: str | Path, *, rejections: Rejections, encoding: str = "utf-8", batch_rows: int = 1_000_000) -> LightGCNSource:
    """Open a LightGCN-format file.

    Raises:
        InputError: missing or empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    with open(path, "rb") as handle:
        if not any(raw.strip() for raw in handle):
            raise InputError("empty file: expected lines of 'user item item ...'", path=path)
    return LightGCNSource(path, encoding=encoding, batch_rows=batch_rows, rejections=rejections)
