"""The homogeneous propagation graph over users, items and entities.

Every GNN learner propagates over one node space: users first, then items, then
entities (:class:`NodeLayout`). :func:`build_edges` collects the typed, directed
edges (both directions of every link): user-item interactions of ``user_items``,
every knowledge triple of the graph (item attributes, KG item-entity,
entity-entity and item-item triples, user attributes) when ``use_kg``, and
social user-user edges when ``use_social``. From those edges LightGCN takes the
symmetrically normalised binary adjacency (:func:`normalized_adjacency`), the
GAT takes ``edge_index`` and ``edge_type`` directly, and the neighbor sampler
takes the same CSR rows.

The adjacency is symmetric, so :func:`propagate` back-propagates with the very
same CSR matrix instead of letting autograd transpose it on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch

from kg.graph import ENTITY, ITEM, USER, Graph
from training.base import to_torch_csr

__all__ = [
    "GraphEdges",
    "GraphView",
    "NodeLayout",
    "build_edges",
    "compact_entities",
    "normalized_adjacency",
    "propagate",
    "to_torch_csr",
]


@dataclass(frozen=True)
class NodeLayout:
    """Where each node type lives in the homogeneous node space.

    Users occupy ``[0, num_users)``, items ``[num_users, num_users + num_items)``,
    entities the rest.
    """

    num_users: int
    num_items: int
    num_entities: int

    @property
    def item_offset(self) -> int:
        return self.num_users

    @property
    def entity_offset(self) -> int:
        return self.num_users + self.num_items

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items + self.num_entities

    def offset(self, node_type: int) -> int:
        """Global index of the first node of ``node_type`` (:data:`kg.graph.USER` ...)."""
        return {USER: 0, ITEM: self.item_offset, ENTITY: self.entity_offset}[node_type]


@dataclass(frozen=True)
class GraphEdges:
    """Directed typed edges of the propagation graph, every link in both directions.

    Attributes:
        layout: the node space.
        src: int64 source node of each edge, shape ``[E]``.
        dst: int64 target node of each edge, shape ``[E]``.
        edge_type: int64 relation of each edge, shape ``[E]``, an index into
            ``relation_names`` (``interacts``/``rev_interacts``, then each graph
            relation and its reverse, then ``follows``).
        relation_names: one name per edge type.
    """

    layout: NodeLayout
    src: np.ndarray
    dst: np.ndarray
    edge_type: np.ndarray
    relation_names: tuple[str, ...]

    @property
    def num_edges(self) -> int:
        return len(self.src)

    @property
    def num_relations(self) -> int:
        return len(self.relation_names)

    def edge_index(self) -> torch.Tensor:
        """``[2, E]`` int64 (source row, target row), as torch_geometric expects."""
        return torch.from_numpy(np.stack([self.src, self.dst]))

    def target_csr(self) -> sp.csr_matrix:
        """Every edge as a stored entry of a ``[num_nodes, num_nodes]`` CSR (row = target).

        Unlike :meth:`csr` it keeps parallel edges of different types; entry ``e``
        of ``indices``/``data`` is edge ``e`` (edges are sorted by target).
        """
        n = self.layout.num_nodes
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(self.dst, minlength=n), out=indptr[1:])
        return sp.csr_matrix((np.ones(self.num_edges, np.float32), self.src, indptr), shape=(n, n))

    def csr(self) -> sp.csr_matrix:
        """Binary ``[num_nodes, num_nodes]`` CSR, row = target, column = source (symmetric)."""
        n = self.layout.num_nodes
        matrix = sp.csr_matrix(
            (np.ones(self.num_edges, np.float32), (self.dst, self.src)), shape=(n, n), dtype=np.float32
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix


@dataclass(frozen=True)
class GraphView:
    """What an encoder propagates over: the whole graph or a sampled sub-graph.

    LightGCN reads ``adjacency`` (normalised, row = target); the GAT reads
    ``edge_index``/``edge_type``. A view carries whichever its encoder needs.

    Attributes:
        num_nodes: rows of the node matrix the encoder receives.
        adjacency: sparse CSR ``[num_nodes, num_nodes]`` or ``None``.
        symmetric: ``adjacency`` equals its transpose (the full graph).
        edge_index: int64 ``[2, E]`` (source, target) or ``None``.
        edge_type: int64 ``[E]`` or ``None``.
    """

    num_nodes: int
    adjacency: Optional[torch.Tensor] = None
    symmetric: bool = False
    edge_index: Optional[torch.Tensor] = None
    edge_type: Optional[torch.Tensor] = None


def build_edges(graph: Graph, user_items: sp.csr_matrix, *, use_kg: bool, use_social: bool) -> GraphEdges:
    """Collect the propagation edges.

    Args:
        graph: supplies the knowledge triples and social edges (its interactions
            are not read: ``user_items`` is what the learner may see).
        user_items: binary or weighted ``[num_users, num_items]`` CSR; each stored
            entry becomes one ``interacts`` edge and its reverse.
        use_kg: add the triples of ``graph.triples`` (and their reverses), except
            those of entities linked to fewer than two distinct nodes: such a
            leaf connects nothing and only dilutes its one neighbor's vector
            (ml-100k's Freebase KG is mostly actors of a single film). Without
            ``use_kg`` the node space holds no entities.
        use_social: add the symmetric social edges.

    Returns:
        The edges, de-duplicated per (source, target, type) and without self-loops.

    Shapes:
        ``user_items``: ``[num_users, num_items]``.
    """
    # Without knowledge edges entities would be isolated nodes: leave them out of the space.
    layout = NodeLayout(graph.num_users, graph.num_items, graph.num_entities if use_kg else 0)
    coo = user_items.tocoo()
    users = coo.row.astype(np.int64)
    items = coo.col.astype(np.int64) + layout.item_offset
    srcs, dsts, types = [users, items], [items, users], [np.zeros(len(users), np.int64), np.ones(len(users), np.int64)]
    names = ["interacts", "rev_interacts"]
    if use_kg and len(graph.triples):
        triples = graph.triples
        offsets = np.array([layout.offset(USER), layout.offset(ITEM), layout.offset(ENTITY)], np.int64)
        heads = triples["head"].to_numpy().astype(np.int64) + offsets[triples["head_type"].to_numpy()]
        tails = triples["tail"].to_numpy().astype(np.int64) + offsets[triples["tail_type"].to_numpy()]
        relation = triples["relation"].to_numpy().astype(np.int64)
        keep = _bridging(heads, tails, layout)
        heads, tails, relation = heads[keep], tails[keep], relation[keep]
        base = len(names)
        srcs += [heads, tails]
        dsts += [tails, heads]
        types += [base + 2 * relation, base + 2 * relation + 1]
        for name in graph.relation_names:
            names += [name, f"rev_{name}"]
    if use_social:
        social = graph.social_matrix().tocoo()
        if social.nnz:
            srcs.append(social.row.astype(np.int64))
            dsts.append(social.col.astype(np.int64))
            types.append(np.full(social.nnz, len(names), np.int64))
            names.append("follows")
    src, dst, edge_type = np.concatenate(srcs), np.concatenate(dsts), np.concatenate(types)
    keep = src != dst
    key = np.stack([dst[keep], src[keep], edge_type[keep]])
    # Unique by (target, source, type) also sorts by target: the GAT and the sampler like that order.
    key = np.unique(key, axis=1)
    return GraphEdges(layout=layout, src=key[1], dst=key[0], edge_type=key[2], relation_names=tuple(names))


def _bridging(heads: np.ndarray, tails: np.ndarray, layout: NodeLayout) -> np.ndarray:
    """Mask of triples whose entity ends each link at least two distinct nodes."""
    ends = np.concatenate([heads, tails])
    others = np.concatenate([tails, heads])
    pairs = np.unique(np.stack([ends, others]), axis=1)
    distinct = np.bincount(pairs[0], minlength=layout.num_nodes)
    bridging = (distinct >= 2) | (np.arange(layout.num_nodes) < layout.entity_offset)
    return bridging[heads] & bridging[tails]


def compact_entities(edges: GraphEdges) -> tuple[GraphEdges, np.ndarray]:
    """Drop the entities without an edge from the node space.

    An isolated node reaches neither the propagation nor the loss, yet every dense
    operation of a step (layer sums, the gradient, Adam's update) would carry it: on
    ml-100k's KG 25k of 34k entities are leaves that :func:`build_edges` cut off.

    Returns:
        ``(edges, kept)``: the same edges over a node space with only the connected
        entities (users and items unchanged), and ``kept``, the int64 original entity
        index of each remaining entity.
    """
    layout = edges.layout
    linked = np.zeros(layout.num_nodes, bool)
    linked[edges.src] = True
    linked[edges.dst] = True
    kept = np.flatnonzero(linked[layout.entity_offset :]).astype(np.int64)
    if len(kept) == layout.num_entities:
        return edges, kept
    remap = np.arange(layout.num_nodes, dtype=np.int64)
    remap[layout.entity_offset + kept] = layout.entity_offset + np.arange(len(kept))
    compact = GraphEdges(
        layout=NodeLayout(layout.num_users, layout.num_items, len(kept)),
        src=remap[edges.src],
        dst=remap[edges.dst],
        edge_type=edges.edge_type,
        relation_names=edges.relation_names,
    )
    return compact, kept


def normalized_adjacency(edges: GraphEdges) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2`` of the binary adjacency (LightGCN's propagation matrix).

    Nodes without edges keep an all-zero row. Float32, sorted indices, symmetric.
    """
    adjacency = edges.csr()
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    np.power(degree, -0.5, out=inv_sqrt, where=degree > 0)
    normalized = sp.diags(inv_sqrt) @ adjacency @ sp.diags(inv_sqrt)
    normalized = sp.csr_matrix(normalized, dtype=np.float32)
    normalized.sort_indices()
    return normalized


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ x`` for a symmetric sparse ``A``: the gradient is ``A @ grad`` again.

    torch's own backward of ``sparse.mm`` builds ``A^T`` (a CSR transpose) on
    every call; with a symmetric ``A`` that work is pure waste.
    """

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return torch.sparse.mm(adjacency, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, torch.sparse.mm(ctx.adjacency, grad.contiguous())


def propagate(adjacency: torch.Tensor, x: torch.Tensor, *, symmetric: bool) -> torch.Tensor:
    """One propagation step ``adjacency @ x``.

    Args:
        adjacency: sparse CSR ``[N, M]`` (row = target).
        x: dense ``[M, d]``.
        symmetric: ``adjacency`` equals its transpose; back-propagate through it
            directly (faster). Pass ``False`` for sampled sub-graphs.

    Shapes:
        returns ``[N, d]``.
    """
    if symmetric:
        return _SymmetricSpMM.apply(adjacency, x)
    return torch.sparse.mm(adjacency, x)
