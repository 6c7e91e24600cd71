"""Relation-aware graph attention over the user-item-knowledge graph.

Brody et al., "How Attentive are Graph Attention Networks?" (ICLR 2022): each
layer is a torch_geometric :class:`~torch_geometric.nn.conv.GATv2Conv` whose
attention also sees a learned embedding of the edge's relation (``edge_dim``),
so a user can weigh, say, an item's director differently from its genre, and
an item its raters differently from its attributes:

    a_ij = softmax_j( w^T LeakyReLU(W_s x_j + W_t x_i + W_r r_type(ij)) )
    x_i^(l+1) = sum_j a_ij W_s x_j

Layers stay linear (as in LightGCN, non-linearities do not help collaborative
filtering) and the final vector is the mean of the layer vectors. ``W_s``
starts at the identity, so an untrained layer is a plain neighborhood mean
and training only has to learn where attention should deviate from it.
"""

from __future__ import annotations

from typing import Any, Union

import torch
from torch import nn
from torch_geometric.nn import GATv2Conv

from eval.checks import positive_int
from training.base import extends_arguments
from training.gnn.adjacency import GraphEdges, GraphView
from training.gnn.learner import GraphLearner

__all__ = ["GAT", "RelationalGATEncoder"]


class RelationalGATEncoder(nn.Module):
    """Stacked relation-aware GATv2 layers with layer averaging.

    Args:
        dim: node vector size ``d`` (input and output).
        num_layers: attention layers ``L``.
        num_relations: edge types (rows of the relation embedding).
        heads: attention heads per layer (averaged, not concatenated).
        relation_dim: size of the relation embedding fed to the attention.
        generator: seeds the parameter initialisation.

    Shapes:
        ``forward(x, view)``: ``[n, d]`` to ``[n, d]``; ``view.edge_index`` ``[2, E]``,
        ``view.edge_type`` ``[E]``.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int,
        num_relations: int,
        *,
        heads: int,
        relation_dim: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.relation = nn.Parameter(torch.empty(num_relations, relation_dim))
        self.convs = nn.ModuleList(
            GATv2Conv(dim, dim, heads=heads, concat=False, edge_dim=relation_dim, add_self_loops=False)
            for _ in range(num_layers)
        )
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Seeded re-initialisation (torch_geometric's own reset draws from the global RNG)."""
        nn.init.xavier_uniform_(self.relation, generator=generator)
        for conv in self.convs:
            for name, param in conv.named_parameters():
                if name == "lin_l.weight":
                    heads = param.shape[0] // param.shape[1]
                    param.copy_(torch.eye(param.shape[1]).repeat(heads, 1))
                elif param.dim() > 1:
                    nn.init.xavier_uniform_(param, generator=generator)
                else:
                    param.zero_()

    def forward(self, x: torch.Tensor, view: GraphView) -> torch.Tensor:
        if view.edge_index is None or view.edge_type is None:
            raise ValueError("RelationalGATEncoder needs a view with edge_index and edge_type")
        edge_attr = self.relation[view.edge_type]
        out, h = x, x
        for conv in self.convs:
            h = conv(h, view.edge_index, edge_attr)
            out = out + h
        return out / (len(self.convs) + 1)


@extends_arguments
class GAT(GraphLearner):
    """Text-initialised relation-aware GAT learner (``name = "gat"``).

    Takes every argument of :class:`training.gnn.LightGCN` (forwarded to
    :class:`~training.gnn.learner.GraphLearner`), with a fixed schedule by default
    (the one its benchmark rows were measured with): ``num_layers=2``,
    ``epochs=200``, ``batch_size=8192``, ``num_negatives=4``, ``patience=3``,
    ``eval_every=5``, ``min_gain=0``. Plus:

    Args:
        heads: attention heads per layer.
        relation_dim: size of the learned relation embedding the attention sees.
    """

    name = "gat"
    view_kind = "edges"

    def __init__(
        self,
        *,
        num_layers: int = 2,
        epochs: Union[int, str] = 200,
        batch_size: Union[int, str] = 8192,
        num_negatives: Union[int, str] = 4,
        patience: Union[int, str] = 3,
        eval_every: Union[int, str] = 5,
        min_gain: Union[float, str] = 0.0,
        heads: int = 1,
        relation_dim: int = 16,
        **options: Any,
    ) -> None:
        super().__init__(
            num_layers=num_layers,
            epochs=epochs,
            batch_size=batch_size,
            num_negatives=num_negatives,
            patience=patience,
            eval_every=eval_every,
            min_gain=min_gain,
            **options,
        )
        positive_int(heads, "heads")
        positive_int(relation_dim, "relation_dim")
        self.heads = heads
        self.relation_dim = relation_dim

    def _make_encoder(self, edges: GraphEdges, generator: torch.Generator) -> nn.Module:
        return RelationalGATEncoder(
            self.embedding_dim,
            self.num_layers,
            edges.num_relations,
            heads=self.heads,
            relation_dim=self.relation_dim,
            generator=generator,
        )
