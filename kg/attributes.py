"""Side-table columns: which are text and which become entity nodes.

Roles per column: ``text`` (kept in the side table for text encoders, not
entities), ``categorical`` (each value an entity), ``multi`` (several values
per cell, each an entity), ``numeric`` (quantile buckets, each an entity) and
``ignored`` (kept in the side table only). Explicit lists win; a role whose
list is given gets no detected columns. Detection, per column:

* RecBole ``float`` -> numeric; ``token`` -> categorical; ``token_seq`` -> text
  when it reads like text (below), else multi split on spaces; a JSON array -> multi.
* numbers only -> numeric, or categorical with at most ``numeric_buckets``
  distinct values (flags, small codes); numbers but for one stray value (or 1%,
  from 10 rows on) -> numeric, the stray cells refused as non-numeric.
* text: mean length >= ``text_min_length``, or mostly distinct values that
  mostly contain a space (titles; a space-separated genre list repeats whole
  values: ml-100k's ``class`` has 13% distinct values, its titles 99%).
* multi: ``|`` or ``;`` (or ``multi_separator``) in at least 10% of the cells.
* ignored: a distinct value in every one of 20 or more rows (an identifier,
  which would give every node an entity of its own).
* otherwise categorical.

Entities are ``"{column}={value}"`` (numeric: ``"{column}=[lo, hi)"``, the last
bucket closed) named ``"{column}: {value}"``; the relation is the column name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kg.errors import InputError, Rejections
from kg.readers.base import Chunk
from kg.validate import number_column, text_column

__all__ = ["ATTRIBUTE_ROLES", "AttributeEdges", "ColumnRoles", "attribute_edges", "detect_roles"]

ATTRIBUTE_ROLES = ("text", "categorical", "multi", "numeric")
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_SEPARATORS = ("|", ";")
_MIN_ROWS_FOR_IDENTIFIER = 20
# A column of numbers with at most max(1, 1%) other values (from 10 rows on) is numeric.
_MIN_ROWS_FOR_STRAYS = 10
_STRAY_SHARE = 0.01


@dataclass
class ColumnRoles:
    """Role of every non-id column of a side table.

    Attributes:
        roles: ``{column: role}``, role one of :data:`ATTRIBUTE_ROLES` or ``"ignored"``.
        separators: ``{column: separator}`` for multi columns (``" "`` = any white space).
        detected: ``{column: why}`` for the columns whose role was detected.
    """

    roles: dict[str, str]
    separators: dict[str, str] = field(default_factory=dict)
    detected: dict[str, str] = field(default_factory=dict)

    def columns(self, *roles: str) -> list[str]:
        return [c for c, r in self.roles.items() if r in roles]


def _cells(table: pa.Table, column: str) -> pa.Array:
    array = text_column(table.column(column).combine_chunks())
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return pc.utf8_trim_whitespace(array)


def detect_roles(
    table: pa.Table,
    types: Mapping[str, str],
    *,
    explicit: Mapping[str, tuple[str, ...] | None],
    multi_separator: str | None,
    numeric_buckets: int,
    text_min_length: int,
    path: str | os.PathLike,
) -> ColumnRoles:
    """Decide each column's role (rules in the module docstring).

    Args:
        table: the side table, id column first.
        types: declared column types.
        explicit: ``{role: columns or None}`` for the four attribute roles.
        multi_separator: separator of multi-valued cells (``None``: detect).
        numeric_buckets: buckets per numeric column.
        text_min_length: mean length from which a column is text.
        path: the file, for messages.

    Raises:
        InputError: an explicitly listed column is not in the table, or is listed twice.
    """
    columns = table.column_names[1:]
    out = ColumnRoles(roles={})
    for role, listed in explicit.items():
        for column in listed or ():
            if column not in columns:
                raise InputError(f"{role} column {column!r} is not in the table; its columns are {columns}", path=path, column=column)
            if column in out.roles:
                raise InputError(f"column {column!r} is listed as {out.roles[column]} and {role}; expected one role", path=path, column=column)
            out.roles[column] = role
            if role == "multi":
                out.separators[column] = multi_separator or (" " if types.get(column) == "token_seq" else "|")
    for column in columns:
        if column in out.roles:
            continue
        role, why, separator = _detect(_cells(table, column), types.get(column), multi_separator, numeric_buckets, text_min_length)
        if role in explicit and explicit[role] is not None:
            role, why = "ignored", f"detected as {role}, but the {role} columns were listed explicitly"
        out.roles[column] = role
        out.detected[column] = why
        if role == "multi":
            out.separators[column] = separator
    return out


def _detect(cells: pa.Array, declared: str | None, separator: str | None, buckets: int, min_length: int) -> tuple[str, str, str]:
    present = cells.filter(pc.greater(pc.utf8_length(cells), 0))
    n = len(present)
    if n == 0:
        return "ignored", "no values", ""
    distinct = len(pc.unique(present))
    if declared in ("float",):
        return "numeric", "RecBole float", ""
    if declared == "float_seq":
        return "ignored", "RecBole float_seq (vectors are not attributes)", ""
    if declared == "list":
        return "multi", "JSON arrays", "|"
    mean_length = pc.mean(pc.utf8_length(present)).as_py()
    spaced = pc.sum(pc.match_substring(present, " ")).as_py() / n
    texty = mean_length >= min_length or (distinct / n >= 0.5 and spaced >= 0.5)
    if declared == "token_seq":
        if texty:
            return "text", f"RecBole token_seq reading like text (mean length {mean_length:.0f}, {distinct}/{n} distinct)", ""
        return "multi", "RecBole token_seq (space-separated values)", " "
    is_number = pc.match_substring_regex(present, _NUMBER)
    not_numbers = n - pc.sum(is_number).as_py()
    if not_numbers == 0 and declared is None:
        if distinct <= buckets:
            return "categorical", f"numbers with only {distinct} distinct values", ""
        return "numeric", "numbers only", ""
    if declared is None and n >= _MIN_ROWS_FOR_STRAYS and not_numbers <= max(1, _STRAY_SHARE * n):
        # A numeric column with a stray bad cell stays numeric; the cell is refused
        # (strict) or counted (lenient) instead of turning the column into identifiers.
        if len(pc.unique(present.filter(is_number))) > buckets:
            return "numeric", f"numbers except {not_numbers} of {n} values (refused as non-numeric)", ""
    if texty and declared is None:
        return "text", f"free text (mean length {mean_length:.0f}, {distinct}/{n} distinct)", ""
    if declared is None:
        for candidate in ((separator,) if separator else _SEPARATORS):
            if pc.sum(pc.match_substring(present, candidate)).as_py() >= 0.1 * n:
                return "multi", f"values separated by {candidate!r}", candidate
    if distinct == n and n >= _MIN_ROWS_FOR_IDENTIFIER:
        return "ignored", "a distinct value in every row (identifier-like)", ""
    return "categorical", "RecBole token" if declared == "token" else "short repeated values", ""


@dataclass
class AttributeEdges:
    """Node -> attribute entity edges of one side table.

    Shapes:
        ``node``: int64 ``[E]`` (row's node index); ``relation``, ``entity_id``,
        ``entity_name``: string arrays ``[E]``.
    """

    node: np.ndarray
    relation: pa.Array
    entity_id: pa.Array
    entity_name: pa.Array

    @staticmethod
    def empty() -> "AttributeEdges":
        s = pa.array([], pa.string())
        return AttributeEdges(np.empty(0, np.int64), s, s, s)

    @staticmethod
    def concat(parts: list["AttributeEdges"]) -> "AttributeEdges":
        if not parts:
            return AttributeEdges.empty()
        return AttributeEdges(
            np.concatenate([p.node for p in parts]),
            pa.concat_arrays([p.relation for p in parts]),
            pa.concat_arrays([p.entity_id for p in parts]),
            pa.concat_arrays([p.entity_name for p in parts]),
        )


def _edges(column: str, rows: np.ndarray, values: pa.Array, node: np.ndarray) -> AttributeEdges:
    keep = pc.greater(pc.utf8_length(values), 0)
    values = values.filter(keep)
    rows = rows[keep.to_numpy(zero_copy_only=False)]
    n = len(values)
    return AttributeEdges(
        node[rows],
        pa.array([column] * n, pa.string()) if n else pa.array([], pa.string()),
        pc.binary_join_element_wise(column, values, "="),
        pc.binary_join_element_wise(column, values, ": "),
    )


def _bucket_labels(values: np.ndarray, buckets: int) -> tuple[np.ndarray, list[str], list[float]]:
    """(bucket per value, label per bucket, boundaries) of quantile buckets."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, buckets + 1)))
    if len(edges) == 1:
        return np.zeros(len(values), np.int64), [f"[{edges[0]:g}, {edges[0]:g}]"], edges.tolist()
    index = np.searchsorted(edges[1:-1], values, side="right")
    labels = [f"[{lo:g}, {hi:g})" for lo, hi in zip(edges[:-2], edges[1:-1])] + [f"[{edges[-2]:g}, {edges[-1]:g}]"]
    return index, labels, edges.tolist()


def _unique_edges(part: AttributeEdges) -> AttributeEdges:
    """Drop repeated (node, entity) edges ("a|a" in one cell is one edge), first kept."""
    if not len(part.node):
        return part
    codes = pc.dictionary_encode(part.entity_id).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    key = part.node * (int(codes.max()) + 1) + codes
    first = np.sort(np.unique(key, return_index=True)[1])
    if len(first) == len(key):
        return part
    index = pa.array(first)
    return AttributeEdges(part.node[first], part.relation.take(index), part.entity_id.take(index), part.entity_name.take(index))


def attribute_edges(
    chunk: Chunk,
    roles: ColumnRoles,
    node: np.ndarray,
    *,
    numeric_buckets: int,
    path: str | os.PathLike,
    rejections: Rejections,
) -> tuple[AttributeEdges, dict[str, list[float]]]:
    """Entity edges of every categorical, multi and numeric column.

    Args:
        chunk: the side table rows (with line numbers).
        roles: column roles.
        node: node index of every row.
        numeric_buckets: quantile buckets per numeric column.
        path: the file, for messages.
        rejections: a non-numeric value in a numeric column is refused (strict)
            or counted and given no bucket (lenient).

    Returns:
        ``(edges, bucket_edges)`` where ``bucket_edges`` maps each numeric column
        to its bucket boundaries (for the manifest).
    """
    parts = []
    boundaries: dict[str, list[float]] = {}
    table = chunk.table
    rows_all = np.arange(table.num_rows)
    for column, role in roles.roles.items():
        if role == "categorical":
            parts.append(_edges(column, rows_all, _cells(table, column), node))
        elif role == "multi":
            separator = roles.separators[column]
            cells = _cells(table, column)
            lists = pc.utf8_split_whitespace(cells) if separator == " " else pc.split_pattern(cells, separator)
            rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
            values = pc.utf8_trim_whitespace(pc.list_flatten(lists))
            parts.append(_unique_edges(_edges(column, rows, values, node)))
        elif role == "numeric":
            numbers, keep = number_column(
                chunk, column, role=f"{column} value", path=path, rejections=rejections, required=False
            )
            present = keep & np.isfinite(numbers)
            if not present.any():
                continue
            index, labels, edges = _bucket_labels(numbers[present], numeric_buckets)
            boundaries[column] = edges
            parts.append(_edges(column, rows_all[present], pa.array(labels, pa.string()).take(pa.array(index)), node))
    return AttributeEdges.concat(parts), boundaries
