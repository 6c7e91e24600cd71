"""Readers for every input format, behind one entry point, :func:`open_table`.

Each reader yields :class:`Chunk` batches (an Arrow table plus the line or row
number of every row) from a :class:`TableSource`; the rest of ``kg`` never
looks at file formats.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Sequence

from kg.errors import InputError, Rejections
from kg.readers.base import Chunk, TableSource
from kg.readers.delimited import DelimitedSource, open_delimited, sniff_delimiter
from kg.readers.jsonl import JsonlSource, open_jsonl
from kg.readers.lightgcn import LightGCNSource, looks_like_lightgcn, open_lightgcn
from kg.readers.parquet import ParquetSource, open_parquet
from kg.readers.recbole import RECBOLE_SUFFIXES, parse_typed_header, recbole_siblings

__all__ = [
    "Chunk",
    "DelimitedSource",
    "JsonlSource",
    "LightGCNSource",
    "ParquetSource",
    "TableSource",
    "check_encoding",
    "detect_format",
    "open_delimited",
    "open_jsonl",
    "open_lightgcn",
    "open_parquet",
    "open_table",
    "parse_typed_header",
    "recbole_siblings",
    "sniff_delimiter",
]

_BY_SUFFIX = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".inter": "recbole",
    **{suffix: "recbole" for suffix in RECBOLE_SUFFIXES.values()},
}


def check_encoding(encoding: str) -> None:
    """Refuse an encoding name Python does not know as a text encoding.

    Raises:
        InputError: unknown name, or a codec that does not decode bytes to text (``rot13``, ``hex``).
    """
    try:
        codecs.lookup(encoding)
        b"ab".decode(encoding, errors="replace")  # LookupError for bytes-to-bytes / text-to-text codecs
    except (LookupError, TypeError) as exc:
        raise InputError(
            f"unknown text encoding {encoding!r} ({exc}); expected a Python codec name such as utf-8, latin-1 or cp1252 (--encoding)"
        ) from None


def detect_format(path: str | Path, *, encoding: str = "utf-8") -> str:
    """The format of a file from its suffix, or from its first lines for ``.txt`` and the like.

    Returns:
        One of ``csv``, ``tsv``, ``parquet``, ``jsonl``, ``recbole``, ``lightgcn``,
        or ``delimited`` (delimiter to be detected).
    """
    path = Path(path)
    found = _BY_SUFFIX.get(path.suffix.lower())
    if found:
        return found
    if not path.is_file():
        raise InputError("no such file", path=path)
    check_encoding(encoding)
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if head[:4] == b"PAR1":
        return "parquet"
    lines = [raw.decode(encoding, errors="replace").strip() for raw in head.split(b"\n")[:20]]
    lines = [line for line in lines if line]
    if lines and lines[0].startswith("{"):
        return "jsonl"
    return "lightgcn" if looks_like_lightgcn(lines) else "delimited"


def open_table(
    path: str | Path,
    *,
    rejections: Rejections,
    format: str = "auto",
    delimiter: str | None = None,
    header: bool | None = None,
    columns: Sequence[str] | None = None,
    encoding: str = "utf-8",
    batch_rows: int = 1_000_000,
) -> TableSource:
    """Open any supported file.

    Args:
        path: the file.
        rejections: where bad rows go.
        format: ``auto`` (:func:`detect_format`), ``csv``, ``tsv``, ``parquet``,
            ``jsonl``, ``recbole`` or ``lightgcn``.
        delimiter: overrides the format's delimiter (delimited formats).
        header: whether line 1 is a header (delimited formats; ``None`` detects).
        columns: column names for a headerless delimited file.
        encoding: text encoding (text formats).
        batch_rows: rows per batch.

    Returns:
        The source; ``notes["format"]`` holds the format used.

    Raises:
        InputError: missing, empty or unreadable file; an unknown encoding; options that do not fit the format.
    """
    path = Path(path)
    check_encoding(encoding)
    if not path.is_file():
        raise InputError("no such file", path=path)
    resolved = detect_format(path, encoding=encoding) if format == "auto" else format
    if resolved in ("parquet", "jsonl", "lightgcn") and columns is not None:
        raise InputError(
            f"{resolved} files name their own columns; map roles with --user-column/--item-column/... instead of --columns",
            path=path,
        )
    if resolved == "parquet":
        source: TableSource = open_parquet(path, batch_rows=batch_rows)
    elif resolved == "jsonl":
        source = open_jsonl(path, rejections=rejections, encoding=encoding, batch_rows=batch_rows)
    elif resolved == "lightgcn":
        source = open_lightgcn(path, rejections=rejections, encoding=encoding, batch_rows=batch_rows)
    else:
        default = {"csv": ",", "tsv": "\t", "recbole": "\t"}.get(resolved)
        source = open_delimited(
            path,
            rejections=rejections,
            delimiter=delimiter or default,
            header=True if resolved == "recbole" and header is None else header,
            columns=columns,
            encoding=encoding,
            batch_rows=batch_rows,
        )
    source.notes["format"] = resolved
    return source
