"""Knowledge-graph triples, item links and social edges: reading and typing endpoints.

KG triples (``head, relation, tail``; RecBole ``.kg`` or any table with those
columns, else the first three) link items and entities. With a link table
(``item_id, entity_id``; RecBole ``.link``) an entity linked to an item *is*
that item node and every other endpoint is an entity node; without one, an
endpoint equal to a catalogue item id is that item. A link row naming an item
that is not in the catalogue, or an entity that is not in the KG, references
nothing and is refused ("unknown item id", "unknown entity id"), as is an entity
linked to two items. Triples that no chain of triples connects to an item are
kept and counted in the report. Social edges are two user-id
columns (``user_id, friend_id`` or the first two).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from kg.arrays import repeated_rows, unique_sorted
from kg.errors import InputError, Rejections
from kg.graph import ENTITY, ITEM
from kg.ids import IdEncoder
from kg.readers import open_table
from kg.readers.base import Chunk, TableSource
from kg.validate import id_column

__all__ = ["Endpoints", "KgEdges", "read_kg", "read_kg_edges", "read_link", "read_social", "social_frame", "type_endpoints"]

_KG_COLUMNS = {
    "head": ("head", "head_id", "h", "subject", "head_entity"),
    "relation": ("relation", "relation_id", "r", "predicate", "rel"),
    "tail": ("tail", "tail_id", "t", "object", "tail_entity"),
}
_LINK_COLUMNS = {"item": ("item_id", "item", "itemid"), "entity": ("entity_id", "entity", "entityid")}
_SOCIAL_COLUMNS = {
    "user": ("user_id", "user", "source", "follower", "src", "truster"),
    "friend": ("friend_id", "friend", "target", "followee", "dst", "trustee", "user_id2"),
}


def _columns(source: TableSource, wanted: dict[str, tuple[str, ...]], what: str) -> dict[str, str]:
    """Map roles to columns by name, else by position (the first len(wanted) columns)."""
    lowered = {c.lower(): c for c in source.columns}
    found = {}
    for role, aliases in wanted.items():
        match = next((lowered[a] for a in aliases if a in lowered), None)
        if match is not None:
            found[role] = match
    if len(found) == len(wanted):
        return found
    if len(source.columns) < len(wanted):
        raise InputError(
            f"expected {len(wanted)} columns for {what} ({', '.join(wanted)}), found {len(source.columns)}: {source.columns}",
            path=source.path,
        )
    return dict(zip(wanted, source.columns))


def _read_ids(path, wanted, what, rejections: Rejections, encoding: str, batch_rows: int) -> tuple[dict[str, pa.Array], Chunk]:
    source = open_table(path, rejections=rejections, encoding=encoding, batch_rows=batch_rows)
    columns = _columns(source, wanted, what)
    chunk = source.read_all(list(columns.values()))
    if chunk.num_rows == 0:
        raise InputError(f"no rows: expected {what}", path=source.path)
    keep = np.ones(chunk.num_rows, dtype=bool)
    values = {}
    for role, column in columns.items():
        ids, ok = id_column(chunk, column, role=role, path=source.path, rejections=rejections)
        values[role] = ids
        keep &= ok
    chunk = chunk.filter(keep)
    out = {role: ids.dictionary_decode().filter(pa.array(keep)) for role, ids in values.items()}
    return out, chunk


def read_kg(path: str | os.PathLike, *, rejections: Rejections, encoding: str = "utf-8", batch_rows: int = 1_000_000):
    """Validated KG triples.

    Returns:
        ``({"head", "relation", "tail"}: string arrays, chunk)`` of the kept rows.

    Raises:
        InputError: missing/empty file, fewer than three columns, a missing head,
            relation or tail (strict).
    """
    return _read_ids(path, _KG_COLUMNS, "KG triples (head, relation, tail)", rejections, encoding, batch_rows)


def read_social(
    path: str | os.PathLike, *, users: IdEncoder, rejections: Rejections, encoding: str = "utf-8", batch_rows: int = 1_000_000
) -> tuple[int, int]:
    """Validated social edges; their user ids join the user set.

    Returns:
        :class:`kg.ids.IdEncoder` handles ``(user, friend)`` of the kept edges.
    """
    values, _ = _read_ids(path, _SOCIAL_COLUMNS, "user-user edges (user, friend)", rejections, encoding, batch_rows)
    return users.add(values["user"]), users.add(values["friend"])


def read_link(
    path: str | os.PathLike,
    *,
    items: IdEncoder,
    rejections: Rejections,
    kg_ids: pa.Array | None = None,
    encoding: str = "utf-8",
    batch_rows: int = 1_000_000,
) -> tuple[pa.Array, np.ndarray]:
    """Validated item -> entity links (``items`` must be finished).

    Args:
        path: the link file.
        items: the finished item encoder.
        rejections: strict/lenient handling of bad rows.
        kg_ids: every head and tail of the KG; a link to an entity not among
            them references nothing ("unknown entity id"). ``None``: not checked.
        encoding, batch_rows: reading options.

    Returns:
        ``(entity_ids, item_index)`` of the kept links.

    Raises:
        InputError: (strict) a link to an item outside the catalogue or to an
            entity outside the KG, or an entity linked to two items.
    """
    values, chunk = _read_ids(path, _LINK_COLUMNS, "item-entity links (item_id, entity_id)", rejections, encoding, batch_rows)
    item_index = items.lookup(values["item"])
    unknown = item_index < 0
    if unknown.any():
        rejections.reject(
            path=path,
            reason="unknown item id",
            expected="an item id of the log or the item table (the link references nothing)",
            lines=chunk.lines[unknown],
            values=values["item"].filter(pa.array(unknown)).slice(0, 3).to_pylist(),
        )
    keep = ~unknown
    entity = values["entity"]
    if kg_ids is not None:
        outside = keep & ~pc.fill_null(pc.is_in(entity, value_set=kg_ids), False).to_numpy(zero_copy_only=False)
        if outside.any():
            rejections.reject(
                path=path,
                reason="unknown entity id",
                expected="an entity id that occurs as a head or tail in the KG file (the link references nothing)",
                lines=chunk.lines[outside],
                values=entity.filter(pa.array(outside)).slice(0, 3).to_pylist(),
            )
            keep &= ~outside
    twice = repeated_rows(pc.dictionary_encode(entity).indices.to_numpy(zero_copy_only=False), keep)
    if twice.any():
        rejections.reject(
            path=path,
            reason="entity linked twice",
            expected="each entity linked to one item",
            lines=chunk.lines[twice],
            values=entity.filter(pa.array(twice)).slice(0, 3).to_pylist(),
        )
    keep &= ~twice
    return entity.filter(pa.array(keep)), item_index[keep]


@dataclass
class Endpoints:
    """Typed triple endpoints: an item index or an entity id per row.

    Shapes:
        ``node_type``: int8 ``[T]`` (:data:`kg.graph.ITEM` or :data:`kg.graph.ENTITY`);
        ``item``: int64 ``[T]`` (-1 for entities); ``entity``: strings ``[T]`` (null for items).
    """

    node_type: np.ndarray
    item: np.ndarray
    entity: pa.Array


def type_endpoints(ids: pa.Array, *, items: IdEncoder, link_entity: pa.Array | None, link_item: np.ndarray | None) -> Endpoints:
    """Decide for every endpoint whether it is an item node or an entity node (module docstring)."""
    if link_entity is not None:
        position = pc.fill_null(pc.index_in(ids, value_set=link_entity), -1).to_numpy(zero_copy_only=False)
        item = np.where(position >= 0, link_item[np.maximum(position, 0)], -1) if len(link_item) else np.full(len(ids), -1)
    else:
        item = items.lookup(ids)
    is_item = item >= 0
    node_type = np.where(is_item, ITEM, ENTITY).astype(np.int8)
    entity = pc.if_else(pa.array(is_item), pa.scalar(None, pa.string()), ids)
    return Endpoints(node_type, item.astype(np.int64), entity)


@dataclass
class KgEdges:
    """KG triples with typed endpoints, after filters (see :func:`read_kg_edges`).

    Shapes:
        every field ``[T]``; ``relation`` strings.
    """

    head: Endpoints
    relation: pa.Array
    tail: Endpoints


def read_kg_edges(
    path: str | os.PathLike,
    *,
    items: IdEncoder,
    link_path: str | os.PathLike | None,
    item_map: np.ndarray,
    rejections: Rejections,
    encoding: str = "utf-8",
    batch_rows: int = 1_000_000,
) -> tuple[KgEdges, dict]:
    """Read the KG (and its link file), type endpoints, count unreachable triples, apply filters.

    A triple whose connected part of the KG holds no item (no chain of triples
    leads from it to an item node) cannot inform any item: it is kept but
    counted (``not_connected_to_items``; a sampled KG has some). Triples of
    items removed by a filter are dropped and counted.

    Args:
        path: the KG file.
        items: the finished item encoder.
        link_path: the item -> entity link file (:func:`read_link`), or ``None``.
        item_map: old item index -> index after filters (-1 for removed items).
        rejections: strict/lenient handling of bad rows.
        encoding, batch_rows: reading options.

    Returns:
        ``(edges, report)``; the report counts triples read, removed with
        filtered items, touching an item, not connected to any item, and linked items.
    """
    read = dict(rejections=rejections, encoding=encoding, batch_rows=batch_rows)
    triples, _ = read_kg(path, **read)
    link_entity, link_item = None, None
    if link_path is not None:
        kg_ids = pc.unique(pa.concat_arrays([triples["head"], triples["tail"]]))
        link_entity, link_item = read_link(link_path, items=items, kg_ids=kg_ids, **read)
    ends = [type_endpoints(triples[end], items=items, link_entity=link_entity, link_item=link_item) for end in ("head", "tail")]
    stranded = int(_without_item(ends, num_items=len(items)).sum())
    for end in ends:
        if len(item_map):  # no item at all: every endpoint is an entity already
            end.item = np.where(end.item >= 0, item_map[np.maximum(end.item, 0)], -1)
    # Items removed by a filter take their triples with them.
    alive = np.ones(len(ends[0].item), dtype=bool)
    for end in ends:
        alive &= (end.node_type == ENTITY) | (end.item >= 0)
    touches_item = (ends[0].node_type == ITEM) | (ends[1].node_type == ITEM)
    report = {
        "triples_read": len(alive),
        "removed_with_filtered_items": int((~alive).sum()),
        "item_endpoints": int(touches_item[alive].sum()),
        "not_connected_to_items": stranded,
    }
    if link_item is not None:
        report["linked_items"] = int(len(unique_sorted(link_item)))
    distinct = pa.table(triples).group_by(["head", "relation", "tail"], use_threads=False).aggregate([])
    report["duplicates_merged"] = len(alive) - distinct.num_rows
    if report["item_endpoints"] == 0 and len(alive):
        report["warning"] = "no KG triple touches an item: check the link file or the ids"
    mask = pa.array(alive)
    kept = [Endpoints(e.node_type[alive], e.item[alive], e.entity.filter(mask)) for e in ends]
    return KgEdges(kept[0], triples["relation"].filter(mask), kept[1]), report


def _without_item(ends: list[Endpoints], *, num_items: int) -> np.ndarray:
    """Mask of the triples whose connected component (items and entities as nodes) holds no item.

    Shapes:
        ``ends``: head and tail endpoints ``[T]``; returns bool ``[T]``.
    """
    n = len(ends[0].item)
    if n == 0:
        return np.zeros(0, dtype=bool)
    entity_codes = pc.dictionary_encode(pa.concat_arrays([e.entity for e in ends])).indices
    entity_codes = pc.fill_null(entity_codes, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    node = np.where(
        np.concatenate([e.node_type for e in ends]) == ITEM,
        np.concatenate([e.item for e in ends]),
        num_items + entity_codes,
    )
    size = int(node.max()) + 1
    adjacency = sp.coo_matrix((np.ones(n), (node[:n], node[n:])), shape=(size, size))
    _, label = connected_components(adjacency, directed=False)
    has_item = np.zeros(label.max() + 1, dtype=bool)
    has_item[label[node[node < num_items]]] = True
    return ~has_item[label[node[:n]]]


def social_frame(user: np.ndarray, friend: np.ndarray, *, user_map: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """The social table: edges of surviving users, exact duplicates merged (and counted).

    Args:
        user, friend: user index of each edge's ends (before filters).
        user_map: old user index -> index after filters (-1 for removed users).
    """
    a, b = user_map[user], user_map[friend]
    alive = (a >= 0) & (b >= 0)
    num_users = max(int(user_map.max()) + 1 if len(user_map) else 1, 1)
    key = unique_sorted(a[alive].astype(np.int64) * num_users + b[alive])
    frame = pd.DataFrame({"user": key // num_users, "friend": key % num_users})
    report = {
        "edges_read": len(a),
        "duplicates_merged": int(alive.sum()) - len(key),
        "removed_with_filtered_users": int((~alive).sum()),
        "self_loops": int((frame["user"] == frame["friend"]).sum()),
    }
    return frame, report
