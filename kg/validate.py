"""Vectorised row checks on reader chunks: ids present, numbers numeric.

Each check returns the cleaned values and a boolean ``keep`` mask, and hands the
refused rows (with their line numbers and values) to :class:`kg.errors.Rejections`,
which raises in strict mode and counts in lenient mode. Work is done on Arrow
arrays (on a column's dictionary where it has one), never row by row in Python,
except to locate a malformed ISO date.
"""

from __future__ import annotations

import datetime as _dt
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kg.errors import InputError, Rejections
from kg.readers.base import Chunk

__all__ = ["id_column", "number_column", "text_column"]

_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_ISO_DATE = r"^\s*\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?\s*$"
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
# The largest int64 nanosecond count: no clock in any unit gives a larger timestamp.
MAX_TIMESTAMP = float(np.iinfo(np.int64).max)


def _single(chunk: Chunk, column: str) -> pa.Array:
    data = chunk.table.column(column)
    return data.combine_chunks() if data.num_chunks != 1 else data.chunk(0)


def text_column(array: pa.Array) -> pa.Array:
    """Any flat Arrow array as strings (dictionary arrays keep their encoding, values cast).

    Bytes that are not UTF-8 (a Parquet binary column) are decoded with U+FFFD
    replacement characters rather than failing.
    """
    if pa.types.is_dictionary(array.type):
        dictionary = array.dictionary
        if not pa.types.is_string(dictionary.type):
            dictionary = _as_string(dictionary)
        return pa.DictionaryArray.from_arrays(array.indices, dictionary)
    if not pa.types.is_string(array.type):
        return _as_string(array)
    return array


def _as_string(array: pa.Array) -> pa.Array:
    try:
        return pc.cast(array, pa.string())
    except pa.ArrowInvalid:
        if not (pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)):
            raise
        return pa.array([None if v is None else v.decode("utf-8", "replace") for v in array.to_pylist()], pa.string())


def id_column(
    chunk: Chunk, column: str, *, role: str, path: str | os.PathLike, rejections: Rejections
) -> tuple[pa.DictionaryArray, np.ndarray]:
    """External ids of one column, white space trimmed, dictionary-encoded.

    Args:
        chunk: the batch.
        column: column name.
        role: what the ids are, for messages (``"user id"``).
        path: the file, for messages.
        rejections: strict/lenient handling of missing ids.

    Returns:
        ``(ids, keep)``: ids of every row (refused rows included, with whatever
        value they had) and the mask of rows that have one.

    Rows whose cell was a list or an object (``chunk.nested``) are refused as
    "nested {role}"; NaN and infinite floats count as missing (not as the id ``"nan"``).

    Raises:
        InputError: strict mode, a row without an id (null, blank, NaN) or with a
            list/object for an id; any mode, a column whose type cannot hold ids.
    """
    raw = _single(chunk, column)
    value_type = raw.type.value_type if pa.types.is_dictionary(raw.type) else raw.type
    if pa.types.is_nested(value_type):
        # Only reachable with a nested Arrow column the reader did not flatten.
        raise InputError(f"expected a column of {role}s (text or integers); found Arrow type {raw.type}", path=path, column=column)
    nonfinite = None
    if pa.types.is_floating(value_type):
        values = raw.dictionary_decode() if pa.types.is_dictionary(raw.type) else raw
        nonfinite = ~np.isfinite(pc.fill_null(pc.cast(values, pa.float64()), 0.0).to_numpy(zero_copy_only=False))
    array = text_column(raw)
    if not pa.types.is_dictionary(array.type):
        array = pc.dictionary_encode(array)
    dictionary = pc.utf8_trim_whitespace(array.dictionary)
    array = pa.DictionaryArray.from_arrays(array.indices, dictionary)
    blank_values = pc.fill_null(pc.equal(pc.utf8_length(dictionary), 0), True).to_numpy(zero_copy_only=False)
    indices = array.indices
    missing = indices.is_null().to_numpy(zero_copy_only=False)
    if blank_values.any():
        filled = pc.fill_null(indices, 0).to_numpy(zero_copy_only=False)
        missing |= blank_values[filled]
    if nonfinite is not None:
        missing |= nonfinite
    if missing.any():
        rejections.reject(
            path=path,
            reason=f"missing {role}",
            expected=f"a non-empty {role}",
            lines=chunk.lines[missing],
            values=[""] * min(3, int(missing.sum())),
            column=column,
        )
    nested = chunk.nested.get(column)
    if nested is not None and (nested & ~missing).any():
        bad = nested & ~missing
        rejections.reject(
            path=path,
            reason=f"nested {role}",
            expected=f"one {role} per row (text or a number), not a list or an object",
            lines=chunk.lines[bad],
            values=array.dictionary_decode().filter(pa.array(bad)).slice(0, 3).to_pylist(),
            column=column,
        )
        missing = missing | bad
    return array, ~missing


def number_column(
    chunk: Chunk,
    column: str,
    *,
    role: str,
    path: str | os.PathLike,
    rejections: Rejections,
    dates: bool = False,
    minimum: float | None = None,
    required: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Numeric values of one column as float64.

    Strings must spell a decimal number (``1``, ``-2.5``, ``3e9``); with ``dates``
    ISO-8601 dates/times (``2024-05-01``, ``2024-05-01T10:00:00Z``) are also
    accepted and become unix seconds, and a value beyond :data:`MAX_TIMESTAMP`
    (a timestamp in no unit) is refused. Arrow numeric, timestamp and date columns
    are converted directly. With ``required=False`` a missing value is not
    refused (it is just not kept), as for optional attributes.

    Returns:
        ``(values, keep)``: float64 values (NaN where refused) and the mask of
        good rows.

    Raises:
        InputError: strict mode, a missing, non-numeric, non-finite, too-small or
            (``dates``) out-of-range value.
    """
    array = _single(chunk, column)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    lines = chunk.lines
    expected = "a number (unix seconds) or an ISO-8601 date" if dates else "a number"
    considered = np.ones(len(array), bool)
    if pa.types.is_timestamp(array.type):
        values = pc.cast(array, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        values *= _UNIT_SECONDS[array.type.unit]
        values[array.is_null().to_numpy(zero_copy_only=False)] = np.nan
    elif pa.types.is_date(array.type):
        values = pc.cast(pc.cast(array, pa.timestamp("s")), pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        values[array.is_null().to_numpy(zero_copy_only=False)] = np.nan
    elif pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_boolean(array.type):
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        text = text_column(array)
        if pa.types.is_dictionary(text.type):
            text = text.dictionary_decode()
        values, bad_text = _parse_text_numbers(text, dates=dates)
        if bad_text.any():
            shown = text.filter(pa.array(bad_text)).slice(0, 3).to_pylist()
            rejections.reject(
                path=path,
                reason=f"non-numeric {role}",
                expected=expected,
                lines=lines[bad_text],
                values=shown,
                column=column,
            )
        considered = ~bad_text
    values, keep = _check_finite(values, considered, lines, role, column, path, rejections, minimum, expected, required)
    if dates:
        far = keep & (np.abs(values) > MAX_TIMESTAMP)
        if far.any():
            rejections.reject(
                path=path, reason=f"{role} out of range",
                expected=f"unix time within +-{MAX_TIMESTAMP:.3g} (seconds, ms, us or ns since 1970)",
                lines=lines[far], values=[float(v) for v in values[far][:3]], column=column,
            )
            keep &= ~far
            values[far] = np.nan
    return values, keep


def _check_finite(values, considered, lines, role, column, path, rejections, minimum, expected, required):
    """Refuse missing/NaN/inf values and values under ``minimum`` among ``considered`` rows."""
    nonfinite = considered & ~np.isfinite(values)
    if nonfinite.any() and required:
        rejections.reject(
            path=path, reason=f"missing {role}", expected=expected,
            lines=lines[nonfinite], values=[str(v) for v in values[nonfinite][:3]], column=column,
        )
    keep = considered & ~nonfinite
    if minimum is not None:
        small = keep & (values < minimum)
        if small.any():
            rejections.reject(
                path=path, reason=f"{role} below {minimum:g}", expected=f"a number >= {minimum:g}",
                lines=lines[small], values=[float(v) for v in values[small][:3]], column=column,
            )
            keep &= ~small
    values = values.copy() if not values.flags.writeable else values
    values[~keep] = np.nan
    return values, keep


def _parse_text_numbers(text: pa.Array, *, dates: bool) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, mask of values that are neither numbers nor, with ``dates``, ISO dates).

    Empty strings and nulls come back as NaN and are not flagged here (they are
    "missing", reported by the caller).
    """
    n = len(text)
    filled = pc.fill_null(text, "")
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(filled)), 0).to_numpy(zero_copy_only=False)
    numeric = pc.match_substring_regex(filled, _NUMBER).to_numpy(zero_copy_only=False)
    values = np.full(n, np.nan)
    if numeric.any():
        good = pc.if_else(pa.array(numeric), pc.utf8_trim_whitespace(filled), "nan")
        values = pc.cast(good, pa.float64()).to_numpy(zero_copy_only=False).copy()
        values[~numeric] = np.nan
    bad = ~numeric & ~empty
    if dates and bad.any():
        iso = bad & pc.match_substring_regex(filled, _ISO_DATE).to_numpy(zero_copy_only=False)
        if iso.any():
            parsed = _parse_iso(pc.utf8_trim_whitespace(filled.filter(pa.array(iso))))
            ok = np.isfinite(parsed)
            where = np.flatnonzero(iso)
            values[where[ok]] = parsed[ok]
            bad[where[ok]] = False
    return values, bad


def _parse_iso(texts: pa.Array) -> np.ndarray:
    """Unix seconds of ISO-8601 strings (NaN where unparsable); naive times are UTC.

    Arrow parses each group (with and without a zone offset) in one cast; only
    a group holding an unparsable string falls back to Python, to find which.
    """
    out = np.full(len(texts), np.nan)
    zoned = pc.match_substring_regex(texts, r"(Z|[+-]\d{2}:?\d{2})$").to_numpy(zero_copy_only=False)
    for mask, target in ((~zoned, pa.timestamp("us")), (zoned, pa.timestamp("us", tz="UTC"))):
        if not mask.any():
            continue
        group = texts.filter(pa.array(mask))
        try:
            micros = pc.cast(pc.cast(group, target), pa.int64()).to_numpy(zero_copy_only=False)
            out[mask] = micros / 1e6
        except pa.ArrowInvalid:
            out[mask] = [_parse_one_iso(text) for text in group.to_pylist()]
    return out


def _parse_one_iso(text: str) -> float:
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return float("nan")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.timestamp()
