"""The Graph's tables from typed edges: side frames, entities, relations, triples.

Entities come from attribute values and KG endpoints that are not items; both
kinds share one id space (an attribute entity is ``"column=value"``, a KG
entity keeps its own id) and are indexed by the same rule as users and items
(:mod:`kg.ids`). An entity's ``name`` and ``source`` are those of the first
place it appears, attributes before the KG. Relations are the attribute column
names and the KG relation ids. Identical triples are stored once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kg.arrays import unique_rows
from kg.attributes import AttributeEdges, ColumnRoles
from kg.errors import InputError, Rejections
from kg.graph import ENTITY, ITEM, USER
from kg.ids import IdEncoder
from kg.knowledge import KgEdges
from kg.sidetables import SideTable
from kg.validate import number_column

__all__ = ["knowledge_tables", "side_frame", "string_column"]

_MAX_RELATIONS = np.iinfo(np.int16).max
_TRIPLE_COLUMNS = ("head_type", "head", "relation", "tail_type", "tail")


def string_column(array: pa.Array) -> pd.Series:
    """An Arrow string array as a pandas string column without a Python object per value."""
    return pd.Series(array.to_pandas(), copy=False)


def side_frame(table: SideTable, roles: ColumnRoles, rows: np.ndarray, ids: pa.Array) -> pd.DataFrame:
    """The side table as stored: one row per node, in node order.

    Args:
        table: the validated side table.
        roles: its column roles (numeric columns become float64, the rest strings).
        rows: the table row describing each node (-1: none, the row is all missing).
        ids: external ids by node index.
    """
    source = table.chunk.table
    take = pa.array(np.where(rows >= 0, rows, 0))
    missing = rows < 0
    data = {f"{table.kind}_id": string_column(ids)}
    quiet = Rejections(lenient=True)  # values were validated when the entities were made
    for column in source.column_names[1:]:
        if roles.roles.get(column) == "numeric":
            values, _ = number_column(table.chunk, column, role=column, path=table.path, rejections=quiet, required=False)
            picked = values[take.to_numpy()]
            picked[missing] = np.nan
            data[column] = picked
        else:
            array = pc.cast(source.column(column), pa.string()).combine_chunks().take(take)
            array = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), array)
            data[column] = string_column(array)
    return pd.DataFrame(data)


def knowledge_tables(
    attr_edges: list[tuple[str, AttributeEdges]], kg: KgEdges | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Entities, relations and typed triples (see the module docstring).

    Args:
        attr_edges: ``(kind, edges)`` of each side table (``kind`` ``"item"`` or ``"user"``).
        kg: the KG edges, or ``None``.

    Returns:
        ``(entities, relations, triples)`` frames in the layout of :mod:`kg.graph`.

    Raises:
        InputError: more relation types than the int16 relation column holds.
    """
    entity_enc, relation_enc = IdEncoder("entity"), IdEncoder("relation")
    entity_batches, names, sources, relation_batches = [], [], [], []
    for _, edges in attr_edges:
        entity_batches.append(entity_enc.add(edges.entity_id))
        names.append(edges.entity_name)
        sources.append(np.zeros(len(edges.node), np.int8))
        relation_batches.append(relation_enc.add(edges.relation))
    ends = () if kg is None else (kg.head, kg.tail)
    for end in ends:
        values = end.entity.filter(pa.array(end.node_type == ENTITY))
        entity_batches.append(entity_enc.add(values))
        names.append(values)
        sources.append(np.ones(len(values), np.int8))
    if kg is not None:
        relation_batches.append(relation_enc.add(kg.relation))
    entity_enc.finish()
    relation_enc.finish()
    if len(relation_enc) > _MAX_RELATIONS:
        raise InputError(f"{len(relation_enc)} relation types; the graph format holds at most {_MAX_RELATIONS}")
    entity_codes = [entity_enc.codes(h) for h in entity_batches]
    relation_codes = [relation_enc.codes(h) for h in relation_batches]
    _, first = np.unique(np.concatenate(entity_codes) if entity_codes else np.empty(0, np.int32), return_index=True)
    entities = pd.DataFrame({
        "entity_id": string_column(entity_enc.ids),
        "name": string_column(pa.concat_arrays(names).take(pa.array(first)) if names else pa.array([], pa.string())),
        "source": pd.Series(np.where(np.concatenate(sources)[first] == 0, "attribute", "kg") if sources else [],
                            dtype="string"),
    })
    relations = pd.DataFrame({"relation": string_column(relation_enc.ids)})

    rows = []
    for i, (kind, edges) in enumerate(attr_edges):
        n = len(edges.node)
        rows.append(np.stack([np.full(n, USER if kind == "user" else ITEM), edges.node, relation_codes[i],
                              np.full(n, ENTITY), entity_codes[i]], axis=1).astype(np.int64))
    if kg is not None:
        k = len(attr_edges)
        index = []
        for j, end in enumerate(ends):
            position = end.item.copy()
            position[end.node_type == ENTITY] = entity_codes[k + j]
            index.append(position)
        rows.append(np.stack([kg.head.node_type, index[0], relation_codes[k], kg.tail.node_type, index[1]],
                             axis=1).astype(np.int64))
    unique = unique_rows(np.concatenate(rows) if rows else np.empty((0, 5), np.int64))
    triples = pd.DataFrame({name: unique[:, _TRIPLE_COLUMNS.index(name)] for name in
                            ("head", "head_type", "relation", "tail", "tail_type")})
    return entities, relations, triples
