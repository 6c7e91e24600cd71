"""The graph as a ``torch_geometric.data.HeteroData`` (for users of PyG's heterogeneous models)."""

from __future__ import annotations

import numpy as np

from kg.graph import ENTITY, ITEM, USER, Graph

__all__ = ["to_hetero_data"]


def to_hetero_data(graph: Graph, splits: tuple[str, ...] = ("train",)):
    """A ``torch_geometric.data.HeteroData`` view.

    Node types ``user``, ``item``, ``entity`` carry ``num_nodes``, ``ids``
    (external ids) and ``table`` (the side table). Edge types, present when
    non-empty: ``(user, interacts, item)`` with ``edge_weight`` for the given
    splits and its reverse ``(item, rev_interacts, user)``;
    ``(item, has, entity)`` / ``(entity, rev_has, item)``,
    ``(user, has, entity)`` / ``(entity, rev_has, user)``,
    ``(entity, related, entity)`` and ``(item, related, item)`` with
    ``edge_type`` (relation index into ``relation_names``); ``(user, follows, user)``.
    """
    import torch
    from torch_geometric.data import HeteroData

    data = HeteroData()
    for name, table, id_col in (
        ("user", graph.users, "user_id"),
        ("item", graph.items, "item_id"),
        ("entity", graph.entities, "entity_id"),
    ):
        data[name].num_nodes = len(table)
        data[name].ids = table[id_col].astype(str).tolist()
        data[name].table = table
    data.relation_names = graph.relation_names

    mask = graph.split_mask(*splits)
    inter = graph.interactions
    users = torch.from_numpy(inter["user"].to_numpy()[mask].astype(np.int64))
    items = torch.from_numpy(inter["item"].to_numpy()[mask].astype(np.int64))
    weight = torch.from_numpy(inter["weight"].to_numpy()[mask].astype(np.float32))
    if len(users):
        data["user", "interacts", "item"].edge_index = torch.stack([users, items])
        data["user", "interacts", "item"].edge_weight = weight
        data["item", "rev_interacts", "user"].edge_index = torch.stack([items, users])
        data["item", "rev_interacts", "user"].edge_weight = weight

    def add(src: str, rel: str, dst: str, heads, tails, rels, reverse: str | None):
        if not len(heads):
            return
        edge_index = torch.from_numpy(np.stack([heads, tails]))
        edge_type = torch.from_numpy(rels)
        data[src, rel, dst].edge_index = edge_index
        data[src, rel, dst].edge_type = edge_type
        if reverse:
            data[dst, reverse, src].edge_index = edge_index.flip(0)
            data[dst, reverse, src].edge_type = edge_type

    add("item", "has", "entity", *graph.typed_edges(ITEM, ENTITY, True), "rev_has")
    add("user", "has", "entity", *graph.typed_edges(USER, ENTITY, True), "rev_has")
    add("entity", "related", "entity", *graph.typed_edges(ENTITY, ENTITY, False), None)
    add("item", "related", "item", *graph.typed_edges(ITEM, ITEM, False), None)
    social = graph.social_matrix().tocoo()
    if social.nnz:
        data["user", "follows", "user"].edge_index = torch.from_numpy(
            np.stack([social.row, social.col]).astype(np.int64)
        )
    return data
