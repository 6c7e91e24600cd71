"""LightGCN over the user-item-knowledge graph.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation" (SIGIR 2020). Each layer is one multiplication by the
symmetrically normalised adjacency, the final vector of a node the mean of its
layer vectors:

    x^(l+1) = D^-1/2 A D^-1/2 x^(l),    e = 1/(L+1) sum_{l=0..L} x^(l)

Here ``A`` also holds item-entity (attribute and KG) and, optionally, social
edges, and ``x^(0)`` comes from :class:`training.gnn.init.NodeEmbedding` (text
projection plus ID residual). The full-graph path multiplies by a torch sparse
CSR matrix built once per fit, back-propagating through the same matrix (the
adjacency is symmetric); measured on CPU it is an order of magnitude faster
than torch_geometric's gather/scatter ``LGConv`` (bench/gnn_speed.py).
"""

from __future__ import annotations

import torch
from torch import nn

from training.gnn.adjacency import GraphEdges, GraphView, layer_mean
from training.gnn.learner import GraphLearner

__all__ = ["LightGCN", "LightGCNEncoder"]


class LightGCNEncoder(nn.Module):
    """Parameter-free LightGCN propagation with uniform layer averaging.

    Args:
        num_layers: propagation layers ``L``.

    Shapes:
        ``forward(x, view)``: ``[n, d]`` to ``[n, d]``; ``view.adjacency`` ``[n, n]``.
    """

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers

    def forward(self, x: torch.Tensor, view: GraphView) -> torch.Tensor:
        if view.adjacency is None:
            raise ValueError("LightGCNEncoder needs a view with a sparse adjacency")
        return layer_mean(view.adjacency, x, self.num_layers, symmetric=view.symmetric)

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}"


class LightGCN(GraphLearner):
    """Text-initialised LightGCN learner (``name = "lightgcn"``).

    Args:
        embedding_dim: embedding size ``d``.
        num_layers: propagation layers.
        lr: Adam learning rate.
        l2: L2 weight on the batch's per-node parameters (user vectors and item
            residuals / free item vectors), divided by the batch size.
        epochs: maximum epochs (exactly this many when fitting without ``valid_items``).
            This and the four loop settings below accept ``"auto"``: sized to the
            graph by :func:`training.gnn.schedule.resolve_schedule`.
        batch_size: positive (user, item) pairs per step.
        num_negatives: uniformly drawn negatives per positive.
        init: ``"text"`` (items and described entities = projected text + ID
            residual; needs ``item_features`` in ``fit``) or ``"random"``.
        use_kg: propagate over the graph's attribute and KG triples too.
        use_social: propagate over social user-user edges too.
        user_init: ``"mean_items"`` (start at the mean of the user's items'
            initial vectors, so text reaches users from the first step) or
            ``"learned"`` (random start).
        init_std: standard deviation of random initial vectors.
        patience: validations without progress before stopping.
        min_gain: a validation counts as progress when its NDCG@20 beats the last one
            that did by more than this fraction (``"auto"``: 0.002); the best epoch's
            weights are kept whatever stops the run.
        eval_every: epochs between validations.
        mode: ``"full"`` (whole-graph propagation each step) or ``"sampled"``
            (neighbor-sampled sub-graphs, for graphs too large for the former).
        num_neighbors: in-edges sampled per node and layer in ``"sampled"`` mode.
        seed: seeds every random draw (a private ``torch.Generator``).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``...
        text_components: the text vectors are whitened onto this many top principal
            components before the learned projection (0: only centred and scaled;
            :func:`training.gnn.init.fit_text_map`).
        text_scale: root-mean-square norm of the mapped text vectors.
        item_l2: weight of the items' rows in the L2 term (the users' weigh 1); with text
            init they are the residuals, so this is how firmly items are held at their
            text position. 0.1 gives better GNN embeddings on ml-100k and gowalla (more
            TailRecall@20, and NDCG@20 on gowalla) but a slightly worse hybrid, so the
            pipeline keeps 1.

    Example:
        >>> model = LightGCN(epochs=50).fit(graph, graph.matrix("train"),
        ...     valid_items=graph.matrix("valid"), item_features=text_vectors)
        >>> scores = model.score(np.arange(10))   # [10, num_items]
    """

    name = "lightgcn"
    view_kind = "adjacency"

    def _make_encoder(self, edges: GraphEdges, generator: torch.Generator) -> nn.Module:
        return LightGCNEncoder(self.num_layers)
