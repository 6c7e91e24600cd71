"""JSON Lines: one JSON object per line, read in batches of lines.

Values become strings, like every text format (numbers keep their JSON
spelling, ``true``/``false`` stay words, ``null`` and absent keys are missing);
JSON arrays become ``|``-joined strings and their column is typed ``list`` so
attribute detection splits them again. The columns are the keys seen in the
first 1,000 objects; keys first seen later are listed in ``notes``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from kg.errors import InputError, Rejections
from kg.readers.base import LIST_SEPARATOR, Chunk, TableSource, value_text

__all__ = ["JsonlSource", "open_jsonl", "LIST_SEPARATOR"]

_PEEK_OBJECTS = 1000


def _is_nested(value: Any) -> bool:
    return isinstance(value, (list, dict))


class JsonlSource(TableSource):
    """A JSON Lines file; construct with :func:`open_jsonl`."""

    def __init__(
        self, path: Path, *, columns: list[str], types: dict[str, str], encoding: str, batch_rows: int, rejections: Rejections
    ) -> None:
        super().__init__(path=path, columns=columns, types=types, line_kind="line")
        self.encoding = encoding
        self.batch_rows = batch_rows
        self.rejections = rejections

    def _parsed(self) -> Iterator[tuple[int, dict]]:
        """(line number, object) for every non-blank line that parses; refuses the others."""
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode(self.encoding)
                except UnicodeError:
                    self.rejections.reject(
                        path=self.path,
                        reason="invalid encoding",
                        expected=f"{self.encoding} text (pass --encoding for other encodings)",
                        lines=[number],
                        values=[raw[:60]],
                    )
                    continue
                if number == 1:
                    text = text.lstrip("\ufeff")
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except (ValueError, RecursionError) as exc:
                    # JSONDecodeError, an integer past Python's digit limit, absurd nesting.
                    why = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__ + ": " + str(exc)[:80]
                    self.rejections.reject(
                        path=self.path, reason="invalid JSON", expected=f"a JSON object ({why})",
                        lines=[number], values=[text.strip()],
                    )
                    continue
                if not isinstance(obj, dict):
                    self.rejections.reject(
                        path=self.path, reason="not a JSON object", expected="a JSON object per line",
                        lines=[number], values=[text.strip()],
                    )
                    continue
                yield number, obj

    def _batches(self, columns: list[str]) -> Iterator[Chunk]:
        values: dict[str, list] = {c: [] for c in columns}
        nested: dict[str, list] = {c: [] for c in columns}
        lines: list[int] = []
        unseen: set[str] = set()
        known = set(self.columns)
        for number, obj in self._parsed():
            try:
                row = [obj.get(column) for column in columns]
                texts = [value_text(value) for value in row]
            except (ValueError, RecursionError) as exc:  # an integer past the digit limit, absurd nesting
                self.rejections.reject(
                    path=self.path, reason="invalid JSON", expected=f"JSON values that fit in text ({type(exc).__name__})",
                    lines=[number],
                )
                continue
            for column, value, text in zip(columns, row, texts):
                values[column].append(text)
                nested[column].append(_is_nested(value))
            unseen.update(k for k in obj if k not in known)
            lines.append(number)
            if len(lines) >= self.batch_rows:
                yield self._chunk(values, nested, lines)
                values = {c: [] for c in columns}
                nested = {c: [] for c in columns}
                lines = []
        if lines:
            yield self._chunk(values, nested, lines)
        if unseen:
            self.notes["keys ignored (first seen after line 1,000)"] = sorted(unseen)

    @staticmethod
    def _chunk(values: dict[str, list], nested: dict[str, list], lines: list[int]) -> Chunk:
        table = pa.table({c: pa.array(v, type=pa.string()) for c, v in values.items()})
        masks = {c: np.asarray(m, dtype=bool) for c, m in nested.items() if any(m)}
        return Chunk(table, np.asarray(lines, dtype=np.int64), masks)


def open_jsonl(path: str | Path, *, rejections: Rejections, encoding: str = "utf-8", batch_rows: int = 1_000_000) -> JsonlSource:
    """Open a JSON Lines file; its columns are the keys of its first objects.

    Raises:
        InputError: missing file, or no JSON object in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    peek = JsonlSource(path, columns=[], types={}, encoding=encoding, batch_rows=batch_rows, rejections=Rejections(lenient=True))
    columns: list[str] = []
    types: dict[str, str] = {}
    for count, (_, obj) in enumerate(peek._parsed()):
        for key, value in obj.items():
            if key not in columns:
                columns.append(key)
            if isinstance(value, list):
                types[key] = "list"
        if count + 1 >= _PEEK_OBJECTS:
            break
    if not columns:
        raise InputError("expected one JSON object per line, found none (empty file?)", path=path)
    return JsonlSource(path, columns=columns, types=types, encoding=encoding, batch_rows=batch_rows, rejections=rejections)
