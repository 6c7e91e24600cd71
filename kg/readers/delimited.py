"""CSV / TSV (and other single-character delimited) files, streamed with pyarrow.

Detection, used only for what the caller leaves open:

* delimiter: the most frequent of tab, comma, semicolon, pipe in the first
  line; a space when none occurs and the line has spaces.
* header: a RecBole typed header (``name:type``) is a header; a first line
  whose fields are all numbers is data; a field that is text on line 1 and a
  number on line 2 marks a header; otherwise a first line of name-like,
  distinct fields is a header.

Every column is read as a string so that ids keep their exact spelling and all
values go through the same validation. Tab- and space-delimited files are read
without quoting (the TSV convention; RecBole titles contain quote marks);
comma, semicolon and pipe files honour double quotes. Rows with the wrong
number of fields are refused with their line number; rows whose fields are all
empty (blank lines) are skipped and counted in ``notes``.
"""

from __future__ import annotations

import codecs
import contextlib
import re
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kg.errors import InputError, Rejections
from kg.readers.base import Chunk, TableSource
from kg.readers.recbole import parse_typed_header

__all__ = ["DelimitedSource", "open_delimited", "sniff_delimiter"]

_CANDIDATES = ("\t", ",", ";", "|")
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_NAME = re.compile(r"^[A-Za-z_][\w .:\-]*$")
_PEEK_BYTES = 1 << 20


def sniff_delimiter(line: str) -> str:
    """The delimiter of a delimited file, guessed from its first line (see module doc)."""
    counts = {c: line.count(c) for c in _CANDIDATES}
    best = max(counts, key=counts.get)
    if counts[best] > 0:
        return best
    return " " if " " in line.strip() else ","


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text))


def _detect_header(first: list[str], second: list[str] | None) -> bool:
    if parse_typed_header(first) is not None:
        return True
    if all(_is_number(f) for f in first):
        return False
    if second is not None and len(second) == len(first):
        if any(not _is_number(a) and _is_number(b) for a, b in zip(first, second)):
            return True
    return len(set(first)) == len(first) and all(_NAME.match(f.strip()) for f in first)


def _peek_lines(path: Path, encoding: str, limit: int = 2) -> list[str]:
    """The first ``limit`` non-blank lines, decoded; a decoding error names its line."""
    with open(path, "rb") as handle:
        raw = handle.read(_PEEK_BYTES)
    complete = raw.split(b"\n")
    if len(raw) == _PEEK_BYTES:
        complete = complete[:-1]  # the last piece may be a cut line
    lines = []
    for number, piece in enumerate(complete, start=1):
        try:
            text = piece.decode(encoding)
        except UnicodeError as exc:
            raise _encoding_error(path, encoding, number, exc) from None
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        text = text.rstrip("\r")
        if text.strip():
            lines.append(text)
        if len(lines) >= limit:
            break
    return lines


def _encoding_error(path: Path, encoding: str, line: int, exc: UnicodeError) -> InputError:
    # A UnicodeDecodeError names the byte; a codec's own UnicodeError (UTF-16 without a BOM) does not.
    where = (
        f"byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start} of the line"
        if isinstance(exc, UnicodeDecodeError) else str(exc)
    )
    return InputError(
        f"not valid {encoding} text ({where}); expected {encoding}: pass the file's encoding, e.g. --encoding latin-1",
        path=path,
        line=line,
    )


def _find_encoding_error(path: Path, encoding: str) -> InputError:
    """Scan the file for the first line that does not decode (only on the error path)."""
    decoder_check = codecs.getincrementaldecoder(encoding)
    with open(path, "rb") as handle:
        for number, piece in enumerate(handle, start=1):
            try:
                decoder_check().decode(piece, final=True)
            except UnicodeError as exc:
                return _encoding_error(path, encoding, number, exc)
    return InputError(f"not valid {encoding} text; pass the file's encoding, e.g. --encoding latin-1", path=path)


class DelimitedSource(TableSource):
    """A delimited text file; construct with :func:`open_delimited`."""

    def __init__(
        self,
        path: Path,
        *,
        names: list[str],
        types: dict[str, str],
        delimiter: str,
        header: bool,
        encoding: str,
        block_size: int,
        rejections: Rejections,
        notes: dict[str, object],
    ) -> None:
        super().__init__(path=path, columns=names, types=types, line_kind="line", notes=notes)
        self.delimiter = delimiter
        self.header = header
        self.encoding = encoding
        self.block_size = block_size
        self.rejections = rejections

    def _batches(self, columns: list[str]) -> Iterator[Chunk]:
        invalid: list[tuple[int, str, int, int]] = []

        def on_invalid(row) -> str:
            invalid.append((row.number, row.text, row.expected_columns, row.actual_columns))
            return "skip"

        check_utf8 = not self.rejections.lenient
        quote = '"' if self.delimiter in (",", ";", "|") else False
        undecodable: list[bool] = []
        try:
            with _undecodable_bad_rows(undecodable):
                reader = pacsv.open_csv(
                    self.path,
                    read_options=pacsv.ReadOptions(
                        use_threads=False,  # row numbers of bad rows are only known single-threaded
                        block_size=self.block_size,
                        column_names=self.columns,
                        skip_rows=1 if self.header else 0,
                        encoding=self.encoding,
                    ),
                    parse_options=pacsv.ParseOptions(
                        delimiter=self.delimiter,
                        quote_char=quote,
                        ignore_empty_lines=False,
                        invalid_row_handler=on_invalid,
                    ),
                    convert_options=pacsv.ConvertOptions(
                        column_types={c: pa.string() for c in self.columns},
                        strings_can_be_null=False,
                        check_utf8=check_utf8,
                    ),
                )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return
            raise self._arrow_error(exc, undecodable) from None
        except UnicodeError:
            raise _find_encoding_error(self.path, self.encoding) from None
        first_line = 2 if self.header else 1
        rows_seen = 0
        reported = 0
        blank = 0
        while True:
            try:
                with _undecodable_bad_rows(undecodable):
                    batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise self._arrow_error(exc, undecodable) from None
            except UnicodeError:
                raise _find_encoding_error(self.path, self.encoding) from None
            reported = self._report_invalid(invalid, reported)
            skipped = np.array(sorted(n for n, *_ in invalid if n is not None), dtype=np.int64)
            n = batch.num_rows
            lines = _physical_lines(np.arange(rows_seen, rows_seen + n, dtype=np.int64) + first_line, skipped)
            rows_seen += n
            table = pa.Table.from_batches([batch])
            if not check_utf8:
                table, lines = self._drop_bad_utf8(table, lines)
            empty = np.ones(table.num_rows, dtype=bool)
            for column in table.columns:
                empty &= pc.equal(pc.utf8_length(column), 0).to_numpy(zero_copy_only=False)
            chunk = Chunk(table.select(columns), lines)
            if empty.any():
                # Blank lines carry no data; they are counted, not refused.
                blank += int(empty.sum())
                chunk = chunk.filter(~empty)
            if chunk.num_rows:
                yield chunk
        self._report_invalid(invalid, reported)
        if blank:
            self.notes["blank lines skipped"] = blank

    def _report_invalid(self, invalid: list, reported: int) -> int:
        for number, text, expected, actual in invalid[reported:]:
            self.rejections.reject(
                path=self.path,
                reason="wrong number of fields",
                expected=f"{expected} fields separated by {self.delimiter!r}",
                lines=None if number is None else [number],
                values=[f"{actual} fields: {text}"],
            )
        return len(invalid)

    def _drop_bad_utf8(self, table: pa.Table, lines: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        """Lenient mode: refuse rows whose bytes are not valid UTF-8 (slow path, only when present)."""
        bad = np.zeros(table.num_rows, dtype=bool)
        for name in table.column_names:
            column = table.column(name)
            try:
                column.validate(full=True)
                continue
            except pa.ArrowInvalid:
                pass
            raw = pc.cast(column, pa.binary()).to_pylist()
            for i, value in enumerate(raw):
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    bad[i] = True
        if not bad.any():
            return table, lines
        self.rejections.reject(
            path=self.path,
            reason="invalid utf-8",
            expected="UTF-8 text (pass --encoding for other encodings)",
            lines=lines[bad],
        )
        return table.filter(pa.array(~bad)), lines[~bad]

    def _arrow_error(self, exc: Exception, undecodable: list[bool] = ()) -> InputError:
        text = str(exc)
        if undecodable or "UTF8" in text or "utf8" in text or "utf-8" in text.lower():
            return _find_encoding_error(self.path, self.encoding)
        line = None
        match = re.search(r"[Rr]ow #?(\d+)", text)
        if match:
            line = int(match.group(1))
        return InputError(f"cannot parse as {self.delimiter!r}-delimited text: {text}", path=self.path, line=line)


@contextlib.contextmanager
def _undecodable_bad_rows(found: list[bool]) -> Iterator[None]:
    """Catch pyarrow's failure to decode a malformed row that is not UTF-8.

    pyarrow decodes a bad row's text as UTF-8 before calling the invalid-row
    handler; when that fails it prints "Exception ignored ... Traceback" and
    stops the read. This records the failure (the file then gets the encoding
    error naming its line) instead of letting the traceback reach the user.
    """
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, UnicodeError):
            found.append(True)
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _physical_lines(candidate: np.ndarray, skipped: np.ndarray) -> np.ndarray:
    """Shift sequential line numbers past the lines the parser skipped (bad rows)."""
    if not len(skipped):
        return candidate
    lines = candidate.copy()
    while True:
        shifted = candidate + np.searchsorted(skipped, lines, side="right")
        if np.array_equal(shifted, lines):
            return lines
        lines = shifted


def open_delimited(
    path: str | Path,
    *,
    rejections: Rejections,
    delimiter: str | None = None,
    header: bool | None = None,
    columns: Sequence[str] | None = None,
    encoding: str = "utf-8",
    batch_rows: int = 1_000_000,
) -> DelimitedSource:
    """Open a delimited file, detecting what the caller leaves as ``None``.

    Args:
        path: the file.
        rejections: where bad rows go (strict: first one raises).
        delimiter: one character; ``None`` detects it.
        header: whether line 1 names the columns; ``None`` detects it.
        columns: names for a headerless file (``None``: ``column_1``, ...);
            with a header they rename the columns.
        encoding: text encoding.
        batch_rows: roughly how many rows per batch.

    Returns:
        The source; ``notes`` says what was detected.

    Raises:
        InputError: missing or empty file, undecodable first lines, a header with
            duplicate names, or ``columns`` of the wrong length.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    lines = _peek_lines(path, encoding)
    if not lines:
        raise InputError("empty file: expected a header line and data rows", path=path)
    notes: dict[str, object] = {}
    if delimiter is None:
        delimiter = sniff_delimiter(lines[0])
        notes["delimiter"] = delimiter
    split = [lines[0].split(delimiter)] + [line.split(delimiter) for line in lines[1:2]]
    first = [f.strip() for f in split[0]]
    if delimiter == " ":
        first = lines[0].split()
    if header is None:
        header = _detect_header(first, split[1] if len(split) > 1 else None)
        notes["header"] = header
    types: dict[str, str] = {}
    if header:
        typed = parse_typed_header(first)
        names = typed[0] if typed else first
        types = typed[1] if typed else {}
        if typed:
            notes["typed header"] = "RecBole name:type"
    else:
        names = [f"column_{i + 1}" for i in range(len(first))]
    if columns is not None:
        if len(columns) != len(names):
            raise InputError(
                f"expected {len(columns)} columns ({', '.join(columns)}) as given, "
                f"the file has {len(names)} on its first line",
                path=path,
                line=1,
            )
        types = {new: types[old] for old, new in zip(names, columns) if old in types}
        names = list(columns)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"the header names column {duplicates[0]!r} twice; expected distinct names", path=path, line=1)
    if any(not n for n in names):
        raise InputError("the header has an empty column name; expected a name per column", path=path, line=1)
    mean_line = max(16, sum(len(line) for line in lines) // len(lines) + 1)
    block_size = int(min(max(mean_line * batch_rows, 1 << 16), 1 << 28))
    return DelimitedSource(
        path,
        names=names,
        types=types,
        delimiter=delimiter,
        header=header,
        encoding=encoding,
        block_size=block_size,
        rejections=rejections,
        notes=notes,
    )
