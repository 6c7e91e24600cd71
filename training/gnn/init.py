"""Layer-0 node embeddings: text/attribute projections plus learnable ID residuals.

With ``init="text"`` an item's (and a described entity's) layer-0 vector is

    x_i = P f_i + r_i

where ``f_i`` is its precomputed text embedding mapped by a fixed linear map
(:func:`fit_text_map`: centred, whitened onto its top ``text_components``
principal components, scaled to RMS norm ``text_scale``), ``P`` a learned linear
projection shared by all items (entities have their own map and projection), and
``r_i`` a per-node residual that starts at zero. The residual is
what the L2 penalty of the batch acts on (weighted by ``item_l2``), so the prior of
every item is its text position: items with many interactions move away from it as
far as their data asks, long-tail items with few stay close to it and inherit what
``P`` learned from the head. How firmly is ``item_l2``'s business: on ml-100k a
lighter item penalty (0.1) lifts the GNN's TailRecall@20 by a fifth with either init
(bench/results/text_gnn_init.md), so it is the share of the penalty, not the text,
that held the tail back. With ``init="random"`` every node has a free ID embedding (the
ablation). Users are free embeddings, either random or (``user_init=
"mean_items"``) started at the mean of their items' initial vectors.

Why whiten: a sentence encoder puts every text in one narrow cone whose few
dominant directions carry most of the variance (topic-independent style and
length); a random ``P`` on the raw vectors spends the items' initial spread on
those. On ml-100k's validation split (5 seeds, bench/results/text_gnn_init.md)
the whitened top-64 map is at least as good as centring alone on NDCG@20 and
TailRecall@20 means, but neither is distinguishable from random init there.
The map's mean and basis are persistent buffers, so they are saved with the
learner and :meth:`training.gnn.learner.GraphLearner.embed_new_items` compares
new items' text with the known items' in the same mapped space (the space the
model's item vectors were learned from: there the neighbors predict a held-out
item's vector best).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from eval.checks import positive_float, positive_int
from training.gnn.adjacency import NodeLayout

__all__ = [
    "INITS", "ITEM_L2", "TEXT_COMPONENTS", "TEXT_SCALE", "USER_INITS", "NodeEmbedding", "apply_text_map",
    "fit_text_map", "standardize_features",
]  # fmt: skip

INITS = ("text", "random")
USER_INITS = ("learned", "mean_items")
# Defaults of the text map, chosen on ml-100k's validation split (bench/results/text_gnn_init.md).
TEXT_COMPONENTS = 64
TEXT_SCALE = 1.0
# Weight of the items' share of the L2 term (with text init: of the residuals, so how firmly an
# item is held at its text position). 0.1 makes the GNN alone better on ml-100k (either init) and
# gowalla (random init), but the hybrid it feeds slightly worse on both (bench/results/text_gnn_init.md):
# the pipeline keeps 1.
ITEM_L2 = 1.0
# Principal directions whose variance is below this share of the largest are noise
# (or absent: fewer distinct texts than dimensions); whitening would blow them up.
_RANK_TOLERANCE = 1e-6


def standardize_features(features: np.ndarray) -> np.ndarray:
    """Centre the rows and scale them to unit root-mean-square norm (the text map with ``components=0``).

    Shapes:
        ``[n, d_text]`` to ``[n, d_text]`` float32.
    """
    return apply_text_map(features, *fit_text_map(features, components=0, scale=1.0))


def fit_text_map(
    features: np.ndarray, *, components: int = TEXT_COMPONENTS, scale: float = TEXT_SCALE
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed linear map ``f = (x - mean) @ basis`` of the text vectors ``features``.

    ``components > 0``: ``basis`` projects on the top ``components`` principal
    directions of ``features`` and divides each by its standard deviation
    (PCA whitening: the mapped rows have identity covariance, up to the factor
    below), so that no direction of the encoder's cone dominates the projection
    learned on top of it. Directions with (numerically) no variance are dropped,
    so fewer than ``components`` columns come back when the texts span fewer.
    ``components = 0``: no projection; ``basis`` is the identity (the centring
    and scaling of :func:`standardize_features`).

    Either way the mapped rows are scaled to root-mean-square norm ``scale``
    (whitened: covariance ``scale**2 / k * I`` over the ``k`` kept components).
    The eigenvectors' signs are fixed (largest entry positive), so the map is a
    deterministic function of ``features``.

    Args:
        features: ``[n, d_text]`` finite text vectors of the fitted nodes.
        components: principal components kept (0: all, not whitened).
        scale: RMS norm of the mapped rows.

    Returns:
        ``(mean [d_text], basis [d_text, k])`` float32, ``k <= min(components, d_text)``
        (``k = d_text`` for ``components = 0``).

    Raises:
        ValueError: ``features`` is not a 2-D finite array with a row, or a knob is out of range.
    """
    features = np.asarray(features)
    if features.ndim != 2 or len(features) == 0 or not np.isfinite(features).all():
        raise ValueError(f"features must be a finite [n >= 1, d] array, got shape {features.shape}")
    positive_int(components, "components", minimum=0)
    positive_float(scale, "scale")
    x = features.astype(np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    if components == 0:
        rms = float(np.sqrt((centred**2).sum(axis=1).mean()))
        basis = np.eye(x.shape[1]) * (scale / max(rms, 1e-12))
        return mean.astype(np.float32), basis.astype(np.float32)
    # Eigen-decomposition of the d x d covariance: O(n d^2), as an SVD of the rows, in less memory.
    variances, vectors = np.linalg.eigh(centred.T @ centred / len(x))
    order = np.argsort(variances)[::-1]
    variances, vectors = variances[order], vectors[:, order]
    kept = variances > _RANK_TOLERANCE * max(float(variances[0]), 1e-300)
    k = min(int(components), int(kept.sum()))
    if k == 0:  # every row is the same text: nothing to whiten, one zero column
        return mean.astype(np.float32), np.zeros((x.shape[1], 1), np.float32)
    vectors = vectors[:, :k]
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(k)])
    basis = vectors * signs / np.sqrt(variances[:k]) * (scale / np.sqrt(k))
    return mean.astype(np.float32), basis.astype(np.float32)


def apply_text_map(features: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``(features - mean) @ basis`` as float32 (the map of :func:`fit_text_map`).

    Shapes:
        ``features [n, d_text]``, ``mean [d_text]``, ``basis [d_text, k]`` to ``[n, k]``.

    Raises:
        ValueError: ``features`` does not have ``d_text`` columns.
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != len(mean):
        raise ValueError(f"features must be [n, {len(mean)}] (the fitted text width), got shape {features.shape}")
    return ((features.astype(np.float64) - mean) @ basis).astype(np.float32)


class NodeEmbedding(nn.Module):
    """Layer-0 embeddings of every node of a :class:`NodeLayout`.

    Args:
        layout: node counts.
        dim: embedding size.
        item_features: ``[num_items, d_text]`` text embeddings, or ``None`` for
            free item embeddings.
        entity_features: ``[num_entities, d_ent]``; rows that are all NaN mark
            entities without text (they get free embeddings). ``None``: all free.
        user_items: ``[num_users, num_items]`` CSR, needed for ``user_init="mean_items"``.
        user_init: ``"learned"`` or ``"mean_items"``.
        init_std: standard deviation of free embeddings at initialisation.
        generator: the seeded CPU generator every random draw uses.
        connected_entities: boolean ``[num_entities]``, entities with at least one
            edge. In training mode only those are projected: an isolated entity
            reaches neither the propagation nor the loss, and projecting every
            described entity each step would dominate a step's cost on a large KG.
            ``None``: all.
        text_components: principal components the text map keeps and whitens
            (:func:`fit_text_map`; 0: only centre and scale). Items and entities
            each get their own map, fitted on their own vectors.
        text_scale: RMS norm of the mapped text vectors.
        item_l2: weight of the items' rows in :meth:`batch_penalty` and :meth:`item_penalty`
            (the users' weigh 1). With text init the rows are the residuals: a low weight lets
            items move from their text position as their data asks.

    Buffers saved in the state dict: ``item_text_mean [d_text]`` and
    ``item_text_basis [d_text, k]`` (``entity_text_*`` likewise), the fitted maps.

    Shapes:
        ``forward(nodes)``: ``[len(nodes), dim]`` (``[num_nodes, dim]`` for ``None``).
    """

    def __init__(
        self,
        layout: NodeLayout,
        dim: int,
        *,
        item_features: Optional[np.ndarray],
        entity_features: Optional[np.ndarray],
        user_items: Optional[sp.csr_matrix],
        user_init: str,
        init_std: float,
        generator: torch.Generator,
        connected_entities: Optional[np.ndarray] = None,
        text_components: int = TEXT_COMPONENTS,
        text_scale: float = TEXT_SCALE,
        item_l2: float = ITEM_L2,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.dim = dim
        self.item_l2 = positive_float(item_l2, "item_l2", allow_zero=True)

        def free(rows: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(rows, dim, generator=generator) * init_std)

        def projection(width: int) -> nn.Linear:
            linear = nn.Linear(width, dim, bias=False)
            with torch.no_grad():
                # Unit-norm features times N(0, init_std^2) weights: projected
                # coordinates start with the spread of a free embedding.
                linear.weight.copy_(torch.randn(dim, width, generator=generator) * init_std)
            return linear

        def mapped(name: str, features: np.ndarray) -> torch.Tensor:
            """Fit the text map of ``features``, keep it as ``<name>_text_*`` buffers, return the mapped rows."""
            mean, basis = fit_text_map(features, components=text_components, scale=text_scale)
            self.register_buffer(f"{name}_text_mean", torch.from_numpy(mean))
            self.register_buffer(f"{name}_text_basis", torch.from_numpy(basis))
            return torch.from_numpy(apply_text_map(features, mean, basis))

        self.user = free(layout.num_users)
        if item_features is not None:
            self.register_buffer("item_features", mapped("item", item_features), persistent=False)
            self.item_projection = projection(self.item_features.shape[1])
            self.item = nn.Parameter(torch.zeros(layout.num_items, dim))
        else:
            self.item_features = None
            self.item_projection = None
            self.item = free(layout.num_items)

        described = np.zeros(layout.num_entities, bool)
        if entity_features is not None and layout.num_entities:
            described = ~np.isnan(entity_features).all(axis=1)
        self.entity = free(layout.num_entities)
        if described.any():
            rows = np.full(layout.num_entities, -1, np.int64)
            rows[described] = np.arange(int(described.sum()))
            self.register_buffer("entity_row", torch.from_numpy(rows), persistent=False)
            self.register_buffer("entity_features", mapped("entity", entity_features[described]), persistent=False)
            self.entity_projection = projection(self.entity_features.shape[1])
            with torch.no_grad():
                self.entity[torch.from_numpy(described)] = 0.0
        else:
            self.entity_row = None
            self.entity_features = None
            self.entity_projection = None
        if connected_entities is not None:
            connected = torch.from_numpy(np.asarray(connected_entities, bool))
            self.register_buffer("entity_connected", connected, persistent=False)
        else:
            self.entity_connected = None

        if user_init == "mean_items":
            self.start_users_at_item_means(user_items)

    @torch.no_grad()
    def start_users_at_item_means(self, user_items: sp.csr_matrix, users: Optional[np.ndarray] = None) -> None:
        """Set the vectors of ``users`` (boolean ``[num_users]``; ``None``: all) with items to their items' mean."""
        counts = np.diff(user_items.indptr)
        has_items = counts > 0 if users is None else (counts > 0) & np.asarray(users, bool)
        weights = sp.csr_matrix(sp.diags(1.0 / np.maximum(counts, 1)) @ (user_items > 0), dtype=np.float32)
        items = self.items(None).detach().cpu().numpy()
        means = torch.from_numpy(np.asarray(weights @ items, dtype=np.float32)).to(self.user.device)
        mask = torch.from_numpy(has_items).to(self.user.device)
        self.user[mask] = means[mask]

    def items(self, index: Optional[torch.Tensor]) -> torch.Tensor:
        """Layer-0 vectors of items ``index`` (local item indices; ``None`` = all)."""
        residual = self.item if index is None else self.item[index]
        if self.item_projection is None:
            return residual
        features = self.item_features if index is None else self.item_features[index]
        return self.item_projection(features) + residual

    def entities(self, index: Optional[torch.Tensor]) -> torch.Tensor:
        """Layer-0 vectors of entities ``index`` (local entity indices; ``None`` = all)."""
        free = self.entity if index is None else self.entity[index]
        if self.entity_projection is None:
            return free
        rows = self.entity_row if index is None else self.entity_row[index]
        described = rows >= 0
        if self.training and index is None and self.entity_connected is not None:
            described = described & self.entity_connected
        projected = self.entity_projection(self.entity_features[rows[described]])
        return free.index_add(0, described.nonzero().squeeze(1), projected)

    def forward(self, nodes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Layer-0 vectors of the global ``nodes`` (``None``: all nodes in layout order)."""
        if nodes is None:
            return torch.cat([self.user, self.items(None), self.entities(None)])
        layout = self.layout
        out = torch.empty(len(nodes), self.dim, device=self.user.device, dtype=self.user.dtype)
        is_user = nodes < layout.item_offset
        is_entity = nodes >= layout.entity_offset
        is_item = ~is_user & ~is_entity
        out[is_user] = self.user[nodes[is_user]]
        out[is_item] = self.items(nodes[is_item] - layout.item_offset)
        out[is_entity] = self.entities(nodes[is_entity] - layout.entity_offset)
        return out

    def batch_penalty(self, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """``user_penalty(users) + item_penalty(items) + item_penalty(negatives.flatten()) / num_negatives``
        (``item_penalty`` carries the ``item_l2`` weight).

        Written as each row's squared norm times how often the batch holds it: one
        dense pass over the parameters instead of three gathers whose backward
        zero-fills and scatters into a full-size gradient each.

        Shapes:
            ``users``, ``items``: ``[B]`` local indices; ``negatives``: ``[B, num_negatives]``.
        """
        num_negatives = negatives.shape[1]
        user_count = torch.bincount(users, minlength=self.layout.num_users).to(self.user.dtype)
        item_count = torch.bincount(items, minlength=self.layout.num_items).to(self.item.dtype)
        item_count += torch.bincount(negatives.reshape(-1), minlength=self.layout.num_items).to(self.item.dtype) / num_negatives
        items = (self.item.pow(2).sum(1) * item_count).sum()
        return (self.user.pow(2).sum(1) * user_count).sum() + self.item_l2 * items

    def user_penalty(self, users: torch.Tensor) -> torch.Tensor:
        """Sum of squares of the free vectors of ``users`` (local indices)."""
        return self.user[users].pow(2).sum()

    def item_penalty(self, items: torch.Tensor) -> torch.Tensor:
        """``item_l2`` times the sum of squares of the per-item parameters of ``items`` (local indices).

        With text initialisation these are the residuals, so the penalty pulls an
        item towards its projected text rather than towards the origin.
        """
        return self.item_l2 * self.item[items].pow(2).sum()

    def extra_repr(self) -> str:
        text = "text" if self.item_projection is not None else "random"
        return f"{self.layout.num_nodes} nodes, dim={self.dim}, items={text}"
