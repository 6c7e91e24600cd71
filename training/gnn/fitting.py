"""The pieces of one :class:`~training.gnn.learner.GraphLearner` fit, each a function or object of its own.

:meth:`GraphLearner.fit <training.gnn.learner.GraphLearner.fit>` reads as its phases:
build the propagation graph and the :class:`GraphModel` (optionally continuing from a
:func:`load_warm_start`), then hand :func:`training.gnn.trainer.train` a
:class:`BPRStep` (the loss of one batch, full-graph or neighbor-sampled) and
:func:`validation_ndcg` (the early-stopping score), with :func:`fit_fingerprint`
identifying the run for checkpoints; the final embeddings are :func:`split_nodes` of
one last propagation.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from eval import evaluate
from kg.graph import Graph
from training.gnn.adjacency import GraphEdges, GraphView, NodeLayout, to_torch_csr
from training.gnn.bpr import gathered_bpr_loss
from training.gnn.checks import digest, feature_array
from training.gnn.init import ITEM_L2, TEXT_COMPONENTS, TEXT_SCALE, NodeEmbedding
from training.gnn.sampled import NeighborSampler

__all__ = [
    "VALIDATION_K",
    "BPRStep",
    "GraphModel",
    "build_model",
    "final_embeddings",
    "fit_features",
    "fit_fingerprint",
    "full_view",
    "load_warm_start",
    "neighbor_sampler",
    "split_nodes",
    "validation_ndcg",
]

VALIDATION_K = 20


class GraphModel(nn.Module):
    """Layer-0 embeddings followed by an encoder: ``encoder(embedding(nodes), view)``."""

    def __init__(self, embedding: NodeEmbedding, encoder: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding
        self.encoder = encoder

    def forward(self, view: GraphView, nodes: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.encoder(self.embedding(nodes), view)


def build_model(
    edges: GraphEdges,
    make_encoder: Callable[[], nn.Module],
    *,
    embedding_dim: int,
    item_features: Optional[np.ndarray],
    entity_features: Optional[np.ndarray],
    user_items: sp.csr_matrix,
    user_init: str,
    init_std: float,
    generator: torch.Generator,
    device: torch.device,
    text_components: int = TEXT_COMPONENTS,
    text_scale: float = TEXT_SCALE,
    item_l2: float = ITEM_L2,
) -> GraphModel:
    """The layer-0 embeddings of ``edges``' nodes, then the encoder ``make_encoder()`` builds, on ``device``.

    The embeddings draw from ``generator`` first and the encoder after them (the order
    a seed's results depend on). ``entity_features`` has one row per entity node.
    """
    embedding = NodeEmbedding(
        edges.layout,
        embedding_dim,
        item_features=item_features,
        entity_features=entity_features,
        user_items=user_items,
        user_init=user_init,
        init_std=init_std,
        generator=generator,
        text_components=text_components,
        text_scale=text_scale,
        item_l2=item_l2,
    )
    return GraphModel(embedding, make_encoder()).to(device)


def split_nodes(final: torch.Tensor, layout: NodeLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """The user rows and the item rows of a ``[num_nodes, d]`` node matrix."""
    return final[: layout.num_users], final[layout.item_offset : layout.entity_offset]


def full_view(edges: GraphEdges, normalized: Optional[sp.csr_matrix], device: torch.device) -> GraphView:
    """The whole propagation graph: the normalised adjacency when given, else ``edge_index``/``edge_type``."""
    n = edges.layout.num_nodes
    if normalized is not None:
        return GraphView(num_nodes=n, adjacency=to_torch_csr(normalized, device), symmetric=True)
    return GraphView(
        num_nodes=n,
        edge_index=edges.edge_index().to(device),
        edge_type=torch.from_numpy(edges.edge_type).to(device),
    )


def neighbor_sampler(
    edges: GraphEdges,
    normalized: Optional[sp.csr_matrix],
    *,
    num_neighbors: int,
    num_layers: int,
    device: torch.device,
) -> NeighborSampler:
    """Sampled mode's subgraph sampler: weighted by the normalised adjacency when given, else by edge type."""
    weighted = normalized is not None
    return NeighborSampler(
        normalized if weighted else edges.target_csr(),
        edge_type=None if weighted else edges.edge_type,
        num_neighbors=num_neighbors,
        num_layers=num_layers,
        weighted=weighted,
        device=device,
    )


class BPRStep:
    """The loss of one batch: propagate, then BPR over its pairs plus the L2 term of its embeddings.

    Full mode (``sampler=None``) propagates the whole graph (``view``) every step;
    sampled mode propagates only the subgraph ``sampler`` draws (with ``generator``)
    around the batch's nodes.

    Args:
        model: the model being trained.
        layout: where users and items sit among the nodes.
        num_negatives: negatives per positive.
        l2: weight of the batch's embedding penalty.
        device: where the model runs.
        view: the full graph (full mode).
        sampler: the subgraph sampler (sampled mode).
        generator: seeds the sampler.

    Shapes:
        ``step(users [B], items [B], negatives [B, num_negatives])`` (CPU int64) -> scalar loss.
    """

    def __init__(
        self,
        model: GraphModel,
        layout: NodeLayout,
        *,
        num_negatives: int,
        l2: float,
        device: torch.device,
        view: Optional[GraphView] = None,
        sampler: Optional[NeighborSampler] = None,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        self.model = model
        self.layout = layout
        self.num_negatives = num_negatives
        self.l2 = l2
        self.device = device
        self.view = view
        self.sampler = sampler
        self.generator = generator

    def __call__(self, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        nodes = self._batch_nodes(users, items, negatives)
        if self.sampler is None:
            final = self.model(self.view)
            return self._loss(final, nodes.to(self.device), users, items, negatives)
        seeds, inverse = torch.unique(nodes, return_inverse=True)
        sub = self.sampler.sample(seeds, self.generator)
        final = self.model(sub.view, sub.nodes)
        return self._loss(final, inverse.to(self.device), users, items, negatives)

    def _batch_nodes(self, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        offset = self.layout.item_offset
        return torch.cat([users, items + offset, negatives.flatten() + offset])

    def _loss(
        self, nodes: torch.Tensor, rows: torch.Tensor, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """BPR of the batch (``rows``: its users, positives, negatives in ``nodes``) plus the L2 term."""
        size = len(users)
        users, items, negatives = users.to(self.device), items.to(self.device), negatives.to(self.device)
        positives, negative_rows = rows[size : 2 * size], rows[2 * size :].view(size, self.num_negatives)
        penalty = self.model.embedding.batch_penalty(users, items, negatives)
        return gathered_bpr_loss(nodes, rows[:size], positives, negative_rows) + self.l2 * penalty / size


def validation_ndcg(
    model: GraphModel,
    view: GraphView,
    layout: NodeLayout,
    *,
    user_items: sp.csr_matrix,
    valid: sp.csr_matrix,
    item_ids: Any,
    device: torch.device,
) -> float:
    """NDCG@:data:`VALIDATION_K` of the model as it is now on ``valid`` (``user_items`` masked)."""
    with torch.no_grad():
        users_final, items_final = split_nodes(model(view), layout)
    result = evaluate(
        lambda batch: users_final[torch.as_tensor(batch, device=device)] @ items_final.T,
        train=user_items,
        test=valid,
        item_ids=item_ids,
        k=VALIDATION_K,
    )
    return result.metrics["ndcg"]


def load_warm_start(model: GraphModel, warm: Any, user_items: sp.csr_matrix, *, learner: Any) -> None:
    """Load ``warm``'s layer-0 parameters into ``learner``'s ``model``; start its unseen users as ``user_init`` says.

    Raises:
        ValueError: ``warm`` is not a fitted learner of ``learner``'s class, or its
            parameters do not fit ``model``.
    """
    if type(warm) is not type(learner) or not warm.is_fitted:
        raise ValueError(f"warm_start must be a fitted {type(learner).__name__}, got {warm!r}")
    current = model.state_dict()
    stored = warm.parameters_
    mismatch = sorted(
        key for key in set(current) | set(stored)
        if key not in current or key not in stored or tuple(current[key].shape) != tuple(stored[key].shape)
    )  # fmt: skip
    if mismatch:
        raise ValueError(
            f"warm_start's parameters do not fit this model (differ in {mismatch}); it must be fitted on the "
            "same graph with the same embedding_dim, num_layers, init, use_kg and use_social"
        )
    device = next(model.parameters()).device
    model.load_state_dict({key: value.to(device) for key, value in stored.items()})
    counts = np.diff(user_items.indptr)
    seen = getattr(warm, "user_counts_", None)
    unseen = (counts > 0) & (np.ones_like(counts, bool) if seen is None else np.asarray(seen) == 0)
    if learner.user_init == "mean_items" and unseen.any():
        model.embedding.start_users_at_item_means(user_items, unseen)


def fit_fingerprint(
    learner: Any,
    user_items: sp.csr_matrix,
    edges: GraphEdges,
    item_features: Optional[np.ndarray],
    entity_features: Optional[np.ndarray],
    warm_start: Any = None,
) -> dict[str, Any]:
    """What identifies ``learner``'s fit for its checkpoints: a checkpoint of another fingerprint is never resumed.

    The learner's settings (but its device), the data and the warm start's parameters.
    """
    config = {k: v for k, v in learner.get_config().items() if k != "device"}
    warm = None
    if warm_start is not None:
        params = warm_start.parameters_
        warm = digest(*(params[key].detach().cpu().numpy() for key in sorted(params)))
    return {
        "warm_start": warm,
        "learner": learner.name,
        "config": config,
        "interactions": digest(user_items.indptr, user_items.indices),
        "edges": digest(edges.src, edges.dst, edges.edge_type),
        "item_features": None if item_features is None else digest(item_features),
        "entity_features": None if entity_features is None else digest(entity_features),
    }


def fit_features(
    graph: Graph, item_features: Any, entity_features: Any, *, init: str, use_kg: bool
) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """The checked ``(item_features, entity_features)`` a fit with ``init`` and ``use_kg`` uses.

    ``(None, None)`` for ``init="random"``; no entity features without ``use_kg``.

    Raises:
        ValueError: ``init="text"`` without ``item_features``, or a feature array of
            the wrong shape or values.
        TypeError: a feature array that is not a numpy array.
    """
    if init == "random":
        return None, None
    if item_features is None:
        raise ValueError(
            f"init='text' needs item_features [num_items={graph.num_items}, d] (the text encoder's item "
            "embeddings); pass them to fit() or construct the learner with init='random'"
        )
    item_features = feature_array(item_features, "item_features", graph.num_items, allow_missing_rows=False)
    if entity_features is not None:
        entity_features = feature_array(
            entity_features, "entity_features", graph.num_entities, allow_missing_rows=True
        )
    # Without knowledge edges there are no entity nodes to describe.
    return item_features, entity_features if use_kg else None


def final_embeddings(
    model: GraphModel, view: GraphView, layout: NodeLayout, kept_entities: np.ndarray, *, num_entities: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The trained model's final user, item and entity vectors (zero rows for entities left out of the graph).

    Shapes:
        ``[num_users, d]``, ``[num_items, d]``, ``[num_entities, d]``.
    """
    with torch.no_grad():
        final = model(view)
    users, items = (t.contiguous() for t in split_nodes(final, layout))
    entities = final.new_zeros(num_entities, final.shape[1])
    entities[torch.from_numpy(kept_entities).to(final.device)] = final[layout.entity_offset :]
    return users, items, entities
