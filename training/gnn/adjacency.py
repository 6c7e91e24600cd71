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

The adjacency is symmetric, so :func:`layer_mean` back-propagates with the very
same CSR matrix instead of letting autograd transpose it on every call.
"""

from __future__ import annotations

import math
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
    "layer_mean",
    "normalized_adjacency",
    "to_torch_csr",
    "unique_columns",
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
    # Unique by (target, source, type) also sorts by target: the GAT and the sampler like that order.
    dst, src, edge_type = unique_columns(
        (dst[keep], src[keep], edge_type[keep]), (layout.num_nodes, layout.num_nodes, len(names))
    )
    return GraphEdges(layout=layout, src=src, dst=dst, edge_type=edge_type, relation_names=tuple(names))


def unique_columns(rows: tuple[np.ndarray, ...], bounds: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """``np.unique(np.stack(rows), axis=1)`` (distinct columns, sorted lexicographically), as a tuple of rows.

    Each row holds non-negative integers below its bound. When the bounds' product fits in
    int64 the columns are packed into one key each, sorted and de-duplicated: ``np.unique``
    (with or without ``axis``) took 40 s for the 18.7M edges of the synthetic 10M log.

    Examples:
        >>> [r.tolist() for r in unique_columns((np.array([1, 0, 1]), np.array([2, 5, 2])), (2, 6))]
        [[0, 1], [5, 2]]
    """
    if math.prod(int(b) for b in bounds) >= 2**63:
        return tuple(np.unique(np.stack(rows), axis=1))
    key = np.zeros(len(rows[0]), np.int64)
    for row, bound in zip(rows, bounds):
        key *= int(bound)
        key += row
    # Sort and drop repeats: numpy 2's np.unique hashes first (30 s on those 18.7M keys, 2 s sorted).
    key.sort()
    key = key[np.concatenate(([True], key[1:] != key[:-1]))] if len(key) else key
    out = []
    for bound in reversed(bounds):
        key, row = np.divmod(key, int(bound))
        out.append(row)
    return tuple(reversed(out))


def _bridging(heads: np.ndarray, tails: np.ndarray, layout: NodeLayout) -> np.ndarray:
    """Mask of triples whose entity ends each link at least two distinct nodes."""
    ends = np.concatenate([heads, tails])
    others = np.concatenate([tails, heads])
    pairs = unique_columns((ends, others), (layout.num_nodes, layout.num_nodes))
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


class _SymmetricLayerMean(torch.autograd.Function):
    """LightGCN's ``(x + A x + ... + A^L x) / (L + 1)`` for a symmetric sparse ``A``, as one autograd node.

    The gradient is the same polynomial of ``A`` applied to the incoming gradient
    (``A`` equals its transpose), evaluated in Horner form. Autograd over ``L``
    separate products would transpose ``A`` on every backward call and keep every
    layer's output alive; here no layer output is saved and each product writes
    into one of two reused buffers (``addmm`` with ``out=``): on the synthetic
    10M log (714k nodes, 18.7M stored entries) a fresh output per product cost a
    third of the product itself in allocation and zero-filling.
    """

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, x: torch.Tensor, num_layers: int) -> torch.Tensor:
        ctx.adjacency, ctx.num_layers = adjacency, num_layers
        total = x.clone()
        buffers = (torch.empty_like(x), torch.empty_like(x)) if num_layers else ()
        source = x
        for layer in range(num_layers):
            target = buffers[layer % 2]
            torch.addmm(target, adjacency, source, beta=0, out=target)
            total += target
            source = target
        return total.div_(num_layers + 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous() / (ctx.num_layers + 1)
        if ctx.num_layers == 0:
            return None, grad, None
        # g + A (g + A (g + ...)): L products, each adding g in the same call.
        buffers = (torch.empty_like(grad), torch.empty_like(grad))
        source = grad
        for layer in range(ctx.num_layers):
            target = buffers[layer % 2]
            torch.addmm(grad, ctx.adjacency, source, out=target)
            source = target
        return None, source, None


def layer_mean(adjacency: torch.Tensor, x: torch.Tensor, num_layers: int, *, symmetric: bool) -> torch.Tensor:
    """LightGCN's propagation: the mean of ``x, A x, ..., A^num_layers x``.

    Args:
        adjacency: sparse CSR ``[N, N]`` (row = target).
        x: dense ``[N, d]``.
        num_layers: products ``L``.
        symmetric: ``adjacency`` equals its transpose (the full graph): one fused
            autograd node that back-propagates through the same matrix. Pass ``False``
            for sampled sub-graphs (autograd over each product).

    Shapes:
        returns ``[N, d]``.
    """
    if symmetric:
        return _SymmetricLayerMean.apply(adjacency, x, num_layers)
    out, h = x, x
    for _ in range(num_layers):
        h = torch.sparse.mm(adjacency, h)
        out = out + h
    return out / (num_layers + 1)
