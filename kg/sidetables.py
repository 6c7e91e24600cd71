"""Item and user tables: reading, id checks, and one row per node.

A side table's first column is the node id unless configured or named
``item_id``/``item``/``id`` (``user_id``/``user``/``id``). A detected id column
must hold the log's ids (half of them for the first-column fallback, at least one
for a named column), so a title column is never taken for ids. Ids must be present
and unique; a repeated id is refused ("duplicate item id", line of the repeat;
lenient mode keeps the first row). Every id in a side table is a node: the item
catalogue is every item in the item table or in any split, and the user set
every user in the user table, in any split or in the social edges.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kg.arrays import repeated_rows
from kg.errors import InputError, Rejections
from kg.ids import IdEncoder
from kg.readers import open_table
from kg.readers.base import Chunk
from kg.validate import id_column

__all__ = ["SideTable", "read_side_table", "node_rows"]


@dataclass
class SideTable:
    """A validated side table (kept rows only).

    Attributes:
        path: the file.
        kind: ``"item"`` or ``"user"``.
        id_column: the column that held the ids (renamed ``item_id``/``user_id`` in ``chunk``).
        chunk: every column as read, ids trimmed, one row per node.
        types: declared column types (RecBole, JSON lists).
        handle: the rows' ids in the node kind's :class:`kg.ids.IdEncoder`.
        notes: detection facts for the summary.
    """

    path: str
    kind: str
    id_column: str
    chunk: Chunk
    types: dict[str, str]
    handle: int
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def attribute_columns(self) -> list[str]:
        return [c for c in self.chunk.table.column_names if c != f"{self.kind}_id"]


def _id_names(kind: str) -> tuple[str, ...]:
    return (f"{kind}_id", kind, f"{kind}id", "id")


def _id_column(columns: list[str], kind: str, explicit: str | None, path) -> tuple[str, str]:
    """The id column and how it was chosen: ``"given"``, ``"named"`` or ``"first column"``."""
    if explicit is not None:
        if explicit not in columns:
            raise InputError(f"the {kind} id column {explicit!r} is not in the file; its columns are {columns}", path=path, column=explicit)
        return explicit, "given"
    lowered = {c.lower(): c for c in columns}
    for name in _id_names(kind):
        if name in lowered:
            return lowered[name], "named"
    return columns[0], "first column"


def _check_detected_ids(ids: pa.Array, *, kind: str, column: str, how: str, encoder: IdEncoder, path) -> str:
    """Refuse a detected id column whose values are not the log's ids (a title taken for an id).

    A column found by position must hold the log's ids for at least half of its
    rows; one found by name must share at least one id with the log. A column
    given explicitly is trusted (a catalogue may hold many items nobody used).

    Returns:
        ``"N of M"``: how many of the table's ids the log (read before) has.
    """
    in_log = int(encoder.known(ids).sum())
    total = len(ids)
    if total and encoder.has_ids and (in_log == 0 or (how == "first column" and in_log < 0.5 * total)):
        why = (
            f"no column is named {'/'.join(_id_names(kind))}, so the first column {column!r} was taken"
            if how == "first column" else f"column {column!r} was taken by its name"
        )
        raise InputError(
            f"{why}, but only {in_log} of its {total} values are {kind} ids of the interaction log; "
            f"expected the {kind} ids: name the id column {kind}_id or pass --{kind}-id-column",
            path=path,
            column=column,
        )
    return f"{in_log} of {total}"


def read_side_table(
    path: str | os.PathLike,
    *,
    kind: str,
    encoder: IdEncoder,
    rejections: Rejections,
    id_column_name: str | None = None,
    encoding: str = "utf-8",
    batch_rows: int = 1_000_000,
) -> SideTable:
    """Read an item or user table and register its ids with ``encoder``.

    Args:
        path: the file (any supported format; RecBole ``.item``/``.user`` typed headers understood).
        kind: ``"item"`` or ``"user"``.
        encoder: the node kind's id encoder (ids are added).
        rejections: strict/lenient handling of bad rows.
        id_column_name: the id column (``None``: detect).
        encoding: text encoding.
        batch_rows: rows per read batch.

    Raises:
        InputError: missing/empty file, no rows, missing ids, duplicate ids (strict);
            a detected id column that does not hold the log's ids (read the log first).
    """
    source = open_table(path, rejections=rejections, encoding=encoding, batch_rows=batch_rows)
    id_name, how = _id_column(source.columns, kind, id_column_name, source.path)
    chunk = source.read_all()
    if chunk.num_rows == 0:
        raise InputError(f"no rows: expected one row per {kind}", path=source.path)
    ids, keep = id_column(chunk, id_name, role=f"{kind} id", path=source.path, rejections=rejections)
    decoded = ids.dictionary_decode()
    # A repeated id: the first row wins; the repeat is refused with its own line.
    repeated = repeated_rows(pc.dictionary_encode(decoded).indices.to_numpy(zero_copy_only=False), keep)
    if repeated.any():
        rejections.reject(
            path=source.path,
            reason=f"duplicate {kind} id",
            expected=f"each {kind} id once (the first row is kept)",
            lines=chunk.lines[repeated],
            values=decoded.filter(pa.array(repeated)).slice(0, 3).to_pylist(),
            column=id_name,
        )
    keep &= ~repeated
    table = chunk.table.set_column(chunk.table.column_names.index(id_name), id_name, decoded)
    table = table.rename_columns([f"{kind}_id" if c == id_name else c for c in table.column_names])
    # The id column first, as the Graph side tables expect.
    order = [f"{kind}_id"] + [c for c in table.column_names if c != f"{kind}_id"]
    kept = Chunk(table.select(order), chunk.lines).filter(keep)
    kept_ids = kept.table.column(0).combine_chunks()
    notes = dict(source.notes)
    if how != "given":
        notes["id column"] = id_name
        notes["ids also in the log"] = _check_detected_ids(
            kept_ids, kind=kind, column=id_name, how=how, encoder=encoder, path=source.path
        )
    handle = encoder.add(kept_ids)
    types = {(f"{kind}_id" if k == id_name else k): v for k, v in source.types.items()}
    return SideTable(os.fspath(source.path), kind, id_name, kept, types, handle, notes)


def node_rows(index: np.ndarray, num_nodes: int) -> np.ndarray:
    """Row of the side table describing each node (-1 for nodes without a row).

    Args:
        index: node index of every row of the table.
        num_nodes: number of nodes of that kind.

    Shapes:
        returns int64 ``[num_nodes]``.
    """
    rows = np.full(num_nodes, -1, dtype=np.int64)
    rows[index] = np.arange(len(index))
    return rows
